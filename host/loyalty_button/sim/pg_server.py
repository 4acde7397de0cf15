"""A private PostgreSQL server on a free loopback port, for the tests and
the demo's "chain" (Debian's postgresql package; nothing is installed in
the system's clusters). PostgreSQL refuses to run as root, so when we are
root it runs as the `postgres` user (or `nobody`) in a directory of its own."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .broker import free_port


def bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise FileNotFoundError("PostgreSQL is not installed (Debian: apt-get install "
                                "postgresql; tools/bootstrap does it)")
    return Path(found[-1]).parent


class PgServer:
    def __init__(self, user: str = "lb", database: str = "loyalty", settings: dict | None = None):
        """settings: more of postgresql.conf, e.g. {"shared_buffers": "1GB"}."""
        self.settings = settings or {}
        self.user = user
        self.database = database
        self.password = secrets.token_urlsafe(12)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.root: Path | None = None
        self._run_as = None

    @property
    def dsn(self) -> str:
        return (f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/"
                f"{self.database}")

    def _preexec(self):
        if self._run_as is not None:
            uid, gid = self._run_as
            os.setgid(gid)
            os.setuid(uid)

    def _run(self, *cmd, **kw):
        return subprocess.run(cmd, preexec_fn=self._preexec, check=True,
                              capture_output=True, text=True, **kw)

    def start(self, timeout: float = 30.0) -> "PgServer":
        # Not under pytest's tmp dir: that is root's and closed to others.
        self.root = Path(tempfile.mkdtemp(prefix="lb-pg-"))
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    pw = pwd.getpwnam(name)
                    self._run_as = (pw.pw_uid, pw.pw_gid)
                    break
                except KeyError:
                    continue
            os.chown(self.root, *self._run_as)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if self._run_as:
            os.chown(pwfile, *self._run_as)
        bins = bindir()
        data = self.root / "data"
        self._run(str(bins / "initdb"), "-D", str(data), "-U", self.user, "-A", "scram-sha-256",
                  "--pwfile", str(pwfile), "-E", "UTF8", "--locale=C.UTF-8")
        # fsync off: a test server's data need not survive a power cut.
        self.proc = subprocess.Popen(
            [str(bins / "postgres"), "-D", str(data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             *[arg for k, v in self.settings.items() for arg in ("-c", f"{k}={v}")]],
            preexec_fn=self._preexec, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        import psycopg
        admin = f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: " + self.proc.stderr.read().decode()[-800:])
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=2) as conn:
                    conn.execute(f'CREATE DATABASE "{self.database}"')
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"postgres did not start within {timeout}s")
                time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: fast shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
