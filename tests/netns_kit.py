"""Simulated hosts for the multi-host fault tests: Linux network namespaces on one bridge.

Each host is a namespace ``rq{tag}-{name}`` with one veth link ``eth0`` to a
bridge in a switch namespace, on a private subnet that exists only inside these
namespaces (nothing is added to the machine's own network). Faults:

- ``link(host, up=False)``: the host's cable is pulled (its switch port goes down);
- ``firewall(host, drop=True)``: ``iptables -j DROP`` for everything in and out
  of the host, inside its namespace (packets vanish, connections hang);
- a latency and loss proxy (:class:`LossyProxy`) in userspace, since this
  kernel has no ``netem``.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

SUBNET = "10.77.14"


def unavailable() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (ip netns, veth, iptables)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (scripts/setup.sh installs it)"
    probe = f"rqprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False)
    if made.returncode != 0:
        return f"ip netns does not work here: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


class Hosts:
    """Namespaces on one bridge; ``ip(host)`` is its address, ``run`` starts a process there."""

    def __init__(self, names: list[str]) -> None:
        self.tag = uuid.uuid4().hex[:4]
        self.names = names
        self.switch = f"rq{self.tag}-sw"
        self.procs: list[subprocess.Popen[bytes]] = []

    def ns(self, host: str) -> str:
        return f"rq{self.tag}-{host}"

    def ip(self, host: str) -> str:
        return f"{SUBNET}.{10 + self.names.index(host)}"

    def _port(self, host: str) -> str:
        return f"rq{self.tag}p{self.names.index(host)}"

    def up(self) -> None:
        _sh("ip", "netns", "add", self.switch)
        _sh("ip", "netns", "exec", self.switch, "ip", "link", "add", "br0", "type", "bridge")
        _sh("ip", "netns", "exec", self.switch, "ip", "link", "set", "br0", "up")
        for host in self.names:
            ns, port = self.ns(host), self._port(host)
            _sh("ip", "netns", "add", ns)
            _sh("ip", "link", "add", port, "type", "veth", "peer", "name", f"{port}h")
            _sh("ip", "link", "set", port, "netns", self.switch)
            _sh("ip", "link", "set", f"{port}h", "netns", ns)
            inside = ["ip", "netns", "exec", ns, "ip"]
            _sh(*inside, "link", "set", f"{port}h", "name", "eth0")
            _sh(*inside, "addr", "add", f"{self.ip(host)}/24", "dev", "eth0")
            _sh(*inside, "link", "set", "eth0", "up")
            _sh(*inside, "link", "set", "lo", "up")
            _sh("ip", "netns", "exec", self.switch, "ip", "link", "set", port, "master", "br0")
            _sh("ip", "netns", "exec", self.switch, "ip", "link", "set", port, "up")

    def run(self, host: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns(host), *argv], stdout=out, stderr=out
            )
        self.procs.append(proc)
        return proc

    def link(self, host: str, *, up: bool) -> None:
        """Pull (or plug back) the host's cable: its port on the switch goes down."""
        state = "up" if up else "down"
        _sh("ip", "netns", "exec", self.switch, "ip", "link", "set", self._port(host), state)

    def firewall(self, host: str, *, drop: bool) -> None:
        """Drop every packet in and out of the host (iptables inside its namespace)."""
        op = "-I" if drop else "-D"
        for chain in ("INPUT", "OUTPUT"):
            _sh("ip", "netns", "exec", self.ns(host), "iptables", op, chain, "-j", "DROP")

    def down(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for host in self.names:
            subprocess.run(["ip", "netns", "del", self.ns(host)], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True, check=False)


class LossyProxy:
    """A TCP proxy that adds latency to every chunk and now and then loses a connection
    (cut without a goodbye, as a flaky cellular link does; TCP itself never drops bytes)."""

    def __init__(
        self, listen_port: int, target: tuple[str, int], *, delay_s: float, cut_every_s: float
    ) -> None:
        self._target = target
        self._delay_s = delay_s
        self._cut_every_s = cut_every_s
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", listen_port))
        self._server.listen(512)
        self._stop = threading.Event()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._target, timeout=10)
        except OSError:
            client.close()
            return
        life = random.expovariate(1 / self._cut_every_s)
        deadline = time.monotonic() + life
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(a, b, deadline), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, deadline: float) -> None:
        src.settimeout(0.5)
        with contextlib.suppress(OSError):
            while not self._stop.is_set():
                if time.monotonic() > deadline:
                    self.cuts += 1
                    break
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                time.sleep(self._delay_s)
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._stop.set()
        self._server.close()
