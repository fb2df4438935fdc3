"""The agent run the way systemd/raqib-agent.service runs it, without systemd as PID 1.

There is no systemd here, so the test builds the unit's sandbox from its own
settings with the kernel features a container allows (util-linux ``unshare`` and
``setpriv``): a private mount namespace in which everything is read-only except
the state directory (ProtectSystem=strict + StateDirectory=), fresh /tmp and
/var/tmp (PrivateTmp=), empty /home and /root (ProtectHome=), read-only
/proc/sys (ProtectKernelTunables=), then an unprivileged user with no
capabilities, no_new_privs (User=, CapabilityBoundingSet=, NoNewPrivileges=), the
unit's UMask= and Environment=, and $NOTIFY_SOCKET/$WATCHDOG_USEC as systemd
sets them for Type=notify + WatchdogSec=. What cannot be reproduced here is
listed in docs/deploy-pi.md, "Running under the unit's sandbox without systemd".
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import DEFAULT_SAMPLES_DIR, RaqibConfig, parse_config
from agent.watchlist.provision import FleetSigner, provision_watchlist
from hq.enrol import enrol_local

pytestmark = pytest.mark.device

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "raqib-agent.service"
INSTALL_PREFIX = "/opt/raqib"
"""Where deploy/pi/install.sh puts the code; ExecStart= names it."""
HIDDEN_BY_SANDBOX = ("/tmp/", "/var/tmp/", "/root/", "/home/")
"""Paths the sandbox replaces with empty tmpfs (PrivateTmp=, ProtectHome=)."""
USER = "nobody"
"""Stands in for the unit's User=raqib (no user is created on this machine)."""
WATCHDOG_USEC = 2_000_000
"""The unit says WatchdogSec=30 (a ping every 15 s); the test compresses time."""

# Runs as root inside the new mount namespace, then execs the service command.
SANDBOX = r"""
set -eu
umask 022
root=$1; state=$2; pyhome=$3; code=$4; mask=$5; shift 5
mount --bind "$root" /media                   # kept aside while /tmp is replaced
if [ -n "$pyhome" ]; then mount --bind "$pyhome" /srv; fi
if [ -n "$code" ]; then mount --bind "$code" /mnt; fi           # the checkout, if under /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp            # PrivateTmp=true
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /root           # ProtectHome=true
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /home
mkdir -p "$root"
mount --move /media "$root"
if [ -n "$pyhome" ]; then mkdir -p "$pyhome"; mount --move /srv "$pyhome"; fi
if [ -n "$code" ]; then mkdir -p "$code"; mount --move /mnt "$code"; fi
mount --bind "$state" "$state"                                 # StateDirectory=raqib
mount --bind /proc/sys /proc/sys                               # ProtectKernelTunables=true
awk '$6 !~ /^ro/ {print $5}' /proc/self/mountinfo | while read -r m; do
  case "$m" in /proc|/dev|/dev/*|/tmp|/var/tmp|"$state") continue ;; esac
  mount -o remount,bind,ro "$m"                                # ProtectSystem=strict
done
umask "$mask"                                                  # UMask=
exec "$@"
"""

PROBE = r"""
import json, os, sys
results = {}
for target in sys.argv[1:]:
    try:
        with open(target, "x") as f:
            f.write("x")
        results[target] = "written"
    except OSError as exc:
        results[target] = exc.strerror
print(json.dumps(results))
"""


