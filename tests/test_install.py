"""The appliance package installed into a clean Debian 12 root, as a
retailer's Raspberry Pi gets it: `apt install ./loyalty-button_*.deb`, the
store set up, Mosquitto and the services started from their units' own
lines, a provisioned MicroPython panel answering a POS sale, then a backup
restored into a second root, an upgrade and a refused downgrade.

Runs alone with `tools/test tests/test_install.py` (a few minutes: two
installs from the Debian mirror). Needs root, mmdebstrap and the network to
the Debian registry; the root tarball is cached in $LB_CACHE."""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from loyalty_button.appliance import layout, package
from loyalty_button.service.records import SCHEMA_VERSION
from loyalty_button.sim.broker import free_port
from loyalty_button.sim.debian_root import DebianRoot, usable
from loyalty_button.sim.panel import SimPanel
from loyalty_button.sim.store import Pos

why_not = usable()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")

STORE = "msk-12"
ADMIN_PASSWORD = "manager-pass-1"
WIFI_PASSWORD = "wifi-pass-123"
SERVICE = "loyalty-button.service"
FIGURES: dict[str, float] = {}


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    """This version's package and a newer build of it (the upgrade)."""
    dist = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    deb = package.build("amd64", dist=dist, out=lambda m: None)
    FIGURES["package_build_s"] = time.monotonic() - started
    FIGURES["package_mb"] = deb.stat().st_size / 1e6
    newer = package.build("amd64", version=package.project()["version"] + "+upgrade1",
                          dist=dist, out=lambda m: None)
    return deb, newer


@pytest.fixture(scope="module")
def ports():
    return {"broker": free_port(), "tls": free_port(), "pos_http": free_port(),
            "pos_udp": free_port(), "dashboard": free_port()}


@pytest.fixture(scope="module")
def store(tmp_path_factory, debs, ports):
    """Root 1: installed, set up by the installer's CLI, broker and
    concentrator running from their units."""
    root = DebianRoot(tmp_path_factory.mktemp("root1") / "fs").make()
    logs = tmp_path_factory.mktemp("logs")
    try:
        started = time.monotonic()
        root.apt_install(debs[0])
        FIGURES["install_s"] = time.monotonic() - started
        FIGURES["installed_at"] = time.monotonic()
        yield _set_up(root, ports, logs)
    finally:
        root.close()
        # The figures for the closing note (not checks: the machine is shared).
        out = Path(__file__).resolve().parents[1] / "build" / "install-figures.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({k: round(v, 1) for k, v in FIGURES.items()
                                   if k != "installed_at"}) + "\n")


def _set_up(root: DebianRoot, ports: dict, logs: Path) -> dict:
    args = ["loyalty-button", "setup", "--store", STORE, "--timezone", "Europe/Moscow",
            "--tills", "1,2", "--admin", "manager", "--wifi-ssid", "shop-pos",
            "--address", "127.0.0.1", "--lang", "en",
            *[f"--port={k}={v}" for k, v in ports.items()]]
    done = root.run(args, input=f"{ADMIN_PASSWORD}\n{WIFI_PASSWORD}\n")
    key = next(line.split()[-1] for line in done.stdout.splitlines() if "POS key" in line)
    token = next(line.split()[-1] for line in done.stdout.splitlines() if "POS token" in line)
    mosquitto = root.start_unit("mosquitto.service", logs / "mosquitto.log")
    root.wait_file("/run/mosquitto/mosquitto.pid")
    conc = root.start_unit(SERVICE, logs / "concentrator.log")
    return {"root": root, "key": key, "token": token, "mosquitto": mosquitto,
            "concentrator": conc, "logs": logs, "setup_out": done.stdout}


def _panel_json(root: DebianRoot, panel_id: str) -> dict:
    """What `loyalty-button panels flash` writes to the panel, from the
    installed application inside the root."""
    code = ("import json; from loyalty_button.service import config; "
            "from loyalty_button.panels.registry import Registry; "
            f"print(json.dumps(Registry(config.load('{layout.CONFIG}')).panel_json('{panel_id}')))")
    done = root.run([str(layout.OPT / "venv/bin/python"), "-c", code], user=layout.USER)
    return json.loads(done.stdout)


