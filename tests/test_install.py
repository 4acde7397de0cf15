"""The appliance packages installed into clean Debian roots, as a
retailer's Raspberry Pi gets them: `apt install ./loyalty-button_*.deb`.

- In a Debian 13 (trixie, today's Raspberry Pi OS) amd64 root, in depth:
  the Debian 12 package refused in words with dpkg left clean, then the
  store set up, Mosquitto and the services started from their units' own
  lines, a provisioned MicroPython panel answering a POS sale, a backup
  moved to a fresh root with a store backup made on the dashboard and
  restored on the set-up page, an upgrade and a refused downgrade.
- In a Debian 12 (bookworm) amd64 root and, under qemu-user, a Debian 13
  arm64 root (a Raspberry Pi's): the package for it installs (its venv made
  from the wheels it carries), the store is set up, the concentrator starts
  from its unit's lines, takes a receipt, answers a panel and writes the
  record, and the probe's models analyse a photo.

Test ids name the release and the architecture; each install prints its
time. Runs alone with `tools/test tests/test_install.py`. Needs root,
mmdebstrap, qemu-user-static for arm64, and the network to the Debian
registry; the root tarballs are cached in $LB_CACHE."""

from __future__ import annotations

import json
import socket
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from loyalty_button.appliance import layout, package
from loyalty_button.service.records import SCHEMA_VERSION
from loyalty_button.sim.broker import free_port
from loyalty_button.sim.debian_root import NATIVE, DebianRoot, usable
from loyalty_button.sim.panel import SimPanel
from loyalty_button.sim.store import Pos

why_not = usable()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")

STORE = "msk-12"
ADMIN_PASSWORD = "manager-pass-1"
WIFI_PASSWORD = "wifi-pass-123"
SERVICE = "loyalty-button.service"
FIGURES: dict[str, float] = {}
# Where the tests below run in depth: today's Raspberry Pi OS's release, on
# this machine's architecture.
DEPTH = ("trixie", NATIVE)


def _say(request, line: str) -> None:
    """A figure shown as the suite runs, even under -q."""
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\n[install] {line}", flush=True)


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    return tmp_path_factory.mktemp("dist")


def _deb(dist: Path, release: str, arch: str, version: str | None = None) -> Path:
    """The package for a release and architecture, built once per run."""
    name = f"loyalty-button_{package.deb_version(version or package.project()['version'], release)}_{arch}.deb"
    if (dist / name).exists():
        return dist / name
    started = time.monotonic()
    deb = package.build(arch, version=version, dist=dist, out=lambda m: None, release=release)
    FIGURES[f"package_build_{release}_{arch}_s"] = time.monotonic() - started
    FIGURES[f"package_{release}_{arch}_mb"] = deb.stat().st_size / 1e6
    return deb


@pytest.fixture(scope="module", params=["-".join(DEPTH)])
def debs(request, dist):
    """This version's package for DEPTH and a newer build of it (the upgrade)."""
    release, arch = request.param.split("-")
    return (_deb(dist, release, arch),
            _deb(dist, release, arch, package.project()["version"] + "+upgrade1"))


@pytest.fixture(scope="module")
def ports():
    return {"broker": free_port(), "tls": free_port(), "pos_http": free_port(),
            "pos_udp": free_port(), "dashboard": free_port()}


@pytest.fixture(scope="module")
def store(tmp_path_factory, debs, dist, ports, request):
    """Root 1: first offered the package of the other release (refused),
    then installed, set up by the installer's CLI, broker and concentrator
    running from their units."""
    root = DebianRoot(tmp_path_factory.mktemp("root1") / "fs", *DEPTH).make()
    logs = tmp_path_factory.mktemp("logs")
    try:
        wrong = _deb(dist, "bookworm", DEPTH[1])
        refused = {"apt": root.apt_install(wrong, check=False),
                   "forced": root.run(["dpkg", "-i", "--force-depends", f"/tmp/{wrong.name}"],
                                      check=False),
                   "audit": root.run(["dpkg", "--audit"], check=False),
                   "apt_check": root.run(["apt-get", "check", "-qq"], check=False),
                   "unpacked": root.file(str(layout.OPT)).exists(),
                   "status": root.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}",
                                       "loyalty-button"], check=False)}
        started = time.monotonic()
        root.apt_install(debs[0])
        FIGURES["install_s"] = time.monotonic() - started
        FIGURES["installed_at"] = time.monotonic()
        _say(request, f"{'-'.join(DEPTH)}: installed in {FIGURES['install_s']:.0f} s "
                      f"({debs[0].stat().st_size / 1e6:.0f} MB)")
        yield {**_set_up(root, ports, logs), "refused": refused}
    finally:
        root.close()
        # The figures for the closing note (not checks: the machine is shared).
        out = Path(__file__).resolve().parents[1] / "build" / "install-figures.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({k: round(v, 1) for k, v in FIGURES.items()
                                   if k != "installed_at"}) + "\n")


