"""Many MQTT uplinks on a few threads: one selector thread for every socket, a few senders.

A camera runs one :class:`~agent.transport.uplink.Uplink`, with paho's network
thread and its own sender thread. A process that stands in for hundreds of
cameras (``raqib bench fleet``) cannot do that: three threads per device make
thousands of threads fighting over the GIL (the machine then spends most of
its time in the kernel), and paho's own loop waits with ``select()``, which
cannot watch a descriptor above 1023.

``SharedLoop`` runs the same uplinks differently, not a copy of them:

* one network thread drives every paho client through paho's external-loop
  API (``loop_read``, ``loop_write``, ``loop_misc``, ``want_write`` and the
  ``on_socket_close`` / ``on_socket_register_write`` /
  ``on_socket_unregister_write`` callbacks) on a ``selectors.DefaultSelector``
  (epoll on Linux: no descriptor limit);
* connecting (TCP connect and TLS handshake block in paho) happens on a small
  pool of connector threads, with paho's backoff (1 s doubling up to the
  uplink's ``reconnect_max_s``, jittered so that a fleet does not come back in
  step after a broker restart);
* ``senders`` threads step the uplinks' senders (apply acks, publish what is
  due, heartbeats): at once when an uplink is woken, otherwise every
  ``poll_s``. More than one so that the outboxes' fsyncs overlap, as they do
  on cameras that each have their own flash.

The MQTT protocol, the outbox and the delivery rules stay in ``Uplink``;
this module only moves bytes and schedules steps.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import random
import selectors
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

log = logging.getLogger(__name__)

MISC_S: Final = 1.0
"""How often every client's ``loop_misc`` runs (keepalive pings, ping timeouts), as paho's
own loop does."""
MIN_RECONNECT_S: Final = 1.0


class Steppable(Protocol):
    """What a sender thread runs: an uplink's sender, one round at a time."""

    @property
    def poll_s(self) -> float: ...

    def step(self) -> float:
        """One round; returns seconds to wait before the next one (after an error), or 0."""
        ...


@dataclass(eq=False)
class _Conn:
    """One paho client's connection as the network thread sees it."""

    client: mqtt.Client
    max_delay: float
    sock: Any = None
    """The socket registered with the selector (None while disconnected or connecting)."""
    events: int = 0
    connecting: bool = False
    closing: bool = False
    established: bool = False
    """A CONNACK was accepted on this socket: the next reconnect starts at the minimum delay."""
    delay: float = MIN_RECONNECT_S


@dataclass(eq=False)
class _Member:
    steppable: Steppable
    next_at: float
    hold_until: float = 0.0


