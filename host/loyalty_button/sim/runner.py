"""Running the store host (service.host): in a background thread of this
process (the simulated store, tests), or as its own process (`loyalty-button
concentrator`, the benchmark)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..service.config import HostConfig
from ..service.host import StoreHost
from ..settings import private

log = logging.getLogger(__name__)


class ConcentratorThread:
    """The store host (concentrator and all) and its listeners on an event
    loop of their own. `call(fn, ...)` runs fn on that loop and returns its
    result, so a caller never touches the host's state from another thread."""

    def __init__(self, cfg: HostConfig):
        self.cfg = cfg
        self.host: StoreHost | None = None
        self.listeners = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def udp_port(self) -> int | None:
        return self.listeners.udp_port if self.listeners else None

    @property
    def http_port(self) -> int | None:
        return self.listeners.http_port if self.listeners else None

    def start(self, timeout: float = 15.0, wait_ready: bool = True) -> "ConcentratorThread":
        self._thread = threading.Thread(target=self._main, name="concentrator", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("concentrator did not start")
        if self._error:
            raise self._error
        if wait_ready:
            deadline = time.monotonic() + timeout
            while not self.call(lambda: self.host.ready):
                if time.monotonic() > deadline:
                    raise TimeoutError("concentrator did not get ready (broker reachable?)")
                time.sleep(0.02)
        return self

    def _main(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            self.host = StoreHost(self.cfg)
            await self.host.start()
            self.listeners = await self.host.start_listeners()
        except BaseException as e:
            self._error = e
            self._started.set()
            if self.host:
                await self.host.stop()
            return
        self._started.set()
        await self._stop.wait()
        await self.listeners.stop()
        await self.host.stop()

    def call(self, fn, *args, timeout: float = 10.0):
        async def run():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def status(self) -> dict:
        return self.call(self.host.status)

    def flush(self) -> None:
        """Everything the concentrator has handed to the record store so far
        is committed when this returns."""
        self.call(lambda: None)  # let the loop finish what it is doing
        self.host.records.flush()

    def stop(self) -> None:
        if self._thread and self._thread.is_alive() and self.loop and self._stop:
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)


class ConcentratorProcess:
    """`loyalty-button concentrator --config FILE` as a child process."""

    def __init__(self, config_path: Path, workdir: Path, log_level: str | None = None):
        self.config_path = Path(config_path)
        self.workdir = Path(workdir)
        self.log_path = self.workdir / "concentrator.log"
        self.ready_file = self.workdir / "concentrator.ready"
        self.log_level = log_level
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "ConcentratorProcess":
        self.ready_file.unlink(missing_ok=True)
        private(self.log_path)  # the log names loyalty ids and panels
        logf = open(self.log_path, "ab")
        cmd = [sys.executable, "-m", "loyalty_button.cli"]
        if self.log_level:
            cmd += ["--log-level", self.log_level]
        cmd += ["concentrator", "--config", str(self.config_path),
                "--ready-file", str(self.ready_file)]
        self.proc = subprocess.Popen(cmd,
            stdout=logf, stderr=subprocess.STDOUT, env=dict(os.environ))
        logf.close()
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("concentrator did not start; log:\n"
                                   + self.log_path.read_text()[-3000:])
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