def service_settings(path: Path = UNIT) -> dict[str, list[str]]:
    """The [Service] section's settings; repeated keys keep every value in order."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "Service":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def one(settings: dict[str, list[str]], key: str) -> str:
    return settings[key][-1]


def unit_environment(settings: dict[str, list[str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in settings.get("Environment", []):
        for item in line.split():
            name, _, value = item.partition("=")
            env[name] = value.strip('"')
    return env


def python_home() -> str:
    """The interpreter's install tree if ProtectHome= would hide it ("" if not).

    On the Pi it is /usr (apt's python3); here it may live under /root, so the
    sandbox binds it back read-only, as ``BindReadOnlyPaths=`` would.
    """
    home = Path(os.path.realpath(sys.executable)).parents[1]
    return str(home) if str(home).startswith(HIDDEN_BY_SANDBOX) else ""


def code_home() -> str:
    """The checkout, when it lives where the sandbox mounts fresh tmpfs (CI clones under /tmp).

    On the Pi it is /opt/raqib; here it is bound back read-only, as ``BindReadOnlyPaths=``.
    """
    return str(REPO) if str(REPO).startswith(HIDDEN_BY_SANDBOX) else ""


def sandboxed(
    settings: dict[str, list[str]], root: Path, state: Path, command: list[str]
) -> list[str]:
    account = pwd.getpwnam(USER)
    umask = one(settings, "UMask")
    drop = [
        "setpriv",
        f"--reuid={account.pw_uid}",
        f"--regid={account.pw_gid}",
        "--clear-groups",
        "--no-new-privs",
        "--bounding-set=-all",
        "--inh-caps=-all",
        "--",
    ]
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        SANDBOX,
        "sandbox",
        str(root),
        str(state),
        python_home(),
        code_home(),
        umask,
        *drop,
        *command,
    ]


def service_env(settings: dict[str, list[str]], notify: str) -> dict[str, str]:
    account = pwd.getpwnam(USER)
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": account.pw_dir,
        "USER": USER,
        "LOGNAME": USER,
        "NOTIFY_SOCKET": notify,
        "WATCHDOG_USEC": str(WATCHDOG_USEC),
        **unit_environment(settings),
    }


def exec_start(settings: dict[str, list[str]], config: Path) -> list[str]:
    argv = one(settings, "ExecStart").split()
    assert argv[0] == f"{INSTALL_PREFIX}/.venv/bin/raqib", argv
    assert argv[-2:] == ["--config", "/etc/raqib/agent.toml"], argv
    return [str(REPO / ".venv" / "bin" / "raqib"), *argv[1:-1], str(config)]


def can_sandbox() -> str | None:
    """Why this machine cannot build the sandbox, or None."""
    if os.geteuid() != 0:
        return "needs root to make the mount namespace and drop to another user"
    for tool in ("unshare", "setpriv", "mount", "awk"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"no {USER} user"
    for stash in ("/media", "/srv", "/mnt"):  # mount points the sandbox script parks things on
        if not Path(stash).is_dir():
            return f"{stash} does not exist"
    probe = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "mount",
            "-t",
            "tmpfs",
            "t",
            "/srv",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if probe.returncode != 0:
        return f"mount namespaces are not allowed here: {probe.stderr.strip()}"
    return None


def make_config(tmp_path: Path, state: Path) -> RaqibConfig:
    config = parse_config(
        {
            "device": {"id": "cam-sandbox-01", "state_dir": str(state)},
            "capture": {
                "uri": str(DEFAULT_SAMPLES_DIR / "street_clip.mp4"),
                "loop": True,
                "realtime": True,
            },
            "mqtt": {"port": 9, "ack_timeout_s": 2.0, "reconnect_max_s": 1.0},
            "hq": {
                "database_url": f"sqlite:///{tmp_path / 'hq' / 'hq.sqlite'}",
                "keys_dir": str(tmp_path / "hq" / "keys"),
            },
            "status": {"metrics_port": 0, "interval_s": 0.5},
            "watchlist": {"key_policy": "grace"},  # no HQ key service in this test
        }
    )
    enrol_local(config)
    signer = FleetSigner.load_or_create(tmp_path / "hq" / "watchlist", "test-fleet", time.time())
    provision_watchlist(config, signer, DEFAULT_SAMPLES_DIR / "watchlist.csv", time.time())
    return config


def write_toml(path: Path, config: RaqibConfig) -> Path:
    lines = []
    for section, values in config.model_dump(mode="json").items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items() if v is not None]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o644)  # ConfigurationDirectory=: root-owned, readable by the service
    return path


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """What StateDirectory= does: the state directory belongs to the service user, 0700."""
    os.chown(root, uid, gid)
    root.chmod(0o700)
    for path in root.rglob("*"):
        os.chown(path, uid, gid, follow_symlinks=False)


def snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    out = {}
    for path in root.rglob("*"):
        if skip is not None and path.is_relative_to(skip):
            continue
        info = path.lstat()
        out[str(path)] = (info.st_mtime_ns, info.st_size)
    return out


class Notifications:
    """systemd's side of $NOTIFY_SOCKET: an abstract datagram socket noting each sender."""

    def __init__(self) -> None:
        self.name = f"raqib-sandbox-{secrets.token_hex(6)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(1.0)
        self.messages: list[tuple[str, int, int]] = []  # (text, pid, uid)

    @property
    def address(self) -> str:
        return "@" + self.name

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not any(text in m for m, _, _ in self.messages):
            if time.monotonic() > deadline:
                return False
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except TimeoutError:
                continue
            pid = uid = -1
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid, uid, _gid = struct.unpack("iII", payload[:12])
            self.messages.append((data.decode(), pid, uid))
        return True

    def close(self) -> None:
        self.sock.close()


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def mount_options(pid: int) -> dict[str, str]:
    """Mount point -> per-mount options, as the process sees them."""
    out = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text(encoding="utf-8").splitlines():
        fields = line.split()
        out[fields[4]] = fields[5]
    return out


@pytest.fixture
def sandbox_ready() -> None:
    reason = can_sandbox()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def notifications() -> Iterator[Notifications]:
    listener = Notifications()
    yield listener
    listener.close()


def test_unit_settings_the_sandbox_reproduces() -> None:
    settings = service_settings()
    assert one(settings, "Type") == "notify"
    assert one(settings, "NotifyAccess") == "main"
    assert one(settings, "WatchdogSec") == "30"
    assert one(settings, "UMask") == "0077"
    assert one(settings, "StateDirectoryMode") == "0700"
    assert one(settings, "ProtectSystem") == "strict"
    assert one(settings, "PrivateTmp") == one(settings, "ProtectHome") == "true"
    assert one(settings, "NoNewPrivileges") == "true"
    assert one(settings, "CapabilityBoundingSet") == ""
    assert unit_environment(settings) == {"PYTHONUNBUFFERED": "1"}


@pytest.mark.usefixtures("sandbox_ready")
def test_agent_runs_under_the_unit_sandbox(tmp_path: Path, notifications: Notifications) -> None:
    settings = service_settings()
    account = pwd.getpwnam(USER)
    state = tmp_path / "state"
    config = write_toml(tmp_path / "etc" / "agent.toml", make_config(tmp_path, state))
    chown_tree(state, account.pw_uid, account.pw_gid)
    tmp_path.chmod(0o755)
    before_state = set(snapshot(state))
    before_outside = snapshot(tmp_path, skip=state)
    host_tmp_marker = f"/tmp/raqib-sandbox-{secrets.token_hex(4)}"
    env = service_env(settings, notifications.address)

    # The sandbox itself: where may the service user write?
    targets = [
        str(state / "probe"),
        str(tmp_path / "outside"),
        str(REPO / "probe-from-sandbox"),
        "/etc/raqib-probe",
        "/var/lib/raqib-probe",
        host_tmp_marker,
    ]
    python = str(REPO / ".venv" / "bin" / "python")
    probe = subprocess.run(
        sandboxed(settings, tmp_path, state, [python, "-c", PROBE, *targets]),
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    wrote = json.loads(probe.stdout)
    assert wrote[str(state / "probe")] == "written"
    assert wrote[host_tmp_marker] == "written"  # its own private /tmp ...
    assert not Path(host_tmp_marker).exists()  # ... which is not the host's
    for target in targets[1:-1]:
        assert wrote[target] == "Read-only file system", (target, wrote[target])
    assert (state / "probe").stat().st_mode & 0o777 == 0o600  # UMask=0077
    (state / "probe").unlink()

    with subprocess.Popen(
        sandboxed(settings, tmp_path, state, exec_start(settings, config)),
        env=env,
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        output: list[str] = []
        pump = threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True)
        pump.start()
        try:
            assert notifications.wait_for("READY=1", 60), "".join(output)
            assert notifications.wait_for("WATCHDOG=1", 10), "".join(output)
            status = proc_status(process.pid)
            mounts = mount_options(process.pid)
            namespace = Path(f"/proc/{process.pid}/ns/mnt").readlink()
            process.send_signal(signal.SIGTERM)
            assert notifications.wait_for("STOPPING=1", 20), "".join(output)
            assert process.wait(timeout=30) == 0, "".join(output)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        pump.join(5)
    log = "".join(output)

    # Only the main process talks to systemd (NotifyAccess=main), as the service user.
    senders = {(pid, uid) for _, pid, uid in notifications.messages}
    assert senders == {(process.pid, account.pw_uid)}, notifications.messages
    assert notifications.messages[0][0].startswith("READY=1")
    # The process was unprivileged: user, no capabilities, no_new_privs, the unit's umask.
    assert status["Uid"].split() == [str(account.pw_uid)] * 4
    assert status["Gid"].split() == [str(account.pw_gid)] * 4
    assert status["Groups"] == ""
    assert status["NoNewPrivs"] == "1"
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, (caps, status[caps])
    assert status["Umask"] == "0077"
    # Its view of the file system: read-only but for the state directory and private /tmp.
    assert mounts["/"].startswith("ro")
    assert mounts[str(tmp_path)].startswith("ro")
    assert mounts[str(state)].startswith("rw")
    assert mounts["/tmp"].startswith("rw")
    assert mounts["/proc/sys"].startswith("ro")
    assert mounts["/sys"].startswith("ro")
    assert namespace != Path("/proc/self/ns/mnt").readlink()  # its own mount namespace

    # What it created in the state directory is private to the service user: UMask=0077
    # gives 0600/0700; the status file is 0644 on purpose (agent/metrics.py) and still
    # unreachable to others behind the 0700 state directory.
    assert state.stat().st_mode & 0o777 == 0o700
    created = [p for p in state.rglob("*") if str(p) not in before_state]
    assert created, "the agent wrote nothing to its state directory"
    for path in created:
        info = path.lstat()
        assert info.st_uid == account.pw_uid, path
        want = 0o700 if path.is_dir() else 0o600
        assert info.st_mode & 0o777 == want, (path, oct(info.st_mode))
    # Nothing outside it changed.
    assert snapshot(tmp_path, skip=state) == before_outside
    assert not (REPO / "probe-from-sandbox").exists()
    assert "agent stopped" in log


def test_notifications_carry_the_sender(notifications: Notifications) -> None:
    """The listener's credential check itself (runs everywhere)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
        client.connect("\0" + notifications.name)
        client.send(b"READY=1")
    assert notifications.wait_for("READY=1", 5)
    assert notifications.messages == [("READY=1", os.getpid(), os.getuid())]