class _Sender:
    """One thread stepping its share of the uplinks: woken ones first, then each every poll."""

    def __init__(self, name: str) -> None:
        self._cond = threading.Condition()
        self._members: dict[int, _Member] = {}
        self._woken: dict[int, None] = {}
        """Woken members in arrival order (a dict keeps insertion order and drops repeats)."""
        self._heap: list[tuple[float, int, int]] = []
        self._tie = itertools.count()
        self._busy: int | None = None
        self._turn = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __len__(self) -> int:
        return len(self._members)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def add(self, steppable: Steppable) -> None:
        now = time.monotonic()
        with self._cond:
            self._members[id(steppable)] = _Member(steppable, now)
            heapq.heappush(self._heap, (now, next(self._tie), id(steppable)))
            self._cond.notify()

    def remove(self, steppable: Steppable, timeout: float) -> None:
        """Stop stepping it; returns once a step in progress has finished (or ``timeout``)."""
        key = id(steppable)
        deadline = time.monotonic() + timeout
        with self._cond:
            self._members.pop(key, None)
            self._woken.pop(key, None)
            while self._busy == key and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())

    def wake(self, steppable: Steppable) -> None:
        key = id(steppable)
        with self._cond:
            if key in self._members and key not in self._woken:
                self._woken[key] = None
                self._cond.notify()

    def _next(self) -> _Member | None:
        """Under the lock: the member to step now, or None (then wait).

        Woken members and members whose poll is due take turns, so that a busy process
        still sends its heartbeats and resends on time."""
        now = time.monotonic()
        self._turn = not self._turn
        if self._turn and (member := self._due(now)) is not None:
            return member
        for key in list(self._woken):
            member = self._members.get(key)
            if member is None:
                del self._woken[key]
            elif member.hold_until <= now:
                del self._woken[key]
                return member
        return self._due(now)

    def _due(self, now: float) -> _Member | None:
        """Under the lock: the member whose poll is due first, if any is due."""
        while self._heap:
            at, _tie, key = self._heap[0]
            member = self._members.get(key)
            if member is None or member.next_at != at:
                heapq.heappop(self._heap)  # removed, or stepped since: a stale entry
                continue
            if at > now:
                return None
            heapq.heappop(self._heap)
            return member
        return None

    def _wait_s(self) -> float | None:
        times = [self._heap[0][0]] if self._heap else []
        times += [self._members[k].hold_until for k in self._woken if k in self._members]
        return max(0.0, min(times) - time.monotonic()) if times else None

    def _run(self) -> None:
        while True:
            with self._cond:
                while (member := self._next()) is None:
                    if self._stopping:
                        return
                    self._cond.wait(self._wait_s())
                if self._stopping:
                    return
                key = id(member.steppable)
                self._busy = key
            try:
                pause = member.steppable.step()
            except Exception:  # step() catches its own errors; a bug must not stop the others
                log.exception("shared sender: a step failed")
                pause = 1.0
            now = time.monotonic()
            with self._cond:
                self._busy = None
                self._cond.notify_all()
                if self._members.get(key) is member:
                    member.next_at = now + max(member.steppable.poll_s, pause)
                    member.hold_until = now + pause
                    heapq.heappush(self._heap, (member.next_at, next(self._tie), key))


