"""A central service on loopback for the tests, the benchmark and the demo:
its own PostgreSQL database, a test CA and server certificate (HTTPS),
central.yaml, stores with their tokens and users, and the service run as
its own process (`loyalty-button central serve`), so it can be killed and
started again like a real worker."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .broker import free_port


class CentralRig:
    def __init__(self, root: Path, dsn: str, tls: bool = True, settings: dict | None = None,
                 phone: bool = False):
        """settings: more of central.yaml, e.g. {"ingest": {"at_once": 2}};
        phone: serve the shoppers' phone survey at this rig's address."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.dsn = dsn
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.tokens: dict[str, Path] = {}
        self.ca: Path | None = None
        doc = {"database": dsn, "listen": {"bind": "127.0.0.1", "port": self.port}}
        if tls:
            from ..service import broker_conf
            tls_dir = self.root / "tls"
            broker_conf.ensure_tls(tls_dir, ["127.0.0.1"], "central-test")
            doc["listen"].update(tls_cert=str(tls_dir / "server.crt"),
                                 tls_key=str(tls_dir / "server.key"))
            self.ca = tls_dir / "ca.crt"
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        if phone:
            secret = self.root / "phone.key"
            secret.write_bytes(base64.b64encode(os.urandom(48)))
            os.chmod(secret, 0o600)
            doc["phone"] = {"base_url": self.url, "secret_file": str(secret)}
        for key, value in (settings or {}).items():
            if isinstance(value, dict):
                doc.setdefault(key, {}).update(value)
            else:
                doc[key] = value
        self.config = self.root / "central.yaml"
        self.config.write_text(yaml.safe_dump(doc))
        os.chmod(self.config, 0o600)

    def cli(self, *args: str, stdin: str | None = None) -> str:
        run = subprocess.run([sys.executable, "-m", "loyalty_button.cli", "central", "--config",
                              str(self.config), *args], input=stdin, capture_output=True,
                             text=True, timeout=120)
        if run.returncode != 0:
            raise RuntimeError(f"central {' '.join(args)}: {run.stderr.strip()[-800:]}")
        return run.stdout

    def setup(self, admin: str = "boss", password: str = "boss-password",
              email: str | None = None) -> "CentralRig":
        extra = ["--email", email] if email else []
        self.cli("setup", "--admin", admin, "--password-stdin", *extra, stdin=password + "\n")
        return self

    def add_store(self, store: str, region: str = "", name: str | None = None) -> Path:
        """The store's token, in a file of its own (what the store host reads)."""
        path = self.root / f"{store}.token"
        self.cli("store", "add", store, "--region", region, "--name", name or store,
                 "--token-file", str(path))
        self.tokens[store] = path
        return path

    def token(self, store: str) -> str:
        return self.tokens[store].read_text().strip()

    def add_user(self, name: str, role: str, scope: str = "", password: str = "user-password",
                 email: str | None = None, lang: str = "en") -> None:
        args = ["user", "add", name, "--role", role, "--lang", lang, "--password-stdin"]
        if scope:
            args += ["--scope", scope]
        if email:
            args += ["--email", email]
        self.cli(*args, stdin=password + "\n")

    def start(self, timeout: float = 30.0, reports: bool = False) -> "CentralRig":
        ready = self.root / "ready"
        ready.unlink(missing_ok=True)
        log = open(self.root / "central.log", "ab")
        cmd = [sys.executable, "-m", "loyalty_button.cli", "--log-level", "INFO", "central",
               "--config", str(self.config), "serve", "--ready-file", str(ready)]
        if not reports:
            cmd.append("--no-reports")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError("the central service exited: " + self.log()[-1500:])
            if time.monotonic() > deadline:
                raise TimeoutError("the central service did not start: " + self.log()[-1500:])
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """SIGKILL: a worker that dies mid-request, with nothing cleaned up."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        path = self.root / "central.log"
        return path.read_text(errors="replace") if path.exists() else ""
