"""The installer's station end to end (docs/installer.md), with the real
tools against real protocol implementations: `loyalty-button panels ...` as
an installer runs it; esptool writing the firmware image into
esp32-mock-bootloader (a mock of the ESP32 ROM bootloader's serial
protocol); mpremote copying the app bundle to the MicroPython unix port's
real REPL on a pseudo-terminal (sim/serial_panel.py: the folder is the
panel's flash, machine.reset a restart); the panels then boot from what was
copied and log in to a real Mosquitto with the credentials `add` made."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import time

import pytest
import serial
from esp32_mock_bootloader import mock_bootloader

from loyalty_button.panels import bundle
from loyalty_button.panels.firmware_build import venv_tool
from loyalty_button.sim.broker import free_port
from loyalty_button.sim.install_rig import (HOST_PASSWORD, STORE, WIFI, start_broker,
                                            store_config)
from loyalty_button.sim.panel_link import PanelLink
from loyalty_button.sim.serial_panel import SerialPanel

_config = store_config


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([venv_tool("loyalty-button", "loyalty-button"), *args],
                          capture_output=True, text=True, timeout=timeout)


def _rows(table: str) -> dict[str, str]:
    """The final table's lines, by till."""
    out = {}
    for line in table.splitlines():
        m = re.match(r"^(\S+)\s+(till-\S+)\s", line)
        if m:
            out[m.group(1)] = line
    return out


@pytest.fixture
def store(tmp_path):
    broker = start_broker(tmp_path)
    yield tmp_path, broker
    broker.stop()


@pytest.fixture
def devices():
    made = []

    def plug(*args, **kw) -> SerialPanel:
        made.append(SerialPanel(*args, **kw).start())
        return made[-1]
    yield plug
    for d in made:
        d.stop()