def _records(root: DebianRoot, where: str = "1") -> list[dict]:
    db = root.file(str(layout.VAR / "records.db"))
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM records WHERE {where}")]
    finally:
        conn.close()


def _wait(predicate, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _ready(store) -> None:
    """The concentrator answers its status API once it is up."""
    import urllib.request
    url = f"http://127.0.0.1:{store['ports']['pos_http']}/api/v1/status"

    def up():
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError as e:
            return getattr(e, "code", None) in (401, 403)  # up, and it wants a token
    _wait(up, "the concentrator's HTTP listener", 60)


@pytest.fixture(scope="module")
def running(store, ports):
    store["ports"] = ports
    _ready(store)
    return store


# --- the package as installed -----------------------------------------------------

def test_files_users_and_modes(running):
    root = running["root"]
    user = root.run(["getent", "passwd", layout.USER]).stdout.split(":")
    assert user[6].strip() == "/usr/sbin/nologin"
    for folder in (layout.ETC, layout.VAR):
        st = root.file(str(folder)).stat()
        assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_uid == int(user[2])
    config = root.file(str(layout.CONFIG)).stat()
    assert stat.S_IMODE(config.st_mode) == 0o600  # it holds the POS key
    users = root.file(str(layout.ETC / "dashboard-users")).stat()
    assert stat.S_IMODE(users.st_mode) == 0o600
    passwd = root.file(str(layout.MOSQUITTO_PASSWD)).stat()
    mosq_gid = int(root.run(["getent", "group", "mosquitto"]).stdout.split(":")[2])
    assert stat.S_IMODE(passwd.st_mode) == 0o640 and passwd.st_gid == mosq_gid
    # Every wheel is pinned to its sha256, and the venv was made from them.
    reqs = root.file(str(layout.OPT / "wheels/requirements.txt")).read_text().splitlines()
    wheels = list(root.file(str(layout.OPT / "wheels")).glob("*.whl"))
    assert len(reqs) == len(wheels) > 20 and all("--hash=sha256:" in r for r in reqs)
    assert root.run(["loyalty-button", "--help"]).returncode == 0
    # The concentrator, the daily backup and the broker's path unit are
    # enabled; the probe is not (off until configured).
    wants = root.file("/etc/systemd/system/multi-user.target.wants")
    assert (wants / SERVICE).is_symlink() and (wants / "loyalty-button-broker.path").is_symlink()
    assert not (wants / "loyalty-button-probe.service").exists()
    assert root.file("/etc/systemd/system/timers.target.wants/"
                     "loyalty-button-backup.timer").is_symlink()
    for board in ("cyd", "s3_8048"):
        [manifest] = root.file(str(layout.OPT / "bundles")).glob(f"{board}-*/manifest.json")
        assert json.loads(manifest.read_text())["board"] == board


def test_units_pass_systemd_analyze_verify(running):
    root = running["root"]
    units = [f"/lib/systemd/system/{u}" for u in package.UNITS]
    done = root.run(["systemd-analyze", "verify", *units], check=False)
    assert done.returncode == 0, done.stderr
    ours = [line for line in done.stderr.splitlines() if "loyalty-button" in line]
    assert ours == [], ours
    unit = root.unit(SERVICE)
    for key, want in (("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"),
                      ("Restart", "on-failure"), ("Type", "notify"), ("User", layout.USER)):
        assert unit.keys[key] == [want], key
    assert "mosquitto.service" in unit.keys["After"][0]
    assert unit.keys["ReadWritePaths"] == [f"{layout.ETC} {layout.VAR}"]


# --- the store at work ---------------------------------------------------------------

def test_a_provisioned_panel_answers_a_pos_sale(running, tmp_path):
    root, ports = running["root"], running["ports"]
    cfg = _panel_json(root, "till-1")
    assert cfg["broker"]["user"] == "till-1" and cfg["wifi"]["ssid"] == "shop-pos"
    cfg["outbox"] = {"dir": str(tmp_path / "outbox")}
    panel = SimPanel(tmp_path / "till-1", cfg, name="till-1").start()
    try:
        log = running["logs"] / "concentrator.log"
        _wait(lambda: "panel till-1 is online" in log.read_text(), "the panel online", 60)
        pos = Pos(STORE, None, ports["pos_http"], token=running["token"])
        status, reply = pos.send_http(pos.receipt("1", "R-1001", loyalty_id="7000123"))
        assert status == 202 and reply["status"] == "accepted", reply
        shown = panel.wait_screen("question", timeout=20)
        panel.answer(shown["session"], 9)  # a member's receipt: the NPS question
        rec = _wait(lambda: _records(root, "receipt = 'R-1001' AND outcome = 'answered'"),
                    "the answered record on disk")[0]
        FIGURES.setdefault("install_to_first_answer_s",
                           time.monotonic() - FIGURES["installed_at"])
        assert rec["till"] == "1" and rec["panel"] == "till-1" and rec["loyalty_id"]
    finally:
        panel.stop()
    log = (running["logs"] / "concentrator.log").read_text()
    assert "Traceback" not in log


def test_a_panel_cannot_use_another_panels_password(running, tmp_path):
    import paho.mqtt.client as mqtt
    cfg = _panel_json(running["root"], "till-2")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="till-1")
    client.username_pw_set("till-1", cfg["broker"]["password"])  # till-2's password
    refused = []
    client.on_connect = lambda c, u, f, rc, p: refused.append(rc.is_failure)
    client.connect("127.0.0.1", running["ports"]["broker"])
    client.loop_start()
    try:
        _wait(lambda: refused, "the broker's answer")
    finally:
        client.loop_stop()
    assert refused == [True]