class SharedLoop:
    """One network thread, ``connectors`` connector threads and ``senders`` sender threads
    for many uplinks in one process (see the module docstring). Use as a context manager."""

    def __init__(self, *, senders: int = 1, connectors: int = 2, name: str = "shared") -> None:
        if senders < 1 or connectors < 1:
            raise ValueError("a shared loop needs at least one sender and one connector")
        self._name = name
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._conns: dict[int, _Conn] = {}
        self._kicked: set[_Conn] = set()
        self._woken = False
        self._retries: list[tuple[float, int, _Conn]] = []
        self._tie = itertools.count()
        self._pool = ThreadPoolExecutor(connectors, thread_name_prefix=f"{name}-connect")
        self._senders = [_Sender(f"{name}-sender-{i}") for i in range(senders)]
        self._sender_of: dict[int, _Sender] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-net", daemon=True)
        self._started = False

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> SharedLoop:
        if not self._started:
            self._started = True
            self._thread.start()
            for sender in self._senders:
                sender.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop all threads and close the sockets still open (uplinks should be stopped first)."""
        self._stopping.set()
        for sender in self._senders:
            sender.stop(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._wake()
        if self._started:
            self._thread.join(timeout)
        with self._lock:
            for conn in self._conns.values():
                self._forget_socket(conn, close=True)
            self._conns.clear()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> SharedLoop:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def connections(self) -> int:
        """Clients with an open socket (connected, or connecting at the MQTT level)."""
        with self._lock:
            return sum(1 for conn in self._conns.values() if conn.sock is not None)

    # -- senders -------------------------------------------------------------------

    def add_sender(self, steppable: Steppable) -> None:
        """Step ``steppable`` on the least loaded sender thread from now on."""
        sender = min(self._senders, key=len)
        with self._lock:
            self._sender_of[id(steppable)] = sender
        sender.add(steppable)

    def remove_sender(self, steppable: Steppable, timeout: float = 5.0) -> None:
        with self._lock:
            sender = self._sender_of.pop(id(steppable), None)
        if sender is not None:
            sender.remove(steppable, timeout)

    def wake(self, steppable: Steppable) -> None:
        """Step it as soon as its sender is free (a message was put, an ack arrived)."""
        sender = self._sender_of.get(id(steppable))
        if sender is not None:
            sender.wake(steppable)

    # -- network -------------------------------------------------------------------

    def open(self, client: mqtt.Client, reconnect_max_s: float) -> None:
        """Connect ``client`` (``connect_async`` already called) in the background and keep
        it connected until :meth:`close_client`."""
        conn = _Conn(client, max(MIN_RECONNECT_S, reconnect_max_s))
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_write_wanted
        client.on_socket_unregister_write = self._on_write_wanted
        with self._lock:
            self._conns[id(client)] = conn
            conn.connecting = True
        self._pool.submit(self._connect, conn)

    def close_client(self, client: mqtt.Client, timeout: float) -> None:
        """Disconnect cleanly (the DISCONNECT goes out: no last will) and forget the client."""
        deadline = time.monotonic() + timeout
        with self._lock:
            conn = self._conns.get(id(client))
            if conn is None:
                return
            conn.closing = True
            while conn.connecting and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
        client.disconnect()
        with self._lock:
            while conn.sock is not None and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            self._forget_socket(conn, close=True)
            self._conns.pop(id(client), None)
            self._kicked.discard(conn)

    # -- paho callbacks (any thread) ---------------------------------------------------

    def _on_socket_close(self, client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        with self._lock:
            conn = self._conns.get(id(client))
            if conn is None or conn.sock is not sock:
                return
            self._forget_socket(conn, close=False)  # paho closes it right after this callback
            if conn.closing or self._stopping.is_set():
                return
            # after a session that worked: soon; after a refusal (CONNACK failed): back off
            established, conn.established = conn.established, False
            conn.delay = MIN_RECONNECT_S if established else min(conn.max_delay, conn.delay * 2)
            self._schedule_retry(conn)

    def _on_write_wanted(self, client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        """paho queued a packet (publish from a sender thread) or finished writing.

        On the network thread nothing is needed: it re-reads ``want_write`` after every
        paho call. From another thread, the network thread is told to write now.
        """
        if threading.current_thread() is self._thread:
            return
        with self._lock:
            conn = self._conns.get(id(client))
            if conn is None:
                return
            self._kicked.add(conn)
        self._wake()

    # -- connecting (connector threads) ---------------------------------------------

    def _connect(self, conn: _Conn) -> None:
        client = conn.client
        with self._lock:
            if conn.closing or self._stopping.is_set():
                conn.connecting = False
                self._changed.notify_all()
                return
        try:
            rc = client.reconnect()
            error = None if rc == MQTTErrorCode.MQTT_ERR_SUCCESS else mqtt.error_string(rc)
        except Exception as exc:  # refused, unreachable, TLS handshake failed, timed out
            error = str(exc) or type(exc).__name__
        with self._lock:
            conn.connecting = False
            self._changed.notify_all()
            sock = client.socket()
            if error is None and sock is not None:
                self._register(conn, sock)
        if error is None and sock is not None:
            self._wake()
            return
        log.debug("shared loop: connect failed: %s", error)
        on_fail = client.on_connect_fail
        if on_fail is not None:
            try:
                on_fail(client, client.user_data_get())
            except Exception:
                log.exception("shared loop: on_connect_fail failed")
        with self._lock:
            if not conn.closing and not self._stopping.is_set():
                conn.delay = min(conn.max_delay, conn.delay * 2)
                self._schedule_retry(conn)

    def _register(self, conn: _Conn, sock: Any) -> None:
        """Under the lock: watch a new connection's socket (reading, and writing its CONNECT)."""
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(sock)  # a closed socket's stale entry with this number
        conn.sock = sock
        conn.events = selectors.EVENT_READ | selectors.EVENT_WRITE
        self._selector.register(sock, conn.events, conn)
        self._kicked.add(conn)

    def _schedule_retry(self, conn: _Conn) -> None:
        """Under the lock: connect again after the backoff, jittered by +-50 %."""
        due = time.monotonic() + min(conn.max_delay, conn.delay * random.uniform(0.5, 1.5))
        heapq.heappush(self._retries, (due, next(self._tie), conn))
        self._wake()

    def _due_retries(self) -> float | None:
        """Start the connects that are due; returns seconds until the next one."""
        now = time.monotonic()
        with self._lock:
            while self._retries and self._retries[0][0] <= now:
                _due, _tie, conn = heapq.heappop(self._retries)
                if conn.closing or conn.connecting or conn.sock is not None:
                    continue
                if self._conns.get(id(conn.client)) is not conn:
                    continue
                conn.connecting = True
                self._pool.submit(self._connect, conn)
            return self._retries[0][0] - now if self._retries else None

    # -- the network thread ------------------------------------------------------------

    def _wake(self) -> None:
        if self._woken:
            return
        self._woken = True
        with contextlib.suppress(OSError):  # full (already woken) or closed (stopping)
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        next_misc = time.monotonic() + MISC_S
        while not self._stopping.is_set():
            retry_in = self._due_retries()
            timeout = next_misc - time.monotonic()
            if retry_in is not None:
                timeout = min(timeout, retry_in)
            try:
                events = self._selector.select(max(0.0, timeout))
            except OSError as exc:  # the selector was closed under us: stopping
                log.debug("shared loop: select failed: %s", exc)
                return
            for key, mask in events:
                if key.data is None:
                    self._drain_wake()
                    continue
                self._serve(key.data, key.fileobj, mask)
            self._write_kicked()
            if time.monotonic() >= next_misc:
                next_misc = time.monotonic() + MISC_S
                self._misc()

    def _drain_wake(self) -> None:
        self._woken = False
        with contextlib.suppress(OSError):
            self._wake_r.recv(4096)

    def _current(self, conn: _Conn, sock: Any) -> bool:
        """The event is for the socket the client still has (not one closed since)."""
        return sock is not None and conn.sock is sock and conn.client.socket() is sock

    def _serve(self, conn: _Conn, sock: Any, mask: int) -> None:
        if mask & selectors.EVENT_READ and self._current(conn, sock):
            self._read(conn, sock)
        if mask & selectors.EVENT_WRITE and self._current(conn, sock):
            conn.client.loop_write()
        self._update_interest(conn, sock)

    def _read(self, conn: _Conn, sock: Any) -> None:
        client = conn.client
        rc = client.loop_read()
        # TLS: a record may hold more packets than one read took; epoll cannot see them
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._current(conn, sock):
            pending = getattr(sock, "pending", None)
            if pending is None or pending() == 0:
                break
            rc = client.loop_read()
        if client.is_connected():
            conn.established = True

    def _update_interest(self, conn: _Conn, sock: Any) -> None:
        if not self._current(conn, sock):
            return
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.client.want_write() else 0)
        if wanted != conn.events:
            with self._lock:
                if conn.sock is sock:
                    conn.events = wanted
                    self._selector.modify(sock, wanted, conn)

    def _write_kicked(self) -> None:
        with self._lock:
            kicked, self._kicked = self._kicked, set()
        for conn in kicked:
            sock = conn.sock
            if self._current(conn, sock):
                conn.client.loop_write()
                self._update_interest(conn, sock)

    def _misc(self) -> None:
        with self._lock:
            conns = [c for c in self._conns.values() if c.sock is not None]
        for conn in conns:
            sock = conn.sock
            if not self._current(conn, sock):
                continue
            conn.client.loop_misc()
            if self._current(conn, sock) and conn.client.want_write():
                conn.client.loop_write()
            self._update_interest(conn, sock)

    def _forget_socket(self, conn: _Conn, *, close: bool) -> None:
        """Under the lock: take the socket off the selector (and close it if asked)."""
        sock, conn.sock, conn.events = conn.sock, None, 0
        if sock is None:
            return
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(sock)
        if close:
            with contextlib.suppress(OSError):
                sock.close()
        self._changed.notify_all()