def test_three_panels_flashed_in_parallel_come_online_and_answer(store, devices):
    root, broker = store
    cfg = str(_config(root, broker))
    boards = {"1": "cyd", "2": "cyd", "3": "s3_8048"}
    for till, board in boards.items():
        added = _cli("panels", "add", till, "--board", board, "--config", cfg)
        assert added.returncode == 0, added.stderr
        assert f"till-{till}: registered for till {till}" in added.stdout
    assert "till-3:" in (broker.workdir / "passwd").read_text()
    image = root / "firmware.bin"
    image.write_bytes(os.urandom(64 * 1024))

    panels = {t: devices(root / f"flash-{t}", name=f"till-{t}", air=[WIFI],
                         corrupt_once="lbpanel/app.mpy" if t == "2" else None)
              for t in boards}
    mocks = {t: mock_bootloader(chip="esp32" if b == "cyd" else "esp32s3")
             for t, b in boards.items()}
    try:
        ports = [f"--port={t}={panels[t].port},{mocks[t].url()}" for t in boards]
        started = time.monotonic()
        flashed = _cli("panels", "flash", "--config", cfg, "--image", str(image),
                       "--timeout", "40", *ports)
        seconds = time.monotonic() - started
        assert flashed.returncode == 0, flashed.stdout + flashed.stderr
        rows = _rows(flashed.stdout)
        for till in boards:
            assert re.search(r"\bok\b.*\b0\.1\.0\s+-58 dBm", rows[till]), rows[till]
        # The flipped byte was caught by the panel's own sha256 and copied again.
        assert panels["2"].corrupted
        assert "recopied lbpanel/app.mpy" in rows["2"]
        assert "3 of 3 panels online" in flashed.stdout
        print(f"3 panels in parallel: {seconds:.1f} s")  # the closing note's figure

        # What each ROM bootloader holds is the image, byte for byte (read
        # through the ROM loader: the mock's stub-mode read_flash breaks off
        # at the end of a long read, "serial data stream stopped").
        for till, board in boards.items():
            back = root / f"back-{till}.bin"
            read = subprocess.run(
                [venv_tool("esptool", "esptool"), "--chip", mocks[till].chip, "--port",
                 mocks[till].url(), "--no-stub", "read-flash", "0x0",
                 str(image.stat().st_size), str(back)],
                capture_output=True, text=True, timeout=120)
            assert read.returncode == 0, read.stdout[-500:]
            assert back.read_bytes() == image.read_bytes()
    finally:
        for m in mocks.values():
            m.stop()

    # Each panel's flash holds the bundle for its board and its own panel.json.
    for till, board in boards.items():
        flash = root / f"flash-{till}"
        manifest = json.loads((flash / "manifest.json").read_text())
        assert manifest["board"] == board
        for rel, entry in manifest["files"].items():
            assert bundle.sha256_file(flash / rel) == entry["sha256"], (till, rel)
        cfg_doc = json.loads((flash / "panel.json").read_text())
        assert (cfg_doc["panel_id"], cfg_doc["wifi"]["ssid"], cfg_doc["lang"]) == \
            (f"till-{till}", WIFI, "ru")

    # They work: a question each, answered on the panel's own console.
    link = PanelLink(STORE, port=broker.port, user="host", password=HOST_PASSWORD).start()
    try:
        for till in boards:
            link.ask(f"till-{till}", f"r-{till}", "nps-main", "nps", "Порекомендуете нас?")
        time.sleep(1.0)  # past the question guard
        for till in boards:
            with serial.serial_for_url(panels[till].port, 115200, timeout=1) as port:
                port.write(b"tap 9\n")
        for till in boards:
            answer = link.wait_answer(f"r-{till}", timeout=15)
            assert answer["value"] == 9 and answer["panel"] == f"till-{till}"
    finally:
        link.stop()

    # A panel already at work is flashed again (mpremote's Ctrl-C stops its
    # app and gives the REPL): the same login, online again.
    again = _cli("panels", "flash", "--config", cfg, "--timeout", "30",
                 f"--port=1={panels['1'].port}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert panels["1"].boots == 2

    listed = _cli("panels", "list", "--config", cfg)
    assert listed.returncode == 0, listed.stderr
    for till, board in boards.items():
        assert re.search(rf"^{till}\s+till-{till}\s+{board}\s+online\s+0\.1\.0\s+-58 dBm",
                         listed.stdout, re.M), listed.stdout

    removed = _cli("panels", "remove", "till-3", "--config", cfg)
    assert removed.returncode == 0, removed.stderr
    assert "till-3:" not in (broker.workdir / "passwd").read_text()
    assert "till-1:" in (broker.workdir / "passwd").read_text()
    # Mosquitto checks connected clients again on the reload: the removed
    # panel is cut off at once and cannot come back (and the command says so).
    assert "cut off at once" in removed.stdout, removed.stdout
    deadline = time.monotonic() + 15
    while "not authorised" not in panels["3"].log():
        assert time.monotonic() < deadline, panels["3"].log()[-1500:]
        time.sleep(0.2)


def test_a_wrong_port_and_panels_that_never_come_online_say_why(store, devices):
    root, broker = store
    cfg = str(_config(root, broker))
    for till in ("4", "5"):
        assert _cli("panels", "add", till, "--board", "cyd", "--config", cfg).returncode == 0
    # Till 5's panel is told a Wi-Fi name that is not in the air at its till;
    # till 10's Wi-Fi is there, but wants another password than the store's.
    assert _cli("panels", "add", "10", "--board", "cyd", "--config", cfg).returncode == 0
    far = devices(root / "flash-5", name="till-5", air=["the-cafe-next-door"])
    locked = devices(root / "flash-10", name="till-10", air=[f"{WIFI}=not-secret123"])
    run = _cli("panels", "flash", "--config", cfg, "--timeout", "8",
               "--port", "4=/dev/ttyUSB-nothing-here", "--port", f"5={far.port}",
               "--port", f"10={locked.port}")
    assert run.returncode == 1
    rows = _rows(run.stdout)
    assert "failed" in rows["4"] and "no serial device at /dev/ttyUSB-nothing-here" in rows["4"]
    assert "ls /dev/ttyUSB*" in rows["4"]
    assert "failed" in rows["5"] and f"does not see the Wi-Fi '{WIFI}'" in rows["5"]
    assert "network not found" in rows["5"] and "panels.wifi_ssid" in rows["5"]
    assert f"the Wi-Fi password for '{WIFI}' is wrong" in rows["10"], rows["10"]
    assert "panels.wifi_password" in rows["10"]
    assert "0 of 3 panels online" in run.stdout
    # The panel's own log and problem screen (the headless UI writes each
    # screen to the serial port) say it too.
    assert f"could not join '{WIFI}': wrong password" in locked.log()
    assert f"cannot join Wi-Fi '{WIFI}': wrong password" in locked.log()

    # The panels told a broker port where nothing listens.
    closed = free_port()
    cfg2 = str(_config(root, broker, panels_port=closed, name="wrong-port.yaml"))
    assert _cli("panels", "add", "6", "--board", "cyd", "--config", cfg2).returncode == 0
    lost = devices(root / "flash-6", name="till-6", air=[WIFI])
    run = _cli("panels", "flash", "--config", cfg2, "--timeout", "8", "--port", f"6={lost.port}")
    assert run.returncode == 1
    row = _rows(run.stdout)["6"]
    assert f"cannot reach the broker at 127.0.0.1:{closed}" in row
    assert "panels.broker_host" in row


def test_adding_a_till_twice_or_without_the_settings_is_refused(store):
    root, broker = store
    cfg = str(_config(root, broker))
    assert _cli("panels", "add", "1", "--board", "cyd", "--config", cfg).returncode == 0
    again = _cli("panels", "add", "1", "--board", "cyd", "--config", cfg)
    assert again.returncode == 2 and "already has a panel (till-1)" in again.stderr
    bad = _cli("panels", "add", "../x", "--board", "cyd", "--config", cfg)
    assert bad.returncode == 2 and "letters, digits" in bad.stderr
    # --all on a machine with no USB serial port plugged in (CI's).
    if not glob.glob("/dev/ttyUSB*") + glob.glob("/dev/ttyACM*"):
        none = _cli("panels", "flash", "--config", cfg, "--all")
        assert none.returncode == 2 and "no USB serial ports found" in none.stderr
    bare = root / "bare.yaml"
    bare.write_text(f"store: {STORE}\ncatalogue: catalogue.yaml\ndatabase: data/other.db\n")
    refused = _cli("panels", "add", "2", "--board", "cyd", "--config", str(bare))
    assert refused.returncode == 2
    assert "set panels.wifi_ssid, panels.broker_host, panels.password_file" in refused.stderr


def test_a_store_on_tls_gives_its_panels_the_ca_and_they_come_online_over_tls(tmp_path, devices):
    """panels.tls: panel.json dials the broker's TLS listener and names the
    store's CA, which the station copies (and verifies) beside it; the
    panel's MicroPython mbedTLS trusts only that CA, for that address."""
    import ssl
    broker = start_broker(tmp_path, tls=True)
    try:
        cfg = str(_config(tmp_path, broker))
        # No CA yet: refused before anything is written to a panel.
        tls_dir = broker.tls_dir
        (tls_dir / "ca.crt").rename(tls_dir / "ca.crt.away")
        assert _cli("panels", "add", "1", "--board", "cyd", "--config", cfg).returncode == 0
        early = devices(tmp_path / "flash-early", name="till-1", air=[WIFI])
        run = _cli("panels", "flash", "--config", cfg, "--timeout", "8",
                   "--port", f"1={early.port}")
        assert run.returncode == 1 and "run 'loyalty-button broker apply' first" in run.stdout
        (tls_dir / "ca.crt.away").rename(tls_dir / "ca.crt")

        panel = devices(tmp_path / "flash-1", name="till-1", air=[WIFI])
        run = _cli("panels", "flash", "--config", cfg, "--timeout", "30",
                   "--port", f"1={panel.port}")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "1 of 1 panels online" in run.stdout
        doc = json.loads((panel.flash / "panel.json").read_text())
        assert doc["broker"]["port"] == broker.tls_port and doc["broker"]["ca_file"] == "ca.der"
        assert (panel.flash / "ca.der").read_bytes() == \
            ssl.PEM_cert_to_DER_cert((tls_dir / "ca.crt").read_text())
        # Mosquitto saw the panel log in on the TLS listener.
        log = broker.log_path.read_text()
        assert re.search(rf"New connection from [\d.:]+ on port {broker.tls_port}\.\n"
                         rf"\d+: New client connected from [\d.:]+ as till-1 ", log), log
        link = PanelLink(STORE, port=broker.port, user="host", password=HOST_PASSWORD).start()
        try:
            link.ask("till-1", "r-tls", "nps-main", "nps", "Порекомендуете нас?")
            time.sleep(1.0)  # past the question guard
            with serial.serial_for_url(panel.port, 115200, timeout=1) as port:
                port.write(b"tap 10\n")
            assert link.wait_answer("r-tls", timeout=15)["value"] == 10
        finally:
            link.stop()

        # The broker's certificate no longer names the address the panels
        # dial: the panel refuses it, and the station says what to fix.
        from loyalty_button.service import broker_conf
        broker_conf.ensure_tls(tls_dir, ["store-host.local"], STORE)
        broker.restart()
        run = _cli("panels", "flash", "--config", cfg, "--timeout", "8",
                   "--port", f"1={panel.port}")
        assert run.returncode == 1
        row = _rows(run.stdout)["1"]
        assert "does not trust the broker at 127.0.0.1" in row, row
        assert "does not match" in row and "mosquitto.tls_names" in row
    finally:
        broker.stop()


def test_a_bare_board_a_wrong_board_and_one_port_twice_each_say_what_to_do(store, devices):
    """A board with no MicroPython is told to flash with --image; a panel of
    another board is refused before anything is written, whether its
    bootloader (with --image) or its running app (without) says so; the
    same port for two tills is refused before any panel is touched."""
    root, broker = store
    cfg = str(_config(root, broker))
    for till in ("7", "8", "9"):
        assert _cli("panels", "add", till, "--board", "cyd", "--config", cfg).returncode == 0
    # A bare board: its USB serial port is there, nothing answers on it.
    master, slave = os.openpty()
    bare = os.ttyname(slave)
    # Till 8's panel still holds the S3's app from an earlier life.
    s3_flash = root / "flash-8"
    s3_flash.mkdir()
    (s3_flash / "manifest.json").write_text(json.dumps({"board": "s3_8048", "version": "0.1.0",
                                                        "files": {}}))
    s3_app = devices(s3_flash, name="till-8", air=[WIFI])
    try:
        run = _cli("panels", "flash", "--config", cfg, "--timeout", "8",
                   "--port", f"7={bare}", "--port", f"8={s3_app.port}", timeout=240)
    finally:
        os.close(master)
        os.close(slave)
    assert run.returncode == 1
    rows = _rows(run.stdout)
    assert "failed" in rows["7"] and "flash it with --image" in rows["7"], rows["7"]
    assert "it holds the s3_8048 app (version 0.1.0)" in rows["8"], rows["8"]
    assert "registered as a cyd (ESP32)" in rows["8"] and "panels remove till-8" in rows["8"]
    assert json.loads((s3_flash / "manifest.json").read_text())["board"] == "s3_8048"

    # With --image, the chip is asked first: an ESP32-S3 on a CYD's till.
    image = root / "firmware.bin"
    image.write_bytes(os.urandom(16 * 1024))
    s3_chip = mock_bootloader(chip="esp32s3")
    panel9 = devices(root / "flash-9", name="till-9", air=[WIFI])
    try:
        run = _cli("panels", "flash", "--config", cfg, "--image", str(image), "--timeout", "8",
                   f"--port=9={panel9.port},{s3_chip.url()}")
    finally:
        s3_chip.stop()
    assert run.returncode == 1
    row = _rows(run.stdout)["9"]
    assert "its bootloader says it is an ESP32-S3" in row, row
    assert not (root / "flash-9" / "manifest.json").exists()  # nothing was copied

    # One port for two tills: refused before any panel is touched.
    twice = _cli("panels", "flash", "--config", cfg, "--port", f"7={panel9.port}",
                 "--port", f"9={panel9.port}")
    assert twice.returncode == 2
    assert f"{panel9.port} is given for till 7 and till 9" in twice.stderr


def test_all_pairs_tills_and_ports_in_natural_order():
    from loyalty_button.panels.commands import natural
    assert sorted(["10", "2", "1", "b2", "b10"], key=natural) == ["1", "2", "10", "b2", "b10"]
    assert sorted(["/dev/ttyUSB10", "/dev/ttyUSB2", "/dev/ttyACM0"], key=natural) == \
        ["/dev/ttyACM0", "/dev/ttyUSB2", "/dev/ttyUSB10"]


def test_esptool_s_failures_are_said_in_a_line():
    from loyalty_button.panels.station import Job, _image_failure, _machine_chip
    job = Job("till-1", "1", "cyd", "/dev/ttyUSB0")
    cut = ("Writing at 0x00010000 [=====>     ] 31.2% 45056/144384 bytes...\n"
           "A fatal error occurred: Serial data stream stopped: Possible serial noise or "
           "corruption.")
    e = _image_failure(job, cut)
    assert "half-written" in e.what and "flash it again with --image" in e.hint
    e = _image_failure(job, "A fatal error occurred: This chip is ESP32-S3, not ESP32. "
                            "Wrong chip argument?")
    assert e.step == "board" and "ESP32-S3" in e.what and len(e.what) < 160
    assert _machine_chip("Generic ESP32 module with ESP32") == "esp32"
    assert _machine_chip("ESP32S3 module with ESP32S3") == "esp32s3"
    assert _machine_chip("x86_64") is None


def test_a_panel_that_asks_for_its_touch_calibration_gets_the_time_and_the_installer_is_told():
    """A new CYD shows its crosses before it joins the broker (its serial
    log says so): the station tells the installer to tap them and waits
    for them, instead of "not online after 60 s"."""
    from loyalty_button.panels import station as st

    class Watch:
        online_at = None

        def wait_online(self, panel, since, timeout):
            time.sleep(min(timeout, 0.02))
            if self.online_at and time.monotonic() >= self.online_at:
                return {"state": "online", "fw": "0.1.0"}
            return None
    station = st.Station.__new__(st.Station)
    station.online_timeout = 0.3
    job = st.Job("till-1", "1", "cyd", "/dev/ttyUSB0")
    log = ["[boot]\n"]
    said = []
    watch = Watch()
    started = time.monotonic()
    # The crosses come up; the installer taps them for a second, then the
    # panel joins the broker.
    log.append("I calibrate: touch the 5 crosses on the screen\n")

    def log_text():
        if time.monotonic() - started > 1.0 and st.CALIBRATED_LINE not in "".join(log):
            log.append("I calibrate: touch calibrated and stored: {...}\n")
            watch.online_at = time.monotonic() + 0.1
        return "".join(log)
    status = station._await_online(job, watch, 0, log_text, said.append)
    assert status == {"state": "online", "fw": "0.1.0"}
    assert said == ["tap the crosses on till 1's screen now", "touch calibrated; coming online"]
    assert time.monotonic() - started > 1.0  # past online_timeout: it waited for the taps

    # Nobody taps: it gives up in the end, and says what the panel waits for.
    log[:] = ["I calibrate: touch the 5 crosses on the screen\n"]
    st.CALIBRATE_WAIT_S, saved = 0.2, st.CALIBRATE_WAIT_S
    try:
        assert station._await_online(job, Watch(), 0, lambda: "".join(log), said.append) is None
    finally:
        st.CALIBRATE_WAIT_S = saved
    job.log = "".join(log)
    what, hint = st._why_not_online(job, None, 60)
    assert "waited for its touch calibration" in what and "tap each cross" in hint


def test_an_image_keeps_the_touch_calibration_and_says_what_it_erased(store, devices):
    root, broker = store
    cfg = str(_config(root, broker))
    assert _cli("panels", "add", "11", "--board", "cyd", "--config", cfg).returncode == 0
    flash = root / "flash-11"
    (flash / "outbox").mkdir(parents=True)
    for n in range(2):
        (flash / "outbox" / f"000000000{n}.a{n}.json").write_text("{}")
    cal = '{"a": 0.0812, "b": -0.0003, "c": -10.2, "d": 0.0004, "e": 0.0657, "f": -7.9}'
    (flash / "touch_cal.json").write_text(cal)
    panel = devices(flash, name="till-11", air=[WIFI])
    chip = mock_bootloader(chip="esp32")
    image = root / "firmware.bin"
    image.write_bytes(os.urandom(16 * 1024))
    proc = subprocess.Popen(
        [venv_tool("loyalty-button", "loyalty-button"), "panels", "flash", "--config", cfg,
         "--image", str(image), "--timeout", "30", f"--port=11={panel.port},{chip.url()}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    try:
        for line in proc.stdout:
            out.append(line)
            if ": copy (" in line and (flash / "touch_cal.json").exists():
                # The image is written: the simulated chip's file system
                # is erased with it, as a real chip's is.
                (flash / "touch_cal.json").unlink()
                shutil.rmtree(flash / "outbox")
        assert proc.wait(180) == 0, "".join(out)
    finally:
        chip.stop()
    row = _rows("".join(out))["11"]
    assert "erased 2 unsent answer(s)" in row and "touch calibration kept" in row, row
    # Written back after the image: the same film, no new calibration.
    assert (flash / "touch_cal.json").read_text() == cal