def _set_up(root: DebianRoot, ports: dict, logs: Path) -> dict:
    """`loyalty-button setup` as an installer runs it, then Mosquitto and the
    concentrator started from their units' lines."""
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


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Mosquitto binds
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def _ready(store, timeout: float = 60) -> None:
    """The concentrator answers its status API once it is up."""
    import urllib.request
    url = f"http://127.0.0.1:{store['ports']['pos_http']}/api/v1/status"

    def up():
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError as e:
            return getattr(e, "code", None) in (401, 403)  # up, and it wants a token
    _wait(up, "the concentrator's HTTP listener", timeout)


@pytest.fixture(scope="module")
def running(store, ports):
    store["ports"] = ports
    _ready(store)
    return store


# --- the package as installed -----------------------------------------------------

def test_the_other_releases_package_is_refused_in_words_and_dpkg_stays_clean(running):
    refused = running["refused"]
    for how in ("apt", "forced"):
        done = refused[how]
        said = done.stdout + done.stderr
        assert done.returncode != 0, how
        assert "this package is for Debian 12 (bookworm, Python 3.11)" in said, said
        assert "+deb13_<arch>.deb (Debian 13, trixie)" in said, said
        assert "nothing was installed" in said, said
    assert not refused["unpacked"]
    # Nothing left to repair: no package unpacked and unconfigured, half
    # installed or half configured (apt may leave the triggers of what it
    # installed first, libc-bin's ldconfig, for its next run to process).
    audit = refused["audit"].stdout
    for state in ("not yet configured", "half installed", "half configured", "missing"):
        assert state not in audit, audit
    assert refused["apt_check"].returncode == 0, refused["apt_check"].stdout
    # dpkg has it as not installed, with no error flag ("in ": apt had asked
    # for it; "un": nobody had), or not at all.
    status = refused["status"].stdout
    assert status == "" or (status[1] == "n" and status[2:].strip() == ""), status
    # The real install after it leaves dpkg with nothing pending at all.
    assert running["root"].run(["dpkg", "--audit"]).stdout.strip() == ""


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
    mosq_uid = int(root.run(["id", "-u", "mosquitto"]).stdout)
    assert passwd.st_uid == mosq_uid  # Mosquitto 2.0.21 warns of a file it does not own
    log = (running["logs"] / "mosquitto.log").read_text()
    assert "owner is not mosquitto" not in log, log
    # Every wheel is pinned to its sha256, and the venv was made from them.
    reqs = root.file(str(layout.OPT / "wheels/requirements.txt")).read_text().splitlines()
    wheels = list(root.file(str(layout.OPT / "wheels")).glob("*.whl"))
    assert len(reqs) == len(wheels) > 20 and all("--hash=sha256:" in r for r in reqs)
    # Made without pip in it (pip ran from its wheel), byte-compiled.
    venv = root.file(str(layout.OPT / "venv"))
    assert not list(venv.glob("bin/pip*"))
    assert list(venv.glob("lib/python3.*/site-packages/loyalty_button/__pycache__/cli.*.pyc"))
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


def test_every_service_is_sandboxed_as_systemd_analyze_security_scores_it(running, request):
    """systemd's own exposure score (0 safe .. 10 unsafe) of each service,
    offline, from the unit files: each stays "OK" or better (below 5), and
    the scores are the ones docs/install.md shows."""
    root = running["root"]
    scores = {}
    for unit in [u for u in package.UNITS if u.endswith(".service")]:
        done = root.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                         f"/lib/systemd/system/{unit}"], check=False)
        line = next(line for line in done.stdout.splitlines() if "Overall exposure" in line)
        scores[unit] = float(line.split(":")[1].split()[0])
        FIGURES[f"exposure_{unit}"] = scores[unit]
    _say(request, "systemd-analyze security: " + ", ".join(f"{u} {v}" for u, v in scores.items()))
    assert all(v < 5.0 for v in scores.values()), scores


