"""The store's Mosquitto broker: its configuration (listener, persistence,
per-panel credentials and ACL) and, for the simulator and tests, a private
broker process on a free loopback port."""

from __future__ import annotations

import logging
import os
import pwd
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

from ..service import broker_conf
from ..service.broker_access import acl_text

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    pass


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port free for TCP and UDP now, picked below the kernel's
    ephemeral range: a port from bind(0) is ephemeral, so between this call
    and the server's bind any outgoing connection (the suite makes
    thousands) may be given it as its source port, and the server's bind
    fails "Address already in use"."""
    low, _ = _ephemeral_range()
    first = max(1024, low - 12000)
    for _ in range(200):
        port = random.randrange(first, low)
        try:
            with socket.socket() as t, socket.socket(type=socket.SOCK_DGRAM) as u:
                t.bind(("127.0.0.1", port))
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    with socket.socket() as s:  # a crowded range: take what the kernel gives
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(port: int, data_dir: Path, password_file: Path | None = None,
                acl_file: Path | None = None, run_as: str | None = None,
                bind: str = "127.0.0.1", pid_file: Path | None = None,
                tls: tuple[int, Path] | None = None) -> str:
    """A private broker's configuration: the store broker's
    (service/broker_conf.py) on one loopback listener, and a TLS one with
    tls = (port, folder of the store's CA and server certificate)."""
    listeners = [broker_conf.Listener(port, bind)]
    if tls:
        listeners.append(broker_conf.Listener(tls[0], bind, tls[1]))
    return broker_conf.config_text(listeners, data_dir, password_file, acl_file, run_as,
                                   pid_file)


def mosquitto_path() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerError("mosquitto is not installed: run tools/bootstrap "
                      "(or: sudo apt-get install mosquitto mosquitto-clients)")


def make_password_file(path: Path, users: dict[str, str]) -> None:
    """Write a Mosquitto password file with hashed passwords."""
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    path.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
    path.chmod(0o600)
    subprocess.run([tool, "-U", str(path)], check=True, capture_output=True)


class Broker:
    """A private Mosquitto on 127.0.0.1 for the simulator and tests.

    Stop with stop(); restart() keeps the port and the persisted sessions
    (a broker restart as a store would see it)."""

    def __init__(self, workdir: Path, port: int | None = None,
                 users: dict[str, str] | None = None, store: str = "s1",
                 host_user: str = "host", tls_names: list[str] | None = None):
        """tls_names: also a TLS listener (tls_port), its certificate from
        a CA of the store's own (tls_dir) for these names."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.users = users
        self.store = store
        self.host_user = host_user
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "mosquitto.log"
        self.tls_port = free_port() if tls_names else None
        self.tls_dir = self.workdir / "tls" if tls_names else None
        if tls_names:
            broker_conf.ensure_tls(self.tls_dir, tls_names, store)
        self._write_config()

    def _write_config(self) -> None:
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        pw = acl = None
        if self.users:
            pw = self.workdir / "passwd"
            make_password_file(pw, self.users)
            acl = self.workdir / "acl"
            acl.write_text(acl_text(self.store, self.host_user))
            acl.chmod(0o640)  # who may do what is nobody else's business
        # Mosquitto started as root drops to the `mosquitto` user, which
        # then cannot reach a data dir under a private (0700) parent such as
        # pytest's or a user's temp folder, and loses its persistence file on
        # shutdown -- and with it the host's queued answers. This private
        # broker therefore stays the user that started it.
        run_as = pwd.getpwuid(os.geteuid()).pw_name
        self.conf = self.workdir / "mosquitto.conf"
        self.pid_file = self.workdir / "mosquitto.pid"
        self.conf.write_text(config_text(self.port, data, pw, acl, run_as,
                                         pid_file=self.pid_file,
                                         tls=(self.tls_port, self.tls_dir) if self.tls_port
                                         else None))

    def start(self, timeout: float = 10.0) -> "Broker":
        if self.proc and self.proc.poll() is None:
            return self
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([mosquitto_path(), "-c", str(self.conf)],
                                     stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"mosquitto exited with {self.proc.returncode}; "
                                  f"see {self.log_path}:\n{self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: saves persistence
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
