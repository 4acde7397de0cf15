"""The installer's station: flash, provision and verify panels on USB serial
ports, several at once, and see each one come online on the store broker
(docs/installer.md).

Per panel, in order:
1. image (when given): esptool erases the chip and writes the firmware
   image at 0x0 (lvgl_micropython's merged image), checking its hash;
2. copy: mpremote puts the app bundle and the panel's panel.json on the
   panel's file system;
3. verify: the panel computes every file's sha256 itself; files that
   differ are copied again (twice at most);
4. reset, then wait for the panel's own `online` status on the broker
   (a live one, not a retained one from before), reading its serial log
   meanwhile: when it does not come, the log says why (Wi-Fi or broker).

mpremote is used with `resume` (no soft reset): on a running panel its
Ctrl-C stops the app and gives the REPL, as for a fresh one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from lbpanel import boards, protocol

from ..service.fleet import panel_message
from . import bundle as bundles
from .firmware_build import venv_tool
from .registry import CA_FILE, Registry

# An installer brings one merged image (bootloader, partition table and
# application in one file, as lvgl_micropython's build makes it), which
# goes at the start of the flash.
IMAGE_OFFSET = 0x0

COPY_RETRIES = 2

# Run on the panel by `mpremote exec`: each file's sha256, or "-" when it
# cannot be read. Kept small: a panel without PSRAM runs it.
_HASH_SCRIPT = """
import hashlib, binascii
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return '-'
    h = hashlib.sha256()
    b = bytearray(1024)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(b[:n])
    f.close()
    return binascii.hexlify(h.digest()).decode()
for _p in %r:
    print('SHA', _p, _h(_p))
"""

_MKDIRS_SCRIPT = """
import os
for _d in %r:
    try:
        os.mkdir(_d)
    except OSError:
        pass
"""


# Run on the panel before anything is copied: which chip its MicroPython
# runs on, and the app it holds (board and version), "-" when none.
_IDENTIFY_SCRIPT = """
import sys, json, os
print('MACHINE', getattr(sys.implementation, '_machine', '-'))
try:
    _m = json.load(open('manifest.json'))
    print('APP', _m.get('board', '-'), _m.get('version', '-'))
except Exception:
    print('APP - -')
try:
    print('CAL', os.stat('touch_cal.json')[6])
except OSError:
    print('CAL -')
try:
    print('OUTBOX', len([n for n in os.listdir('outbox') if n.endswith('.json')]))
except OSError:
    print('OUTBOX 0')