def test_lintian_finds_no_error_and_only_the_warnings_docs_justify(debs):
    """Debian's package checker on the package: no error (its one in /opt is
    overridden in the package, with the reason), and of its warnings only
    the one docs/install.md justifies."""
    import shutil
    import subprocess
    if not shutil.which("lintian"):
        pytest.skip("lintian is missing (tools/bootstrap installs it)")
    done = subprocess.run(["lintian", "--tag-display-limit", "0", str(debs[0])],
                          capture_output=True, text=True)
    tags = {line.split(": ")[2].split()[0] for line in done.stdout.splitlines()
            if line[:2] in ("E:", "W:")}
    errors = [line for line in done.stdout.splitlines() if line.startswith("E:")]
    assert errors == [], done.stdout
    assert tags <= {"no-manual-page"}, done.stdout


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
        # The language chosen at set-up (--lang en) is the record's.
        assert rec["lang"] == "en"
        # docs/install.md's command, as written there.
        report = root.run(["loyalty-button", "report", "summary", "--db",
                           str(layout.VAR / "records.db")], user=layout.USER)
        assert json.loads(report.stdout)["nps"]["n"] >= 1, report.stdout
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


def test_the_service_user_cannot_point_the_root_run_broker_unit_elsewhere(running):
    """concentrator.yaml is the service user's to write; the broker unit
    runs as root on it. Files named there for root to write are not
    written: the unit writes Mosquitto's own files only, and says so."""
    root = running["root"]
    config = root.file(str(layout.CONFIG))
    good = config.read_text()
    try:
        root.run(["sed", "-i", "-e", "s#^mosquitto:$#mosquitto:\\n  config: /etc/cron.d/evil#",
                  "-e", "s#^  tls_dir: .*#  tls_dir: /root/evil-tls#",
                  "-e", "s#^  ca_dir: .*#  ca_dir: /root/evil-ca#", str(layout.CONFIG)],
                 user=layout.USER)
        assert "/etc/cron.d/evil" in config.read_text()  # the service user could write it
        done = root.run_unit("loyalty-button-broker.service")
        assert not root.file("/etc/cron.d/evil").exists()
        assert not root.file("/root/evil-tls").exists()
        assert not root.file("/root/evil-ca").exists()
        assert "mosquitto.config: /etc/cron.d/evil is not the appliance's" in done.stdout
        assert root.file(str(layout.MOSQUITTO_CONF)).exists()
    finally:
        config.write_text(good)


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

PASSPHRASE = "long walk to the till"


def _dashboard_backup(port: int) -> bytes:
    """A store backup as the manager makes it on the dashboard: log in, ask
    with a passphrase and the password again, download."""
    import urllib.parse
    from conftest import http_call

    def call(path: str, form: dict, cookie: str = "") -> tuple[int, dict, bytes]:
        return http_call(port, "POST", path, urllib.parse.urlencode(form),
                         {"Content-Type": "application/x-www-form-urlencoded",
                          "Cookie": cookie}, timeout=120)
    status, headers, _ = call("/login", {"user": "manager", "password": ADMIN_PASSWORD})
    assert status == 302 and "Set-Cookie" in headers
    status, headers, body = call("/backup", {"passphrase": PASSPHRASE, "passphrase2": PASSPHRASE,
                                             "password": ADMIN_PASSWORD},
                                 headers["Set-Cookie"].split(";")[0])
    assert status == 200 and ".lbstore" in headers["Content-Disposition"], (status, headers)
    return body


