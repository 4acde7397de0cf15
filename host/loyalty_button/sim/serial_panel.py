"""A panel on a USB serial port, simulated for the installer's tests: the
MicroPython unix port on a pseudo-terminal, its working folder playing the
panel's flash file system.

- `port` is a serial device path (/dev/pts/N) that esptool-less tools open
  as they would /dev/ttyUSB0: mpremote gets MicroPython's real REPL (raw
  REPL, raw paste) on it.
- A board fresh from the box (no main.py on its flash) sits at the REPL.
- `machine.reset()` (the stub exits with code 3) restarts the process, as
  the chip restarts: it boots main.py when there is one (`micropython -i
  main.py`: after Ctrl-C the REPL, as on an ESP32), its log on the port.
- `air`: the Wi-Fi networks the panel can see (the stub network module
  joins only these, LB_SIM_WIFI); None: any.
- `corrupt_once`: a file (relative to the flash) whose first complete
  write gets one byte flipped, as a bad flash write or a glitch on the
  cable would leave it.

What cannot exist here is only the chip: the REPL, the file system code
and the panel's firmware are the real ones."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import termios
import threading
import time
import tty
from pathlib import Path

from .panel import STUBS_DIR, micropython_path

RESET_EXIT_CODE = 3
_LOG_KEPT = 64 * 1024


class SerialPanel:
    def __init__(self, flash: Path, name: str = "panel", air: list[str] | None = None,
                 corrupt_once: str | None = None):
        self.binary = micropython_path()
        self.flash = Path(flash)
        self.flash.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.air = air
        self.corrupt_once = corrupt_once
        self.corrupted = False
        self.boots = 0
        self.port: str | None = None
        self._log = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._threads: list[threading.Thread] = []

    # --- the port -----------------------------------------------------------
    def start(self) -> "SerialPanel":
        self._dev_master, self._dev_slave = pty.openpty()
        # A UART has no line discipline: raw, except that Ctrl-C still
        # interrupts a running script (MicroPython on a chip sees it itself).
        tty.setraw(self._dev_slave)
        attrs = termios.tcgetattr(self._dev_slave)
        attrs[3] |= termios.ISIG
        termios.tcsetattr(self._dev_slave, termios.TCSANOW, attrs)
        self._host_master, host_slave = pty.openpty()
        tty.setraw(host_slave)  # what pyserial sets on a real port
        self.port = os.ttyname(host_slave)
        self._host_slave = host_slave  # kept open: the port exists while the board is plugged
        os.set_blocking(self._host_master, False)
        for target, args in ((self._pump, (self._dev_master, self._host_master, True)),
                             (self._pump, (self._host_master, self._dev_master, False)),
                             (self._run, ())):
            t = threading.Thread(target=target, args=args, daemon=True)
            t.start()
            self._threads.append(t)
        if self.corrupt_once:
            t = threading.Thread(target=self._corrupter, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _pump(self, src: int, dst: int, to_host: bool) -> None:
        while not self._stop.is_set():
            try:
                if not select.select([src], [], [], 0.2)[0]:
                    continue
                data = os.read(src, 4096)
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                if self._stop.is_set():
                    return
                time.sleep(0.01)  # the other side is between boots
                continue
            if not data:
                continue
            if to_host:
                with self._lock:
                    self._log += data
                    del self._log[:-_LOG_KEPT]
            try:
                self._write(dst, data, to_host)
            except OSError:
                pass  # the other side is between boots

    def _write(self, dst: int, data: bytes, to_host: bool) -> None:
        if not to_host:
            while data:  # the chip's side (blocking): it reads what comes
                data = data[os.write(dst, data):]
            return
        # Towards the host nobody may be listening (the port's end is
        # non-blocking): when its buffer stays full, the rest is dropped, as
        # a UART's bytes are, rather than stalling the panel.
        deadline = time.monotonic() + 0.5
        while data:
            try:
                data = data[os.write(dst, data):]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    termios.tcflush(self._host_slave, termios.TCIFLUSH)
                    return
                time.sleep(0.005)

    # --- the chip -----------------------------------------------------------
    def _boot(self) -> None:
        # The port becomes the process's controlling terminal, so Ctrl-C on
        # it interrupts a running main.py (mpremote's way in).
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    def _run(self) -> None:
        env = dict(os.environ)
        # As on an ESP32: the file system first, then the frozen modules; the
        # stubs stand in for machine and network.
        env["MICROPYPATH"] = f":.frozen:{STUBS_DIR}"
        env["LB_SIM_RESET"] = "kill"  # machine.reset() ends the process (the stub)
        if self.air is not None:
            env["LB_SIM_WIFI"] = ",".join(self.air)
        while not self._stop.is_set():
            cmd = [self.binary]
            if (self.flash / "main.py").exists():
                cmd += ["-i", "main.py"]
            self._proc = subprocess.Popen(cmd, stdin=self._dev_slave, stdout=self._dev_slave,
                                          stderr=self._dev_slave, cwd=self.flash, env=env,
                                          preexec_fn=self._boot)
            code = self._proc.wait()
            self.boots += 1
            if self._stop.is_set():
                return
            if code not in (RESET_EXIT_CODE, -signal.SIGTERM):
                with self._lock:
                    self._log += f"\r\n[sim: exited with {code}; the board restarts]\r\n".encode()
            time.sleep(0.2)

    def _corrupter(self) -> None:
        """Flip one byte of corrupt_once once its write is complete (its size
        has held still for a moment)."""
        path = self.flash / self.corrupt_once
        last, still = -1, 0
        while not self._stop.is_set() and not self.corrupted:
            time.sleep(0.02)
            size = path.stat().st_size if path.exists() else -1
            still = still + 1 if size == last and size > 0 else 0
            last = size
            if still >= 3:
                data = bytearray(path.read_bytes())
                data[len(data) // 2] ^= 0x5A
                path.write_bytes(bytes(data))
                self.corrupted = True

    # --- for tests ----------------------------------------------------------
    def log(self) -> str:
        with self._lock:
            return self._log.decode("utf-8", "replace")

    def stop(self) -> None:
        self._stop.set()
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._dev_master, self._dev_slave, self._host_master, self._host_slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "SerialPanel":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