"""
IDENTIFY_S = 20
# A new CYD learns its touch film before it joins the broker
# (lbpanel/calibrate.py): its serial log says so; the installer is told to
# tap the crosses, and given this long more.
CALIBRATE_LINE = "touch the "
CALIBRATED_LINE = "touch calibrated"
CALIBRATE_WAIT_S = 180
# Kept across an image write (--image erases the whole chip).
CALIBRATION_FILE = "touch_cal.json"
BARE_BOARD_HINT = ("a board fresh from the box has no MicroPython: flash it with --image "
                   "(the board's image, docs/installer.md); otherwise press its reset "
                   "button, check the USB cable carries data, and run the command again")


class StepFailed(Exception):
    def __init__(self, step: str, what: str, hint: str):
        super().__init__(what)
        self.step, self.what, self.hint = step, what, hint


@dataclass
class Job:
    panel_id: str
    till: str
    board: str
    port: str
    boot_port: str | None = None   # where the ROM bootloader answers, when not `port`
    result: str = "waiting"        # ok / failed
    step: str = ""
    seconds: float = 0.0
    what: str = ""
    hint: str = ""
    fw: str | None = None
    rssi: int | None = None
    recopied: list[str] = field(default_factory=list)
    log: str = ""
    sources: dict = field(default_factory=dict, repr=False)  # device path -> local file
    found: dict = field(default_factory=dict)  # what the panel ran before (_identify)
    kept: dict = field(default_factory=dict, repr=False)  # device path -> local copy
    notes: list[str] = field(default_factory=list)  # what the installer should know


class StatusWatch:
    """The store broker's panel status messages, as the installer's login
    sees them (docs/installer.md); it may also send the panels commands
    (updates: panels/rollout.py)."""

    def __init__(self, cfg, user: str, password: str):
        self.store = cfg.store
        self._cond = threading.Condition()
        self.live: dict[str, tuple[float, dict]] = {}  # panel -> (arrived, newest live status)
        self.retained: dict[str, dict] = {}  # panel -> its retained status
        self.newest: dict[str, tuple[float, dict]] = {}  # panel -> (monotonic, retained or live)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"lb-installer-{os.getpid()}")
        self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.host, self.port = cfg.broker_host, cfg.broker_port
        self.refused: str | None = None
        self.connected = threading.Event()

    def start(self, timeout: float = 10.0) -> "StatusWatch":
        try:
            self.client.connect(self.host, self.port, 30)
        except OSError as e:
            raise StepFailed("broker", f"cannot reach the store broker at {self.host}:"
                             f"{self.port} ({e})", "start Mosquitto (systemctl start "
                             "mosquitto) or fix broker.host/port in the settings") from None
        self.client.loop_start()
        if not self.connected.wait(timeout) or self.refused:
            self.stop()
            raise StepFailed("broker", f"the store broker refused the installer's login "
                             f"({self.refused or 'no answer'})", "run 'loyalty-button panels "
                             "add' once more to write the login, and check that Mosquitto "
                             "reads panels.password_file")
        return self

    def _on_connect(self, client, userdata, flags, reason, properties=None):
        if reason.is_failure:
            self.refused = str(reason)
        else:
            client.subscribe(protocol.panel_topic(self.store, "+", "status"), qos=1)
        self.connected.set()

    def _on_message(self, client, userdata, message):
        try:
            got = panel_message(self.store, message.topic, message.payload)
        except protocol.ProtocolError:
            return
        if got is None:
            return
        panel, _, msg = got
        with self._cond:
            if message.retain:
                self.retained[panel] = msg
            else:
                self.live[panel] = (time.time(), msg)
            self.newest[panel] = (time.monotonic(), msg)
            self._cond.notify_all()

    def send(self, panel: str, leaf: str, msg: dict) -> None:
        self.client.publish(protocol.panel_topic(self.store, panel, leaf), protocol.encode(msg),
                            qos=1)

    def wait_online(self, panel: str, since: float, timeout: float) -> dict | None:
        """The panel's first live `online` status arriving after `since` (by
        this host's clock: a panel just booted may not know the time yet),
        or None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                arrived, msg = self.live.get(panel, (0, None))
                if msg and msg.get("state") == "online" and arrived >= since:
                    return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))

    def snapshot(self, wait: float = 1.0) -> dict[str, dict]:
        """Every panel's newest status (retained or live) after `wait` s."""
        time.sleep(wait)
        with self._cond:
            out = dict(self.retained)
            out.update({p: m for p, (_, m) in self.live.items()})
            return out

    def stop(self) -> None:
        self.client.loop_stop()
        try:
            self.client.disconnect()
        except OSError:
            pass