def test_a_store_moves_to_a_fresh_host_with_its_backup(running, debs, tmp_path_factory, ports,
                                                        tmp_path, request):
    """Store A's manager downloads a store backup from the dashboard; A is
    retired; a fresh host gets the package and, on its set-up page, the
    backup. Then A's POS client (same token and key) and A's panel (its
    panel.json as flashed) work there untouched: a sale is answered and the
    record written, A's records are there, the broker's TLS certificate
    chains to A's CA, the manager logs in with the same password."""
    import ssl
    from conftest import post_multipart
    root, logs = running["root"], running["logs"]
    # The daily backup (records only) is still the timer's job.
    inside = root.run_unit("loyalty-button-backup.service").stdout.strip().splitlines()[-1]
    assert stat.S_IMODE(root.file(inside).stat().st_mode) == 0o600
    started = time.monotonic()
    made = _dashboard_backup(ports["dashboard"])
    FIGURES["store_backup_s"] = time.monotonic() - started
    FIGURES["store_backup_kb"] = len(made) / 1024
    flashed = _panel_json(root, "till-1")   # what the panel keeps on its flash
    ca_a = root.file(str(layout.STORE_CA / "ca.crt"))
    (tmp_path / "ca-a.crt").write_bytes(ca_a.read_bytes())
    # A retires: the new host takes its address (here: its ports).
    root.stop(running["concentrator"])
    root.stop(running["mosquitto"])
    root2 = DebianRoot(tmp_path_factory.mktemp("root2") / "fs", *DEPTH).make()
    try:
        root2.apt_install(debs[0])
        setup_port = free_port()
        log2 = logs / "concentrator-b.log"
        root2.start_unit(SERVICE, log2, change={"8088": str(setup_port)})
        _wait(lambda: "this store is not set up" in log2.read_text(), "the set-up page")
        url = f"http://127.0.0.1:{setup_port}/restore?lang=en"
        status, html = post_multipart(url, {"passphrase": "not the passphrase"}, made)
        assert status == 400 and "not the one this backup was made with" in html
        assert not root2.file(str(layout.CONFIG)).exists()
        started = time.monotonic()
        status, html = post_multipart(url, {"passphrase": PASSPHRASE}, made)
        assert status == 200 and f"Store {STORE} is restored" in html, html
        FIGURES["store_restore_s"] = time.monotonic() - started
        _say(request, f"store backup {FIGURES['store_backup_kb']:.0f} KiB made in "
                      f"{FIGURES['store_backup_s']:.1f} s, restored in "
                      f"{FIGURES['store_restore_s']:.1f} s")
        # What the path unit does on an appliance: the broker from the backup.
        assert root2.file(str(layout.APPLY_REQUEST)).exists()
        root2.run_unit("loyalty-button-broker.service")
        root2.start_unit("mosquitto.service", logs / "mosquitto-b.log")
        root2.wait_file("/run/mosquitto/mosquitto.pid")
        _ready({"ports": ports})  # the same process, now the store
        svc_uid = int(root2.run(["id", "-u", layout.USER]).stdout)
        for path in (layout.CONFIG, layout.VAR / "records.db", layout.VAR / "panels.json",
                     layout.STORE_CA / "ca.key"):
            assert root2.file(str(path)).stat().st_uid == svc_uid, path
        assert _records(root2, "receipt = 'R-1001' AND outcome = 'answered'")  # A's records
        flashed["outbox"] = {"dir": str(tmp_path / "outbox")}
        panel = SimPanel(tmp_path / "till-1", flashed, name="till-1").start()
        try:
            _wait(lambda: "panel till-1 is online" in log2.read_text(), "A's panel online", 60)
            pos = Pos(STORE, ports["pos_udp"], ports["pos_http"], key=running["key"].encode(),
                      token=running["token"])
            # Another member: the one of R-1001 was asked a moment ago, and
            # the restored records say so (a shopper is not asked twice).
            sale = pos.receipt("1", "R-2001", loyalty_id="7000456")
            # As a till does: again while the host says it is still starting
            # (503: not yet on its broker).
            status, reply = _wait(lambda: (lambda r: r if r[0] != 503 else None)(
                pos.send_http(sale)), "the host taking receipts")
            assert status == 202 and reply["status"] == "accepted", reply
            shown = panel.wait_screen("question", timeout=20)
            panel.answer(shown["session"], 10)
            rec = _wait(lambda: _records(root2, "receipt = 'R-2001' AND outcome = 'answered'"),
                        "the answered record on the new host")[0]
            assert rec["panel"] == "till-1" and rec["value"] == 10
            pos.send_udp(pos.receipt("2", "R-2002"))  # signed with A's key
            _wait(lambda: _records(root2, "receipt = 'R-2002'"), "the UDP receipt")
        finally:
            panel.stop()
        # A panel on TLS that trusts A's CA trusts the new host.
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca-a.crt"))
        with socket.create_connection(("127.0.0.1", ports["tls"]), 10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version()
        assert _dashboard_backup(ports["dashboard"])  # the manager's login came along
        assert "Traceback" not in log2.read_text()
    finally:
        root2.close()
        # A back in service for the tests after this one, once the new
        # host has let go of the ports.
        _wait(lambda: _free(ports["broker"]) and _free(ports["tls"]), "the broker's ports free")
        running["mosquitto"] = root.start_unit("mosquitto.service", logs / "mosquitto.log")
        root.wait_file("/run/mosquitto/mosquitto.pid")
        running["concentrator"] = root.start_unit(SERVICE, logs / "concentrator.log")
        _ready(running)


def test_restore_is_refused_while_the_concentrator_runs(running):
    root = running["root"]
    inside = root.run_unit("loyalty-button-backup.service").stdout.strip().splitlines()[-1]
    done = root.run(["loyalty-button", "restore", inside,
                     "--config", str(layout.CONFIG)], check=False)
    assert done.returncode == 1 and "in use by a running concentrator" in done.stderr


def test_an_upgrade_keeps_settings_and_records_and_stops_only_to_restart(running, debs,
                                                                          request):
    """A till sends a receipt every 0.1 s all through `apt install` of a
    newer build: the old version answers them all while the new one is
    unpacked and its venv made (prerm does not stop it on an upgrade);
    then the restart postinst asks systemd for (done here by hand) is the
    only time the POS listener is away. Every receipt answered 202 is a
    record."""
    import threading
    root, ports = running["root"], running["ports"]
    config_before = root.file(str(layout.CONFIG)).read_bytes()
    pos = Pos(STORE, None, ports["pos_http"], token=running["token"])
    sent: list[tuple[float, object]] = []
    done = threading.Event()

    def till():
        i = 0
        while not done.is_set():
            i += 1
            try:
                status, _ = pos.send_http(pos.receipt("2", f"U-{i}"), timeout=5)
            except OSError:
                status = "refused"
            sent.append((time.monotonic(), status))
            time.sleep(0.1)
    thread = threading.Thread(target=till, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        root.apt_install(debs[1])
        installed = time.monotonic()
        root.stop(running["concentrator"])  # postinst's restart: systemd is not here
        running["concentrator"] = root.start_unit(SERVICE, running["logs"] / "concentrator.log")
        _ready(running)
        ready = time.monotonic()
        time.sleep(0.5)
    finally:
        done.set()
        thread.join(10)
    during = [status for when, status in sent if started <= when < installed]
    away = [when for when, status in sent if status not in (200, 202)]
    FIGURES["upgrade_apt_s"] = installed - started
    FIGURES["upgrade_restart_s"] = ready - installed
    FIGURES["upgrade_receipts_refused"] = len(away)
    _say(request, f"upgrade: apt {installed - started:.0f} s with the store answering "
                  f"({len(during)} receipts, all taken); stopped for the restart "
                  f"{ready - installed:.1f} s ({len(away)} receipts refused meanwhile)")
    assert during and set(during) == {202}, during
    assert all(installed <= when <= ready + 0.5 for when in away), (away, installed, ready)
    taken = sum(1 for _, status in sent if status == 202)
    assert len(_records(root, "receipt LIKE 'U-%'")) == taken

    app = package.project()["version"] + "+upgrade1"
    version = root.run(["dpkg-query", "-W", "-f=${Version}", "loyalty-button"]).stdout
    assert version == package.deb_version(app, DEPTH[0])
    # The application and the panels' bundles inside say the new version too.
    said = root.run(["loyalty-button", "--version"]).stdout.strip()
    assert said == f"loyalty-button {app} (panel firmware {app})", said
    for board in ("cyd", "s3_8048"):
        manifest = root.file(str(layout.OPT / "bundles" / f"{board}-{app}" / "manifest.json"))
        assert json.loads(manifest.read_text())["version"] == app
    # One venv, the new one: the old was removed once the new one was in use.
    assert [p.name for p in root.file(str(layout.OPT)).glob("venv-*")] == [
        root.file(str(layout.OPT / "venv")).readlink().name]
    assert root.file(str(layout.CONFIG)).read_bytes() == config_before
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
        assert "+upgrade1+deb" in version  # the installed version stays
    finally:
        conn = sqlite3.connect(db)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
        conn.commit()
        conn.close()
    assert _records(root, "receipt = 'R-1001'")


def test_purge_removes_the_broker_configuration_the_package_added(running):
    """Last: `apt purge` takes the store's listeners, logins, ACL and CA out
    of Mosquitto's configuration, which Mosquitto then starts from as
    Debian ships it; the records stay."""
    root = running["root"]
    root.stop(running["concentrator"])
    ours = [layout.MOSQUITTO_CONF, layout.MOSQUITTO_PASSWD, layout.MOSQUITTO_ACL,
            layout.MOSQUITTO_TLS]
    assert all(root.file(str(p)).exists() for p in ours)
    root.sh("apt-get purge -y -qq loyalty-button", env={"DEBIAN_FRONTEND": "noninteractive"})
    assert [str(p) for p in ours if root.file(str(p)).exists()] == []
    assert not root.file(str(layout.ETC)).exists()
    assert root.file(str(layout.VAR / "records.db")).exists()
    # Mosquitto as Debian ships it again: no file of ours read, our
    # listener gone.
    root.stop(running["mosquitto"])
    log = running["logs"] / "mosquitto-after-purge.log"
    again = root.start_unit("mosquitto.service", log)
    try:
        time.sleep(2)
        assert "loyalty-button" not in log.read_text(), log.read_text()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", running["ports"]["broker"]), 1).close()
    finally:
        root.stop(again)


# --- the other releases and architectures ---------------------------------------------

@pytest.mark.parametrize("target", ["bookworm-amd64", "trixie-arm64"])
def test_the_package_installs_and_runs_a_store(target, dist, tmp_path, request):
    """The package for a release and an architecture, in a root of them:
    installed from its own wheels, set up, the concentrator started from its
    unit's lines; a POS sale asked on a panel, answered and written down;
    the probe's models analyse a photo inside the root."""
    release, arch = target.split("-")
    why = usable(arch)
    if why:
        pytest.skip(why)
    deb = _deb(dist, release, arch)
    # An emulated root comes with the Debian packages ours needs already (apt
    # installing python3 there takes minutes); a native one has apt find them.
    extra = tuple(package.debian_dependencies()) if arch != NATIVE else ()
    root = DebianRoot(tmp_path / "fs", release, arch, extra).make()
    logs = tmp_path / "logs"
    logs.mkdir()
    ports = {"broker": free_port(), "tls": free_port(), "pos_http": free_port(),
             "pos_udp": free_port(), "dashboard": free_port()}
    panel = None
    try:
        started = time.monotonic()
        root.apt_install(deb)
        took = time.monotonic() - started
        FIGURES[f"install_{target}_s"] = took
        py = root.run([str(layout.OPT / "venv/bin/python"), "-c",
                       "import platform; print(platform.python_version(), platform.machine())"])
        _say(request, f"{target}: installed in {took:.0f} s ({deb.stat().st_size / 1e6:.0f} MB; "
                     f"the venv runs Python {py.stdout.strip()})")
        want = {"bookworm": "3.11", "trixie": "3.13"}[release]
        assert py.stdout.startswith(want + ".")
        assert py.stdout.split()[1] == {"amd64": "x86_64", "arm64": "aarch64"}[arch]
        store = {**_set_up(root, ports, logs), "ports": ports}
        _ready(store, 300)  # arm64 runs under an emulator: a slow start
        cfg = _panel_json(root, "till-1")
        cfg["outbox"] = {"dir": str(tmp_path / "outbox")}
        panel = SimPanel(tmp_path / "till-1", cfg, name="till-1").start()
        log = logs / "concentrator.log"
        _wait(lambda: "panel till-1 is online" in log.read_text(), "the panel online", 120)
        pos = Pos(STORE, None, ports["pos_http"], token=store["token"])
        status, reply = pos.send_http(pos.receipt("1", "R-2001", loyalty_id="7000456"))
        assert status == 202 and reply["status"] == "accepted", reply
        shown = panel.wait_screen("question", timeout=60)
        panel.answer(shown["session"], 10)
        rec = _wait(lambda: _records(root, "receipt = 'R-2001' AND outcome = 'answered'"),
                    "the answered record on disk", 60)[0]
        assert rec["value"] == 10 and rec["till"] == "1"
        # The probe's models, from the package, on a photo of a face.
        from PIL import Image
        from skimage import data
        Image.fromarray(data.astronaut()).save(root.file("/tmp/face.png"))
        started = time.monotonic()
        done = root.run(["loyalty-button", "probe", "analyze", "--json", "--models",
                         str(layout.OPT / "models"), "/tmp/face.png"], user=layout.USER)
        FIGURES[f"probe_analyze_{target}_s"] = time.monotonic() - started
        got = json.loads(done.stdout.strip().splitlines()[-1])
        assert got["faces"] == 1 and got["main"]["emotion"] == "happy", got
        assert "Traceback" not in log.read_text()
    finally:
        if panel is not None:
            panel.stop()
        root.close()