def test_setting_up_again_is_refused_and_changes_nothing(running):
    root = running["root"]
    before = root.file(str(layout.CONFIG)).read_bytes()
    done = root.run(["loyalty-button", "setup", "--store", "other", "--timezone", "UTC",
                     "--tills", "9", "--admin", "x", "--wifi-ssid", "y", "--address",
                     "127.0.0.1"], input="password9\n\n", check=False)
    assert done.returncode == 2 and "set up already" in done.stderr
    assert root.file(str(layout.CONFIG)).read_bytes() == before


def test_nonsense_settings_stop_only_the_new_start(running, tmp_path):
    """A settings file edited into nonsense: the concentrator refuses to
    start with every problem listed, and the records stay."""
    root = running["root"]
    config = root.file(str(layout.CONFIG))
    good = config.read_text()
    try:
        config.write_text(good.replace("timezone: Europe/Moscow", "timezone: Mars/Olympus")
                          .replace(f"http_port: {running['ports']['pos_http']}",
                                   "http_port: lots"))
        unit = root.unit(SERVICE)
        done = root.run(unit.start, user=unit.user, check=False)
        assert done.returncode == 2
        assert "timezone" in done.stderr and "pos.http_port" in done.stderr
    finally:
        config.write_text(good)
    assert _records(root, "receipt = 'R-1001'")


def test_a_stopped_mosquitto_is_named_and_the_store_waits_for_it(running):
    """Mosquitto down: `broker apply` says so instead of failing, the
    concentrator keeps running, and it is back on the broker when Mosquitto
    is."""
    root, log = running["root"], running["logs"] / "concentrator.log"
    connects = log.read_text().count("connected to broker")
    root.stop(running["mosquitto"])
    _wait(lambda: "lost the broker" in log.read_text(), "the concentrator to notice")
    done = root.run(["loyalty-button", "broker", "apply", "--config", str(layout.CONFIG)])
    assert "Mosquitto is not running" in done.stdout
    assert running["concentrator"].poll() is None
    running["mosquitto"] = root.start_unit("mosquitto.service", running["logs"] / "mosquitto.log")
    _wait(lambda: log.read_text().count("connected to broker") > connects,
          "the concentrator back on the broker", 60)