class Station:
    def __init__(self, cfg, registry: Registry, bundle_dirs: dict[str, Path],
                 image: Path | None = None, baud: int = 460800, online_timeout: float = 60.0):
        """bundle_dirs: board -> its app bundle folder (panels/bundle.py)."""
        self.cfg = cfg
        self.registry = registry
        self.bundle_dirs = {b: Path(d) for b, d in bundle_dirs.items()}
        self.manifests = {b: bundles.load(d) for b, d in self.bundle_dirs.items()}
        self.image = Path(image) if image else None
        if self.image and not self.image.is_file():
            raise StepFailed("image", f"no firmware image at {self.image}",
                             "give the merged image of a MicroPython + LVGL build for this "
                             "board (hardware/README.md, what a panel's image must hold)")
        self.baud = baud
        self.online_timeout = online_timeout
        self.mpremote = venv_tool("mpremote", "mpremote")
        self.esptool = venv_tool("esptool", "esptool") if image else None

    # --- one panel ----------------------------------------------------------
    def flash(self, job: Job, progress=lambda job, pct, text: None,
              watch: StatusWatch | None = None) -> Job:
        start = time.monotonic()
        done = 0

        def at(step_pct: float, text: str) -> None:
            progress(job, min(100, done + step_pct), text)
        try:
            if job.board not in self.manifests:
                raise StepFailed("bundle", f"no app bundle for {job.panel_id}'s board "
                                 f"{job.board}", f"build one with 'loyalty-button panels "
                                 f"bundle --board {job.board}'")
            self._port_present(job.port)
            if self.image:
                job.step = "image"
                self._before_erase(job)
                self._write_image(job, lambda pct: at(pct * 0.40, "image"))
            done = 40
            job.step = "copy"
            if not self.image:  # (with one, the panel was asked before the erase)
                at(0, "asking the panel what it runs")
                job.found = self._identify(job)
            files = self._copy(job, lambda pct: at(pct * 0.40, "copy"))
            done = 80
            job.step = "verify"
            at(0, "verify")
            for attempt in range(COPY_RETRIES + 1):
                bad = self._verify(job, files)
                if not bad:
                    break
                if attempt == COPY_RETRIES:
                    raise StepFailed("verify", f"{', '.join(sorted(bad))} still differ after "
                                     f"{COPY_RETRIES} copies", "try another USB cable or port; "
                                     "if it persists the panel's flash is failing")
                job.recopied += sorted(bad)
                self._copy_files(job, {p: files[p] for p in bad})
            done = 85
            job.step = "online"
            at(0, "reset")
            since = time.time()
            self._reset(job)
            at(2, "waiting for online")
            status = self._wait_online(job, watch, since, lambda text: at(3, text))
            job.fw, job.rssi = status.get("fw"), status.get("rssi")
            job.result, job.step = "ok", "online"
            progress(job, 100, "online")
        except StepFailed as e:
            job.result, job.what, job.hint = "failed", e.what, e.hint
            progress(job, done, "failed")
        except Exception as e:  # one panel's surprise must not stop the others
            job.result, job.what = "failed", f"{type(e).__name__}: {e}"
            job.hint = "see the log above; report it with the station's output"
            progress(job, done, "failed")
        job.seconds = round(time.monotonic() - start, 1)
        return job

    def _port_present(self, port: str) -> None:
        if "://" not in port and not os.path.exists(port):
            raise StepFailed("port", f"no serial device at {port}",
                             "plug the panel in with a data cable and check the name "
                             "(ls /dev/ttyUSB* /dev/ttyACM*)")

    def _before_erase(self, job: Job) -> None:
        """--image erases the whole chip. A panel that runs MicroPython is
        asked first (a panel of another board stops here): its touch
        calibration is read off to be put back, and what is lost is said
        (its unsent answers). A bare board has nothing to keep."""
        try:
            info = self._identify(job)
        except StepFailed as e:
            if e.step == "board":
                raise
            return  # no MicroPython answers: nothing on it to keep
        if info["unsent"]:
            job.notes.append(f"erased {info['unsent']} unsent answer(s)")
        if info["calibrated"]:
            keep = Path(tempfile.mkdtemp(prefix="lb-station-")) / CALIBRATION_FILE
            code, out = self._mpremote(job, "fs", "cp", ":" + CALIBRATION_FILE, str(keep),
                                       timeout=30)
            if code == 0 and keep.is_file():
                job.kept[CALIBRATION_FILE] = keep
                job.notes.append("touch calibration kept")
            else:
                job.notes.append("touch calibration could not be read: calibrate again")

    def _chip(self, job: Job) -> str | None:
        """The chip on the port, as its ROM bootloader names it (esptool's
        `chip-id`: "ESP32", "ESP32-S3"); None when it cannot be asked."""
        port = job.boot_port or job.port
        code, out = self._run_streaming(
            [self.esptool, "--port", port, "--baud", str(self.baud), "--before", "default-reset",
             "--after", "no-reset", "chip-id"], lambda line: None, timeout=60)
        m = re.search(r"Connected to (ESP32[-\w]*)", out) or \
            re.search(r"Detecting chip type\.\.\. (ESP32[-\w]*)", out)
        if code != 0 or not m:
            raise StepFailed("image", f"no ESP32 bootloader answered on {port} "
                             f"({_last_lines(out, 2)})",
                             "hold BOOT while plugging the panel in, then run the command "
                             "again; check the USB cable carries data")
        return m.group(1)

    def _write_image(self, job: Job, progress) -> None:
        port = job.boot_port or job.port
        chip = boards.get(job.board)["mcu"]  # esptool's name for the chip
        found = self._chip(job)
        if _chip_name(found) != chip:
            raise _wrong_board(job, f"its bootloader says it is an {found}")
        cmd = [self.esptool, "--chip", chip, "--port", port, "--baud", str(self.baud),
               "--before", "default-reset", "--after", "hard-reset",
               "write-flash", "--erase-all", hex(IMAGE_OFFSET), str(self.image)]
        out = self._run_streaming(cmd, lambda line: _percent(line, progress), timeout=600)
        if out[0] != 0 or "Hash of data verified" not in out[1]:
            raise _image_failure(job, out[1])

    def _mpremote_cmd(self, job: Job, *args: str) -> list[str]:
        return [self.mpremote, "connect", job.port, "resume", *args]

    def _mpremote(self, job: Job, *args: str, timeout: float = 120) -> tuple[int, str]:
        try:
            done = subprocess.run(self._mpremote_cmd(job, *args), capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StepFailed("copy", f"no MicroPython answered on {job.port} within "
                             f"{timeout:.0f} s", BARE_BOARD_HINT) from None
        return done.returncode, done.stdout + done.stderr

    def _identify(self, job: Job) -> dict:
        """What runs on the panel, asked before anything is copied: its
        MicroPython's machine (which chip) and the app it holds (board and
        version, from its manifest). A panel of another board is refused
        here, not after a copy that would not run on it."""
        code, out = self._mpremote(job, "exec", _IDENTIFY_SCRIPT, timeout=IDENTIFY_S)
        if code != 0:
            raise _serial_failure(job.port, out)
        got = {}
        for line in out.splitlines():
            key, _, value = line.partition(" ")
            if key in ("MACHINE", "APP", "CAL", "OUTBOX"):
                got[key] = value.strip()
        app_board, _, app_version = got.get("APP", "- -").partition(" ")
        info = {"machine": got.get("MACHINE", ""), "board": None if app_board == "-" else
                app_board, "version": None if app_version in ("", "-") else app_version,
                "calibrated": got.get("CAL", "-") not in ("-", "0"),
                "unsent": int(got["OUTBOX"]) if got.get("OUTBOX", "").isdigit() else 0}
        chip = _machine_chip(info["machine"])
        if chip and chip != boards.get(job.board)["mcu"]:
            raise _wrong_board(job, f"its MicroPython runs on an {chip.upper()} "
                                    f"({info['machine']})")
        if info["board"] and info["board"] != job.board:
            raise _wrong_board(job, f"it holds the {info['board']} app "
                                    f"(version {info['version'] or '?'})")
        return info

    def _panel_json_file(self, job: Job, tmp: Path) -> Path:
        path = tmp / f"{job.panel_id}-panel.json"
        path.write_text(json.dumps(self.registry.panel_json(job.panel_id), indent=1) + "\n")
        return path

    def _copy(self, job: Job, progress) -> dict[str, str]:
        """Copy the bundle and panel.json; returns {device path: sha256}."""
        folder = self.bundle_dirs[job.board]
        files = {rel: e["sha256"] for rel, e in self.manifests[job.board]["files"].items()}
        sources = {rel: folder / rel for rel in files}
        cfg_file = self._panel_json_file(job, Path(tempfile.mkdtemp(prefix="lb-station-")))
        files["panel.json"] = bundles.sha256_file(cfg_file)
        sources["panel.json"] = cfg_file
        files[bundles.MANIFEST] = bundles.sha256_file(folder / bundles.MANIFEST)
        sources[bundles.MANIFEST] = folder / bundles.MANIFEST
        for rel, local in job.kept.items():  # what --image erased, put back
            sources[rel] = local
            files[rel] = bundles.sha256_file(local)
        ca = self.registry.ca_der()
        if ca is not None:
            sources[CA_FILE] = cfg_file.with_name(CA_FILE)
            sources[CA_FILE].write_bytes(ca)
            files[CA_FILE] = bundles.sha256_file(sources[CA_FILE])
        job.sources = sources
        dirs = sorted({str(Path(rel).parent) for rel in files if "/" in rel})
        code, out = self._mpremote(job, "exec", _MKDIRS_SCRIPT % (dirs,), timeout=30)
        if code != 0:
            raise _serial_failure(job.port, out)
        self._copy_files(job, files, progress)
        return files

    def _copy_files(self, job: Job, files: dict[str, str], progress=lambda pct: None) -> None:
        args: list[str] = []
        for rel in sorted(files):
            args += (["+"] if args else []) + ["fs", "cp", str(job.sources[rel]), ":" + rel]
        total = len(files)
        copied = [0]

        def line_seen(line: str) -> None:
            if line.startswith("cp "):
                copied[0] += 1
                progress(100 * copied[0] / total)
        code, out = self._run_streaming(self._mpremote_cmd(job, *args), line_seen, timeout=600)
        if code != 0:
            raise _serial_failure(job.port, out)

    def _verify(self, job: Job, files: dict[str, str]) -> set[str]:
        code, out = self._mpremote(job, "exec", _HASH_SCRIPT % (sorted(files),), timeout=120)
        if code != 0:
            raise _serial_failure(job.port, out)
        seen = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "SHA":
                seen[parts[1]] = parts[2]
        return {rel for rel, digest in files.items() if seen.get(rel) != digest}

    def _reset(self, job: Job) -> None:
        # The panel restarts mid-command, so mpremote may report a lost
        # port: what counts is the panel coming online.
        try:
            self._mpremote(job, "reset", timeout=15)
        except subprocess.TimeoutExpired:
            pass

    def _wait_online(self, job: Job, watch: StatusWatch | None, since: float,
                     say=lambda text: None) -> dict:
        log = _SerialLog(job.port).start()
        try:
            status = self._await_online(job, watch, since, log.text, say) if watch else {}
        finally:
            job.log = log.stop()
        if status is None:
            raise StepFailed("online", *_why_not_online(job, self.cfg, self.online_timeout))
        return status

    def _await_online(self, job: Job, watch: StatusWatch, since: float, log_text,
                      say) -> dict | None:
        """The panel's live status, waiting online_timeout; a panel that
        asks for its touch calibration first (its serial log) gets
        CALIBRATE_WAIT_S more, and the installer is told to tap."""
        deadline = time.monotonic() + self.online_timeout
        asked = done = False
        while True:
            left = deadline - time.monotonic()
            status = watch.wait_online(job.panel_id, since, max(0.0, min(1.0, left)))
            if status is not None:
                return status
            text = log_text()
            if not asked and CALIBRATE_LINE in text:
                asked = True
                say(f"tap the crosses on till {job.till}'s screen now")
                deadline = time.monotonic() + CALIBRATE_WAIT_S + self.online_timeout
            if asked and not done and CALIBRATED_LINE in text:
                done = True
                say("touch calibrated; coming online")
                deadline = time.monotonic() + self.online_timeout
            if time.monotonic() >= deadline:
                return None

    @staticmethod
    def _run_streaming(cmd: list[str], on_line, timeout: float) -> tuple[int, str]:
        """Run cmd, calling on_line for each line (or \\r-ended progress
        update) of its output as it comes; returns (exit code, output)."""
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        out = bytearray()
        line = bytearray()
        try:
            while True:
                ch = proc.stdout.read(1)
                if not ch:
                    break
                out += ch
                if ch in b"\r\n":
                    if line:
                        on_line(line.decode("utf-8", "replace"))
                    line.clear()
                else:
                    line += ch
            if line:
                on_line(line.decode("utf-8", "replace"))
            return proc.wait(), out.decode("utf-8", "replace")
        finally:
            timer.cancel()

    # --- several panels -----------------------------------------------------
    def flash_all(self, jobs: list[Job], progress=lambda job, pct, text: None,
                  watch: StatusWatch | None = None) -> list[Job]:
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            return list(pool.map(lambda j: self.flash(j, progress, watch), jobs))


class _SerialLog:
    """What the panel prints on its serial port after the reset (as
    ESPHome's installer shows the logs): read until stopped."""

    def __init__(self, port: str):
        self.port = port
        self._buf = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> "_SerialLog":
        self._thread.start()
        return self

    def _read(self) -> None:
        import serial  # pyserial: mpremote's own dependency
        deadline = time.monotonic() + 5
        while not self._stop.is_set():
            try:
                with serial.serial_for_url(self.port, 115200, timeout=0.2) as s:
                    while not self._stop.is_set():
                        self._buf += s.read(4096)
                        del self._buf[:-32768]
                return
            except (OSError, serial.SerialException, ValueError):
                # The port comes back a moment after the reset.
                if time.monotonic() > deadline:
                    return
                time.sleep(0.1)

    def text(self) -> str:
        return bytes(self._buf).decode("utf-8", "replace")

    def stop(self) -> str:
        self._stop.set()
        self._thread.join(2)
        return self.text()


def _percent(line: str, progress) -> None:
    m = re.search(r"(\d{1,3}(?:\.\d)?)\s?%", line)
    if m:
        progress(float(m.group(1)))


def _last_lines(text: str, n: int) -> str:
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", text) if ln.strip()]
    return " | ".join(lines[-n:]) or "no output"


def _chip_name(esptool_name: str | None) -> str | None:
    """esptool's "ESP32-S3" -> the boards' "esp32s3"."""
    return esptool_name.lower().replace("-", "") if esptool_name else None


def _machine_chip(machine: str) -> str | None:
    """MicroPython's sys.implementation._machine on an ESP32 ("Generic ESP32
    module with ESP32", "ESP32S3 module with ESP32S3") -> "esp32" / "esp32s3";
    None for anything else (the simulator's unix port)."""
    m = re.search(r"with (ESP32\w*)\s*$", machine)
    return m.group(1).lower() if m else None


def _wrong_board(job: Job, why: str) -> StepFailed:
    board = boards.get(job.board)
    return StepFailed("board", f"till {job.till} is registered as a {job.board} "
                      f"({board['mcu'].upper()}), but the panel on {job.port}: {why}",
                      "check which panel is plugged into this port; if the till really has "
                      "this other panel, register it so: 'loyalty-button panels remove "
                      f"{job.panel_id}' then 'panels add {job.till} --board BOARD'")


def _image_failure(job: Job, out: str) -> StepFailed:
    """esptool's failure, said in a line: the chip that is not the board's,
    an image cut off half-way, or no bootloader."""
    wrong = re.search(r"This chip is (ESP32[-\w]*),? not (ESP32[-\w]*)", out)
    if wrong:
        return _wrong_board(job, f"its bootloader says it is an {wrong.group(1)}")
    if re.search(r"Writing at 0x[0-9a-f]+", out, re.I):
        return StepFailed("image", "the image was cut off while being written "
                          f"({_last_lines(out, 1)}): the panel's flash is half-written and "
                          "it will not start", "plug it back in (hold BOOT if it does not "
                          "show up) and flash it again with --image")
    return StepFailed("image", f"esptool could not write the image ({_last_lines(out, 2)})",
                      "hold BOOT while plugging the panel in, or lower --baud (115200)")


def _serial_failure(port: str, out: str) -> StepFailed:
    text = _last_lines(out, 2)
    if "failed to access" in out or "could not open" in out.lower() or "no device" in out:
        return StepFailed("port", f"cannot open {port} ({text})",
                          "check the port name; close any other program using it "
                          "(a serial monitor, another station)")
    return StepFailed("copy", f"the panel's REPL did not answer on {port} ({text})",
                      BARE_BOARD_HINT)


def _why_not_online(job: Job, cfg, timeout: float) -> tuple[str, str]:
    """(what, what to do) for a panel that did not come online, from its
    serial log."""
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", job.log) if ln.strip()]
    if CALIBRATE_LINE in job.log and CALIBRATED_LINE not in job.log:
        return (f"not online: the panel waited for its touch calibration (its log: "
                f"{[ln for ln in lines if CALIBRATE_LINE in ln][-1]})",
                "tap each cross on the panel's screen with a stylus as it appears; the "
                "panel then joins the broker (no need to flash again)")
    # "wifi: connected to <ssid>" or, later, "panel: connected to <broker>"
    joined = any("connected to" in ln for ln in lines)
    port = Registry(cfg).broker_port()
    wrong = [ln for ln in lines if "could not join" in ln and "wrong password" in ln]
    if wrong and not joined:
        return (f"not online: the Wi-Fi password for {cfg.panels_wifi_ssid!r} is wrong (its "
                f"log: {wrong[-1]})", "check panels.wifi_password (the store's Wi-Fi "
                "password, case matters), then flash again")
    missing = [ln for ln in lines if "could not join" in ln and "network not found" in ln]
    if missing and not joined:
        return (f"not online: the panel does not see the Wi-Fi {cfg.panels_wifi_ssid!r} (its "
                f"log: {missing[-1]})", "check panels.wifi_ssid (the exact name, case "
                "matters) and that the till is in the Wi-Fi's range (2.4 GHz: an ESP32 does "
                "not see 5 GHz networks); then flash again")
    if any("joining Wi-Fi" in ln for ln in lines) and not joined:
        wifi = [ln for ln in lines if "wifi" in ln.lower()]
        return (f"not online after {timeout:.0f} s: the panel cannot join Wi-Fi "
                f"{cfg.panels_wifi_ssid!r} (its log: {wifi[-1]})",
                "check panels.wifi_ssid and panels.wifi_password, and that the till is in "
                "the Wi-Fi's range; then flash again")
    broker = [ln for ln in lines if "broker" in ln and ("retrying" in ln or "refused" in ln)]
    if broker and ("certificate" in broker[-1] or "TLS" in broker[-1]):
        return (f"not online after {timeout:.0f} s: the panel does not trust the broker at "
                f"{cfg.panels_broker_host}:{port} (its log: {broker[-1]})",
                "the certificate must name panels.broker_host (mosquitto.tls_names) and come "
                "from the store's CA: run 'loyalty-button broker apply', then flash again")
    if broker:
        return (f"not online after {timeout:.0f} s: the panel cannot reach the broker at "
                f"{cfg.panels_broker_host}:{port} (its log: {broker[-1]})",
                "check panels.broker_host and panels.broker_port (the host's LAN address) "
                "and that Mosquitto listens there; a login refusal means the panel is "
                "not registered: 'loyalty-button panels add'")
    last = " | ".join(lines[-3:]) or "nothing on its serial port"
    return (f"not online after {timeout:.0f} s (its log: {last})",
            "watch the panel's screen: it names the problem; then flash again")