# --- backups, restore, upgrade, downgrade ----------------------------------------------

def test_backup_restores_into_a_second_root(running, debs, tmp_path_factory, ports):
    root = running["root"]
    done = root.run_unit("loyalty-button-backup.service")
    inside = done.stdout.strip().splitlines()[-1]
    backup = root.file(inside)
    assert backup.exists() and stat.S_IMODE(backup.stat().st_mode) == 0o600
    root2 = DebianRoot(tmp_path_factory.mktemp("root2") / "fs").make()
    try:
        root2.apt_install(debs[0])
        other = {k: free_port() for k in ports}
        root2.run(["loyalty-button", "setup", "--store", STORE, "--timezone", "Europe/Moscow",
                   "--tills", "1,2", "--admin", "manager", "--wifi-ssid", "shop-pos",
                   "--address", "127.0.0.1", "--no-broker",
                   *[f"--port={k}={v}" for k, v in other.items()]],
                  input=f"{ADMIN_PASSWORD}\n{WIFI_PASSWORD}\n")
        (root2.file("/tmp") / backup.name).write_bytes(backup.read_bytes())
        corrupt = root2.file("/tmp/corrupt.db")
        corrupt.write_bytes(backup.read_bytes()[:4096] + b"\0" * 4096)
        bad = root2.run(["loyalty-button", "restore", "/tmp/corrupt.db", "--config",
                         str(layout.CONFIG)], check=False)
        assert bad.returncode == 1 and "restore:" in bad.stderr
        done = root2.run(["loyalty-button", "restore", f"/tmp/{backup.name}", "--config",
                          str(layout.CONFIG)])
        assert "restored" in done.stdout
        assert _records(root2, "receipt = 'R-1001' AND outcome = 'answered'")
        db = root2.file(str(layout.VAR / "records.db")).stat()
        svc_uid = int(root2.run(["id", "-u", layout.USER]).stdout)
        assert db.st_uid == svc_uid  # the service can still write it
    finally:
        root2.close()


def test_restore_is_refused_while_the_concentrator_runs(running):
    root = running["root"]
    inside = root.run_unit("loyalty-button-backup.service").stdout.strip().splitlines()[-1]
    done = root.run(["loyalty-button", "restore", inside,
                     "--config", str(layout.CONFIG)], check=False)
    assert done.returncode == 1 and "in use by a running concentrator" in done.stderr


def test_upgrade_keeps_settings_and_records(running, debs):
    root = running["root"]
    config_before = root.file(str(layout.CONFIG)).read_bytes()
    root.stop(running["concentrator"])  # prerm's `systemctl stop`, which cannot run here
    root.apt_install(debs[1])
    version = root.run(["dpkg-query", "-W", "-f=${Version}", "loyalty-button"]).stdout
    assert version.endswith("+upgrade1")
    assert root.file(str(layout.CONFIG)).read_bytes() == config_before
    running["concentrator"] = root.start_unit(SERVICE, running["logs"] / "concentrator.log")
    _ready(running)
    assert _records(root, "receipt = 'R-1001' AND outcome = 'answered'")


def test_a_downgrade_over_a_newer_database_is_refused(running, debs):
    root = running["root"]
    root.stop(running["concentrator"])
    db = root.file(str(layout.VAR / "records.db"))
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    try:
        # apt asks for --allow-downgrades; the package's preinst still refuses.
        done = root.apt_install(debs[0], check=False, downgrade=True)
        assert done.returncode != 0
        assert "written by a newer Loyalty Button" in done.stderr + done.stdout
        version = root.run(["dpkg-query", "-W", "-f=${Version}", "loyalty-button"]).stdout
        assert version.endswith("+upgrade1")  # the installed version stays
    finally:
        conn = sqlite3.connect(db)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
        conn.commit()
        conn.close()
    assert _records(root, "receipt = 'R-1001'")
