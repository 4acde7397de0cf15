"""The appliance's own parts without a Debian root: the set-up page over
real HTTP, `loyalty-button setup` and its refusals, backups (retention, a
full disk, a corrupt restore, a running concentrator), and systemd's notify
protocol on a real datagram socket. tests/test_install.py runs them all
again inside a clean Debian 12 root."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from loyalty_button.appliance import backup, setup_page
from loyalty_button.service import config as host_config, dashboard, sdnotify
from loyalty_button.service.records import SCHEMA_VERSION, RecordStore, lock_database
from loyalty_button.sim.broker import free_port

FORM = {"store": "msk-12", "timezone": "Europe/Moscow", "tills": "1, 2 3",
        "admin": "manager", "admin_password": "manager-pass-1", "wifi_ssid": "shop-pos",
        "wifi_password": "wifi-pass-123", "broker_host": "192.168.10.2", "board": "cyd",
        "lang": "ru"}


def _broker_files(tmp: Path) -> dict:
    return {"password_file": str(tmp / "passwd"), "acl_file": str(tmp / "acl"),
            "tls_dir": str(tmp / "tls")}


class SetupServer:
    """The set-up page on a free port, on its own loop and thread."""

    def __init__(self, etc: Path, var: Path):
        self.port = free_port()
        self.requests: list[str] = []
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(etc, var), daemon=True)

    def _run(self, etc, var):
        # The package's broker files would be in /etc/mosquitto: a test's go beside it.
        asyncio.run(setup_page.serve_until_set_up(self.port, "127.0.0.1", etc, var,
                                                  lambda: self.requests.append("apply"),
                                                  _broker_files(var)))
        self.finished.set()

    def start(self) -> "SetupServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the set-up page did not start")

    def get(self, path="/", host: str | None = None) -> tuple[int, str]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                     headers={"Host": host} if host else {})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()

    def post(self, form: dict, lang: str = "en", headers: dict | None = None) -> tuple[int, str]:
        body = urllib.parse.urlencode(form).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/setup?lang={lang}", body,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


def test_the_set_up_page_configures_a_store_and_shows_the_pos_secrets_once(tmp_path):
    etc, var = tmp_path / "etc", tmp_path / "var"
    page = SetupServer(etc, var).start()
    status, html = page.get("/")
    assert status == 200 and 'name="store"' in html
    # A browser on the host itself says nothing of the LAN address: no
    # loopback default for what the panels dial. A phone on the LAN does.
    assert 'id="broker_host" type="text" value=""' in html
    status, html = page.get("/", host=f"192.168.10.2:{page.port}")
    assert 'id="broker_host" type="text" value="192.168.10.2"' in html
    status, html = page.get("/", host=f"[::1]:{page.port}")
    assert 'id="broker_host" type="text" value=""' in html
    status, html = page.post(FORM)
    assert status == 200 and "is set up" in html
    cfg = host_config.load(etc / "concentrator.yaml")
    assert cfg.store == "msk-12" and cfg.timezone == "Europe/Moscow"
    assert cfg.pos_key.decode() in html and cfg.pos_token in html  # shown this once
    assert cfg.panels_broker_host == "192.168.10.2" and cfg.panels_wifi_ssid == "shop-pos"
    assert (etc / "concentrator.yaml").stat().st_mode & 0o777 == 0o600
    catalogue = yaml.safe_load((etc / "catalogue.yaml").read_text())
    assert catalogue["tills"] == {"1": {"panel": "till-1"}, "2": {"panel": "till-2"},
                                  "3": {"panel": "till-3"}}
    users = dashboard.read_users(etc / "dashboard-users")
    assert dashboard.check_password(users["manager"], "manager-pass-1")
    from loyalty_button.panels.registry import Registry
    assert sorted(Registry(cfg).load()) == ["till-1", "till-2", "till-3"]
    assert page.requests == ["apply"]  # root's path unit writes Mosquitto's files
    assert page.finished.wait(10)  # the port is free for the dashboard


def test_the_set_up_page_refuses_bad_answers_and_writes_nothing(tmp_path):
    etc, var = tmp_path / "etc", tmp_path / "var"
    page = SetupServer(etc, var).start()
    bad = {**FORM, "store": "Shop 12!", "timezone": "Mars/Olympus", "tills": "",
           "admin_password": "short", "wifi_password": "1234", "broker_host": "not an address"}
    status, html = page.post(bad)
    assert status == 400
    # Each problem under its own field, in the page's language.
    for field, words in (("store", "store id"), ("timezone", "time zone"),
                         ("tills", "tills: at least one"),
                         ("admin_password", "at least 8 characters"),
                         ("wifi_password", "Wi-Fi password"),
                         ("broker_host", "address on the store LAN")):
        beside = html.split(f'id="err-{field}">')[1].split("</p>")[0]
        assert words in beside, (field, beside)
    assert html.split('id="err-admin">')[1].startswith("</p>")  # a good answer: no error
    status, ru = page.post(bad, lang="ru")
    assert status == 400 and 'lang="ru"' in ru
    assert "код магазина" in ru.split('id="err-store">')[1].split("</p>")[0]
    assert 'value="Mars/Olympus"' in html  # what was typed stays in the form
    assert 'value="shop-pos"' in html and 'value="manager"' in html
    assert "manager-pass" not in html and "1234" not in html  # passwords are not sent back
    assert "Type again: Manager&#x27;s password, Wi-Fi password" in html
    assert not (etc / "concentrator.yaml").exists() and page.requests == []
    # A valid manager beside a bad store id: no login of a refused set-up.
    status, _ = page.post({**FORM, "store": "Shop 12!"})
    assert status == 400 and not (etc / "dashboard-users").exists()
    status, html = page.post(FORM)  # corrected: it goes through
    assert status == 200 and page.finished.wait(10)
    assert list(dashboard.read_users(etc / "dashboard-users")) == ["manager"]


def test_a_set_up_refused_on_the_way_leaves_nothing_behind(tmp_path):
    """Answers that pass the checks, and a set-up that still fails on the
    way (here a panel registry it cannot read): no manager's login, no
    catalogue, no CA, no drafts; what was there before is as it was."""
    from loyalty_button.appliance import firstrun
    etc, var = tmp_path / "etc", tmp_path / "var"
    var.mkdir()
    (var / "panels.json").write_text("{not json")
    answers = firstrun.Answers("msk-12", "Europe/Moscow", ["1"], "intruder", "intruder-pass-1",
                               "shop-pos", "wifi-pass-123", "192.168.10.2")
    with pytest.raises(firstrun.FirstRunError, match="panel registry"):
        firstrun.configure(answers, etc, var, _broker_files(var))
    assert sorted(p.name for p in etc.iterdir()) == []
    assert sorted(p.name for p in var.iterdir()) == ["panels.json"]
    assert (var / "panels.json").read_text() == "{not json"
    # Fixed, the set-up goes through with only its own manager.
    (var / "panels.json").unlink()
    firstrun.configure(firstrun.Answers(**{**answers.__dict__, "admin": "manager"}), etc, var,
                       _broker_files(var))
    assert list(dashboard.read_users(etc / "dashboard-users")) == ["manager"]
    assert (var / "store-ca" / "ca.key").exists()
    assert not [p for p in (*etc.iterdir(), *var.iterdir()) if p.name.endswith(".new")]


def _setup_cli(tmp_path: Path, *extra: str, stdin: str = "manager-pass-1\nwifi-pass-123\n"):
    return subprocess.run(
        [sys.executable, "-m", "loyalty_button.cli", "setup", "--store", "msk-12",
         "--timezone", "Europe/Moscow", "--tills", "1,2", "--admin", "manager",
         "--wifi-ssid", "shop-pos", "--address", "127.0.0.1", "--etc", str(tmp_path / "etc"),
         "--var", str(tmp_path / "var"), "--no-broker", *extra],
        input=stdin, capture_output=True, text=True)


def test_the_language_chosen_at_set_up_is_what_panels_speak_and_records_carry(tmp_path):
    from loyalty_button.panels.registry import Registry
    from loyalty_button.service import catalogue
    for lang in ("en", "ru"):
        done = _setup_cli(tmp_path / lang, "--lang", lang)
        assert done.returncode == 0, done.stderr
        etc = tmp_path / lang / "etc"
        cfg = host_config.load(etc / "concentrator.yaml")
        cat = catalogue.load(etc / "catalogue.yaml")
        # What the host tells each panel (service/panel_config.py) and what a
        # receipt's record says, both from the catalogue; panel.json agrees.
        assert {cat.till_language(t) for t in cat.tills.values()} == {lang}
        assert cat.language({"till": "1"}) == lang
        assert Registry(cfg).panel_json("till-1")["lang"] == lang


def test_setup_cli_refuses_a_second_set_up_and_bad_ports(tmp_path):
    first = _setup_cli(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "POS token" in first.stdout and "not shown again" in first.stdout
    before = (tmp_path / "etc" / "concentrator.yaml").read_bytes()
    again = _setup_cli(tmp_path)
    assert again.returncode == 2 and "set up already" in again.stderr
    assert (tmp_path / "etc" / "concentrator.yaml").read_bytes() == before
    ports = _setup_cli(tmp_path / "other", "--port", "broker=99999", "--port", "tftp=69")
    assert ports.returncode == 2
    assert "broker=99999" in ports.stderr and "tftp=69" in ports.stderr


# --- backups ---------------------------------------------------------------------

INSERT = ("INSERT INTO records (id, store, till, receipt, source, sale_ts, received_ms, state, "
          "updated_ms) VALUES (?, 's', '1', ?, 'http', 1, 1, 'closed', 1)")


@pytest.fixture
def store_db(tmp_path) -> Path:
    db = tmp_path / "data" / "records.db"
    db.parent.mkdir()
    records = RecordStore(db)
    records.stop()
    conn = sqlite3.connect(db)
    conn.execute(INSERT, ("s-R1", "R1"))
    conn.commit()
    conn.close()
    return db


def test_backup_keeps_the_newest_and_restore_brings_a_record_back(store_db, tmp_path):
    dest = tmp_path / "backups"
    made = []
    for _ in range(3):
        made.append(backup.backup(store_db, dest, keep=2))
        time.sleep(1.05)  # the names carry the second
    assert sorted(dest.glob("records-*.db")) == made[1:]
    assert made[-1].stat().st_mode & 0o777 == 0o600
    conn = sqlite3.connect(store_db)
    conn.execute("DELETE FROM records")
    conn.commit()
    conn.close()
    kept = backup.restore(made[-1], store_db)
    conn = sqlite3.connect(store_db)
    assert conn.execute("SELECT receipt FROM records").fetchall() == [("R1",)]
    conn.close()
    assert kept and kept.exists()  # what was replaced is kept beside it


def test_a_backup_and_a_restore_leave_no_wal_or_shm_files(store_db, tmp_path):
    """The store's database is in WAL mode; with the service stopped, a
    backup and a restore leave nothing beside it, the backup or the file
    restored from: a backup is one file that can be copied alone."""
    def litter(*folders):
        return sorted(p.name for f in folders for p in f.iterdir()
                      if p.name.endswith(("-wal", "-shm")))
    conn = sqlite3.connect(store_db)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    made = backup.backup(store_db, tmp_path / "backups", keep=3)
    assert litter(store_db.parent, made.parent) == []
    assert sorted(p.name for p in made.parent.iterdir()) == [made.name]
    on_stick = tmp_path / "stick" / made.name
    on_stick.parent.mkdir()
    shutil.copy(made, on_stick)  # the file alone is the whole backup
    backup.restore(on_stick, store_db)
    assert litter(store_db.parent, on_stick.parent) == []
    conn = sqlite3.connect(store_db)
    assert conn.execute("SELECT receipt FROM records").fetchall() == [("R1",)]
    conn.close()


def test_restore_refuses_corrupt_foreign_and_newer_files_and_a_running_store(store_db, tmp_path):
    good = backup.backup(store_db, tmp_path / "b", keep=5)
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(good.read_bytes()[:4096] + os.urandom(8192))
    text = tmp_path / "notes.db"
    text.write_text("not a database")
    newer = tmp_path / "newer.db"
    shutil.copy(good, newer)
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    before = store_db.read_bytes()
    for path, words in ((corrupt, "damaged"), (text, "not an SQLite database"),
                        (newer, "written by a newer Loyalty Button")):
        with pytest.raises(backup.BackupError, match=words):
            backup.restore(path, store_db)
    held = lock_database(store_db)  # what the running concentrator holds
    try:
        with pytest.raises(backup.BackupError, match="in use by a running concentrator"):
            backup.restore(good, store_db)
    finally:
        held.close()
    assert store_db.read_bytes() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_fails_the_backup_cleanly_and_keeps_the_older_ones(store_db, tmp_path):
    conn = sqlite3.connect(store_db)
    conn.executemany(INSERT, [(f"s-X{i}", "x" * 400 + str(i)) for i in range(400)])
    conn.commit()
    conn.close()
    stick = tmp_path / "stick"
    stick.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(stick)], check=True)
    try:
        older = stick / "records-20260101T000000Z.db"
        older.write_bytes(b"an older backup")
        with pytest.raises(backup.BackupError, match="No space left|full"):
            backup.backup(store_db, stick, keep=14)
        assert sorted(p.name for p in stick.iterdir()) == [older.name]  # no partial file
        done = subprocess.run([sys.executable, "-m", "loyalty_button.cli", "backup",
                               "--config", str(_config_for(store_db, tmp_path)), "--to",
                               str(stick)], capture_output=True, text=True)
        assert done.returncode == 1 and "older backups are kept" in done.stderr
    finally:
        subprocess.run(["umount", str(stick)], check=False)


def _config_for(db: Path, tmp_path: Path) -> Path:
    (tmp_path / "catalogue.yaml").write_text("")
    path = tmp_path / "concentrator.yaml"
    path.write_text(f"store: s\ncatalogue: catalogue.yaml\ndatabase: {db}\n")
    return path


# --- systemd's notify protocol -------------------------------------------------------

def test_ready_and_watchdog_pings_reach_systemds_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # WatchdogSec=1: a ping every 0.5 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    async def main():
        task = sdnotify.ready("listening")
        await asyncio.sleep(1.2)
        task.cancel()
    asyncio.run(main())
    got = []
    sock.settimeout(0.5)
    try:
        while True:
            got.append(sock.recv(256).decode())
    except (socket.timeout, BlockingIOError):
        pass
    sock.close()
    assert got[0] == "READY=1\nSTATUS=listening"
    assert 2 <= got.count("WATCHDOG=1") <= 4
    monkeypatch.setenv("WATCHDOG_PID", "1")  # the watchdog is another process's
    assert sdnotify.watchdog_interval() is None


def test_under_systemd_each_log_line_carries_its_journal_priority(tmp_path):
    """journald reads `<N>` at a line's start as its priority when the
    service's stderr is the journal ($JOURNAL_STREAM names that stream), so
    `journalctl -p warning` shows warnings and errors; elsewhere the lines
    stay plain, with their time."""
    script = ("import logging; from loyalty_button import logsetup; logsetup.configure('INFO')\n"
              "log = logging.getLogger('loyalty_button.test')\n"
              "log.info('a receipt'); log.warning('a panel is offline')\n"
              "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('it broke')\n")
    out = tmp_path / "stderr"

    def run(journal: bool) -> list[str]:
        with open(out, "wb") as f:
            st = os.fstat(f.fileno())
            env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}" if journal else "")
            subprocess.run([sys.executable, "-c", script], stderr=f, env=env, check=True)
        return out.read_text().splitlines()
    lines = run(journal=True)
    assert lines[0] == "<6>INFO loyalty_button.test: a receipt"
    assert lines[1] == "<4>WARNING loyalty_button.test: a panel is offline"
    assert lines[2] == "<3>ERROR loyalty_button.test: it broke"
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines[3:])  # traceback
    plain = run(journal=False)
    assert plain[1].endswith(" WARNING loyalty_button.test: a panel is offline")
    assert plain[1][:4].isdigit() and not plain[1].startswith("<")


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_the_set_up_page_in_a_browser_on_a_desktop_and_a_phone(tmp_path, browser, lang):
    """Chromium, at 1366x768 and 390x844, in the browser's language:
    restoring a backup offered first; a refused form shows each problem under its field and keeps what was
    typed; the page with the POS key and token shows both whole on the
    phone, each with a copy button, and nothing scrolls sideways. The
    screenshots go to LB_SCREENSHOT_DIR (docs/images when the docs are
    made)."""
    from selenium.webdriver.common.by import By
    from conftest import page_shot
    shots = Path(os.environ.get("LB_SCREENSHOT_DIR", tmp_path / "shots"))
    etc, var = tmp_path / "etc", tmp_path / "var"
    page = SetupServer(etc, var).start()
    url = f"http://127.0.0.1:{page.port}/?lang={lang}"

    def fits() -> bool:  # nothing wider than the window
        return browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth")

    def submit() -> None:  # and wait for the page it brings
        from selenium.webdriver.support.ui import WebDriverWait
        # A mark on this document: gone once the next one has loaded (a
        # reference to an old element can fail in more ways than "stale").
        browser.execute_script("window.lbOldPage = true")
        browser.find_element(By.ID, "submit").click()
        WebDriverWait(browser, 20).until(lambda b: b.execute_script(
            "return !window.lbOldPage && document.readyState === 'complete'"))
    browser.set_window_size(390, 844)
    browser.get(url)
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang and fits()
    # Restore from a backup is the first choice, a new store's form under it.
    restore, new = (browser.find_element(By.ID, i) for i in ("restore", "new"))
    assert restore.is_displayed() and restore.rect["y"] < new.rect["y"]
    assert browser.find_element(By.ID, "backup").get_attribute("type") == "file"
    # A refused form: a bad store id, no tills, no passwords.
    for name, value in (("store", "Shop 12"), ("admin", "manager"), ("wifi_ssid", "shop-pos"),
                        ("broker_host", "192.168.10.2")):
        browser.find_element(By.ID, name).send_keys(value)
    submit()
    store_err = browser.find_element(By.ID, "err-store")
    assert store_err.is_displayed() and store_err.text
    assert browser.find_element(By.ID, "err-tills").text
    assert browser.find_element(By.ID, "err-admin").text == ""
    assert browser.find_element(By.ID, "wifi_ssid").get_attribute("value") == "shop-pos"
    assert fits()
    page_shot(browser, shots / f"setup-{lang}-phone-refused.png", 390, 844)
    # Corrected, the store is set up and its secrets shown once.
    for name, value in (("store", "msk-12"), ("tills", "1, 2"),
                        ("admin_password", "manager-pass-1"), ("wifi_password", "wifi-pass-123")):
        field = browser.find_element(By.ID, name)
        field.clear()
        field.send_keys(value)
    submit()
    cfg = host_config.load(etc / "concentrator.yaml")
    for key, want in (("pos_key", cfg.pos_key.decode()), ("pos_token", cfg.pos_token)):
        shown = browser.find_element(By.ID, key)
        assert shown.text == want  # whole, nothing cut
        inside = browser.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return r.left >= 0 && "
            "r.right <= window.innerWidth && arguments[0].scrollWidth <= arguments[0].clientWidth",
            shown)
        assert inside, key
        assert browser.find_element(By.ID, f"copy-{key}").is_displayed()
    assert fits()
    # No way off this page but the dashboard's link: leaving loses the secrets.
    assert not browser.find_elements(By.ID, "other-lang")
    page_shot(browser, shots / f"setup-{lang}-phone-secrets.png", 390, 844)
    browser.find_element(By.ID, "copy-pos_key").click()  # no error; the text is selected
    assert browser.execute_script("return window.getSelection().toString()") == \
        cfg.pos_key.decode()
    # The form at a desktop's width, for the docs.
    other = SetupServer(tmp_path / "etc2", tmp_path / "var2").start()
    browser.set_window_size(1366, 768)
    browser.get(f"http://127.0.0.1:{other.port}/?lang={lang}")
    assert fits()
    page_shot(browser, shots / f"setup-{lang}-desktop.png", 1366, 768)


# --- store backups: a store moved to a fresh host ---------------------------------------

PASSPHRASE = "long walk to the till"


def _store_a(tmp_path: Path, dashboard_port: int | None = None) -> Path:
    """A store set up as the set-up page does, with a record of a member,
    a probe settings file and panels registered; its concentrator.yaml."""
    from loyalty_button.appliance import firstrun
    a = tmp_path / "a"
    answers = firstrun.Answers("msk-12", "Europe/Moscow", ["1", "2"], "manager",
                               "manager-pass-1", "shop-pos", "wifi-pass-123", "192.168.10.2",
                               ports={"dashboard": dashboard_port} if dashboard_port else {})
    firstrun.configure(answers, a / "etc", a / "var", _broker_files(a / "var"))
    (a / "etc" / "probe.yaml").write_text("camera: 0\n")
    store = RecordStore(a / "var" / "records.db")
    store.stop()
    conn = sqlite3.connect(a / "var" / "records.db")
    conn.execute(INSERT, ("msk-12-R1", "R1"))
    conn.execute("UPDATE records SET loyalty_id = '7000123'")
    conn.commit()
    conn.close()
    return a / "etc" / "concentrator.yaml"


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))} if folder.exists() else {}


def test_a_store_backup_is_sealed_and_brings_the_whole_store_to_a_fresh_host(tmp_path):
    from loyalty_button.appliance import store_backup
    from loyalty_button.panels.registry import Registry
    from loyalty_button.service import broker_conf
    config = _store_a(tmp_path)
    a = host_config.load(config)
    signing_key = Registry(a).ota_key()  # made at the first update
    made = store_backup.make(config, PASSPHRASE, tmp_path / "out")
    assert made.file.stat().st_mode & 0o777 == 0o600
    assert (made.records, made.panels, made.users) == (1, ["till-1", "till-2"], ["manager"])
    raw = made.file.read_bytes()
    panel_password = Registry(a).load()["till-1"]["password"]
    for secret in (a.pos_token.encode(), a.pos_key, panel_password.encode(), b"7000123",
                   b"PRIVATE KEY", b"manager", b"wifi-pass-123"):
        assert secret not in raw  # sealed: nothing readable without the passphrase
    assert store_backup.about(made.file)["store"] == "msk-12"  # the outside says whose

    b = tmp_path / "b"
    summary = store_backup.restore(made.file, PASSPHRASE, b / "etc", b / "var")
    assert (summary.store, summary.records, summary.broker_host) == ("msk-12", 1, "192.168.10.2")
    got = host_config.load(b / "etc" / "concentrator.yaml")
    # The same store to the POS and the panels: key, token, logins, Wi-Fi.
    assert (got.store, got.pos_key, got.pos_token, got.broker_password) == \
        (a.store, a.pos_key, a.pos_token, a.broker_password)
    assert (got.panels_wifi_ssid, got.panels_wifi_password, got.panels_broker_host) == \
        (a.panels_wifi_ssid, a.panels_wifi_password, a.panels_broker_host)
    assert Registry(got).load() == Registry(a).load()
    assert Registry(got).ota_key() == signing_key  # updates stay signed as the panels expect
    # ... with its paths on this host.
    assert got.database == (b / "var" / "records.db").resolve()
    assert Path(got.mosquitto_ca_dir) == (b / "var" / "store-ca").resolve()
    for name in ("catalogue.yaml", "dashboard-users", "probe.yaml"):
        assert (b / "etc" / name).read_bytes() == (config.parent / name).read_bytes()
    users = dashboard.read_users(b / "etc" / "dashboard-users")
    assert dashboard.check_password(users["manager"], "manager-pass-1")
    conn = sqlite3.connect(got.database)
    assert conn.execute("SELECT receipt, loyalty_id FROM records").fetchall() == \
        [("R1", "7000123")]
    conn.close()
    # The broker's certificate on the new host is signed by the same CA, so
    # a panel that trusts the old store's CA trusts the new host.
    assert broker_conf.ensure_tls(got.mosquitto_tls_dir, ["192.168.10.2"], got.store, None,
                                  got.mosquitto_ca_dir)
    old_ca = Path(a.mosquitto_ca_dir) / "ca.crt"
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(old_ca),
                               str(Path(got.mosquitto_tls_dir) / "server.crt")],
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    assert not list((b / "var").glob(".store-*"))  # no staging left behind


def test_a_refused_restore_changes_nothing_on_the_host(tmp_path):
    from loyalty_button import sealed
    from loyalty_button.appliance import store_backup
    config = _store_a(tmp_path)
    good = store_backup.make(config, PASSPHRASE, tmp_path / "out").file
    raw = good.read_bytes()
    bad = {}
    bad["cut"] = raw[:len(raw) // 2]
    middle = len(raw) // 2
    bad["flipped"] = raw[:middle] + bytes([raw[middle] ^ 1]) + raw[middle + 1:]
    bad["records"] = (tmp_path / "a" / "var" / "records.db").read_bytes()
    with open(tmp_path / "newer", "wb") as f:  # a later format, sealed properly
        seal = sealed.SealWriter(f, PASSPHRASE, {"what": store_backup.WHAT, "format": 99})
        seal.write(b"whatever comes in format 99")
        seal.close()
    bad["newer"] = (tmp_path / "newer").read_bytes()
    cases = [("cut", PASSPHRASE, "damaged"), ("flipped", PASSPHRASE, "damaged"),
             ("records", PASSPHRASE, "not_backup"), ("newer", PASSPHRASE, "newer"),
             ("good", "not the passphrase", "passphrase")]
    b = tmp_path / "b"
    (b / "var" / "backups").mkdir(parents=True)
    (b / "var" / "backups" / "old.db").write_bytes(b"kept")
    before = _tree(b)
    for name, passphrase, kind in cases:
        path = good if name == "good" else tmp_path / f"{name}.lbstore"
        if name != "good":
            path.write_bytes(bad[name])
        with pytest.raises(store_backup.StoreBackupError) as refused:
            store_backup.restore(path, passphrase, b / "etc", b / "var")
        assert refused.value.kind == kind, (name, str(refused.value))
        assert _tree(b) == before, name
    # Settings that do not work on this host: put in place, checked, undone.
    (config.parent / "catalogue.yaml").write_text("questions: [not, a, catalogue]\n")
    broken = store_backup.make(config, PASSPHRASE, tmp_path / "out2").file
    with pytest.raises(store_backup.StoreBackupError) as refused:
        store_backup.restore(broken, PASSPHRASE, b / "etc", b / "var")
    assert refused.value.kind == "settings" and "catalogue" in str(refused.value)
    assert _tree(b) == before
    # A host that is set up already is not overwritten.
    store_backup.restore(good, PASSPHRASE, b / "etc", b / "var")
    set_up = _tree(b)
    with pytest.raises(store_backup.StoreBackupError) as refused:
        store_backup.restore(good, PASSPHRASE, b / "etc", b / "var")
    assert refused.value.kind == "configured" and _tree(b) == set_up


def test_the_dashboard_makes_the_backup_and_the_set_up_page_restores_it(tmp_path):
    """Store A's manager makes a store backup on the dashboard; a fresh
    host's set-up page offers "restore" first, refuses a wrong passphrase
    in the page's language with nothing written, then restores."""
    from conftest import http_call, post_multipart
    port = free_port()
    config = _store_a(tmp_path, port)
    cfg = host_config.load(config)
    cfg.dashboard_bind = "127.0.0.1"
    loop = asyncio.new_event_loop()
    runner = loop.run_until_complete(dashboard.start(cfg, lambda: {}))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(method, path, body=None, headers=None):
        return http_call(port, method, path, body, headers)
    try:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        status, headers, _ = call("POST", "/login", "user=manager&password=manager-pass-1", form)
        cookie = {**form, "Cookie": headers["Set-Cookie"].split(";")[0]}
        status, _, page = call("GET", "/", headers=cookie)
        assert b'id="backup-form"' in page
        ask = {"passphrase": PASSPHRASE, "passphrase2": PASSPHRASE, "password": "manager-pass-1"}
        for change, code in (({"password": "guess-1234"}, "password"),
                             ({"passphrase2": "something else"}, "mismatch"),
                             ({"passphrase": "short", "passphrase2": "short"}, "short")):
            status, headers, _ = call("POST", "/backup",
                                      urllib.parse.urlencode({**ask, **change}), cookie)
            assert status == 303 and f"backup_error={code}" in headers["Location"]
        status, _, _ = call("POST", "/backup", urllib.parse.urlencode(ask),
                            {**cookie, "Origin": "http://evil.example"})
        assert status == 403
        status, _, _ = call("POST", "/backup", urllib.parse.urlencode(ask), form)
        assert status == 302  # no session: the log-in page
        status, headers, made = call("POST", "/backup", urllib.parse.urlencode(ask), cookie)
        assert status == 200 and "msk-12-" in headers["Content-Disposition"]
        assert not list(config.parent.parent.glob("var/.store-backup-*"))  # no copy stays
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    etc, var = tmp_path / "b" / "etc", tmp_path / "b" / "var"
    page = SetupServer(etc, var).start()
    status, html = page.get("/?lang=en")
    assert html.index('id="restore"') < html.index('id="new"')  # the first choice
    url = f"http://127.0.0.1:{page.port}/restore"
    status, html = post_multipart(url + "?lang=ru", {"passphrase": "not it at all"}, made)
    assert status == 400 and "Пароль не тот" in html and "ничего не изменено" in html
    assert _tree(etc) == {} and page.requests == []
    status, html = post_multipart(url + "?lang=en", {"passphrase": PASSPHRASE}, None)
    assert status == 400 and "Choose the backup file" in html
    # Reached by another address than the one the panels dial: said so.
    status, html = post_multipart(url + "?lang=en", {"passphrase": PASSPHRASE}, made,
                                  {"Host": f"192.168.10.9:{page.port}"})
    assert status == 200 and "Store msk-12 is restored" in html, html
    assert 'id="dial-differs"' in html and "give it 192.168.10.2" in html
    assert "192.168.10.2" in html and f":{port}/" in html  # where the panels dial; the dashboard
    assert page.requests == ["apply"] and page.finished.wait(10)
    assert host_config.load(etc / "concentrator.yaml").pos_token == cfg.pos_token
    assert not list(var.glob(".store-*"))  # the upload is not kept


def test_backup_and_restore_commands_move_a_store(tmp_path):
    config = _store_a(tmp_path)
    cli = [sys.executable, "-m", "loyalty_button.cli"]
    done = subprocess.run([*cli, "backup", "--store", "--config", str(config), "--to",
                           str(tmp_path / "out")], input=PASSPHRASE + "\n",
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    made = Path(done.stdout.strip().splitlines()[-1])
    assert made.suffix == ".lbstore" and "1 records" in done.stdout
    b = tmp_path / "b"
    done = subprocess.run([*cli, "restore", str(made), "--config",
                           str(b / "etc" / "concentrator.yaml"), "--var", str(b / "var")],
                          input="wrong passphrase\n", capture_output=True, text=True)
    assert done.returncode == 1 and "passphrase is not the one" in done.stderr
    done = subprocess.run([*cli, "restore", str(made), "--config",
                           str(b / "etc" / "concentrator.yaml"), "--var", str(b / "var")],
                          input=PASSPHRASE + "\n", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "restored store msk-12" in done.stdout and "broker apply" in done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="root writing into the service's folders")
def test_root_follows_no_link_the_service_user_planted(store_db, tmp_path):
    """An installer's `setup`, `restore` and `dashboard add-user` run as
    root in folders the service's user may write. Links planted there at
    every temporary name those commands ever used lead nowhere: root
    writes only where it means to."""
    from loyalty_button.appliance import firstrun
    etc, var = tmp_path / "etc", tmp_path / "var"
    etc.mkdir()
    var.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    planted = {etc: ["catalogue.yaml.tmp", "concentrator.yaml.tmp", "concentrator.yaml.new",
                     "concentrator.yaml.new.tmp", "dashboard-users.tmp", "dashboard-users.new",
                     "catalogue.yaml.new"],
               var: ["panels.json.tmp", "panels.json.new", "store-ca.new", "records.db.restoring"],
               store_db.parent: ["records.db.restoring"]}
    for folder, names in planted.items():
        for name in names:
            (folder / name).symlink_to(elsewhere / f"{folder.name}-{name}")
    firstrun.configure(firstrun.Answers(
        "msk-12", "Europe/Moscow", ["1"], "manager", "manager-pass-1", "shop-pos",
        "wifi-pass-123", "192.168.10.2"), etc, var, _broker_files(var))
    dashboard.add_user(etc / "dashboard-users", "deputy", "deputy-pass-1")
    good = backup.backup(store_db, tmp_path / "backups", keep=3)
    backup.restore(good, store_db)
    assert sorted(p.name for p in elsewhere.iterdir()) == []
    assert sorted(dashboard.read_users(etc / "dashboard-users")) == ["deputy", "manager"]


def test_restore_refuses_foreign_objects_and_rebuilds_its_own_triggers(store_db, tmp_path):
    """A backup file is something a person hands over: its views, triggers
    and schema version are not trusted. What a store database never holds is
    refused with a reason; a trigger named as the project's own does not
    survive the restore (the concentrator makes its own again)."""
    from loyalty_button.service import rollup
    good = backup.backup(store_db, tmp_path / "b", keep=5)

    def variant(name: str, *sql: str) -> Path:
        path = tmp_path / f"{name}.db"
        shutil.copy(good, path)
        conn = sqlite3.connect(path)
        for statement in sql:
            conn.execute(statement)
        conn.commit()
        conn.close()
        return path
    evil = "INSERT INTO meta VALUES ('evil-' || NEW.id, 'ran')"
    refused = {
        "trigger 'exfiltrate'": variant(
            "trigger", f"CREATE TRIGGER exfiltrate AFTER INSERT ON records BEGIN {evil}; END"),
        "view 'records'": variant("view", "ALTER TABLE records RENAME TO old_records",
                                  "CREATE VIEW records AS SELECT * FROM old_records"),
        "schema version 'x'": variant("word", "UPDATE meta SET value = 'x' WHERE key = 'schema'"),
        "schema version '-1'": variant("negative",
                                       "UPDATE meta SET value = '-1' WHERE key = 'schema'"),
    }
    before = store_db.read_bytes()
    for words, path in refused.items():
        with pytest.raises(backup.BackupError, match=words.replace("(", r"\(")):
            backup.restore(path, store_db)
        assert store_db.read_bytes() == before, words
    # A trigger under one of the project's own names, with a body of its own.
    ours = rollup.TRIGGER_NAMES[0]
    disguised = variant("disguised", f'DROP TRIGGER "{ours}"',
                        f'CREATE TRIGGER "{ours}" AFTER INSERT ON records BEGIN {evil}; END')
    backup.restore(disguised, store_db)
    store = RecordStore(store_db)  # the concentrator opening it
    store.stop()
    conn = sqlite3.connect(store_db)
    conn.execute(INSERT, ("s-R2", "R2"))
    conn.commit()
    body = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (ours,)).fetchone()[0]
    assert "evil" not in body
    assert conn.execute("SELECT count(*) FROM meta WHERE key LIKE 'evil-%'").fetchone() == (0,)
    conn.close()


def test_the_set_up_page_answers_only_its_own_pages(tmp_path):
    """Another site's form, sent from a browser on the store LAN, and a page
    that reached this host by another name (DNS rebinding), get nothing:
    no set-up, no POS key and token."""
    from conftest import post_multipart
    etc, var = tmp_path / "etc", tmp_path / "var"
    page = SetupServer(etc, var).start()
    status, text = page.post(FORM, headers={"Origin": "http://evil.example"})
    assert status == 403 and "set-up page itself" in text
    rebound = {"Host": f"setup.evil.example:{page.port}",
               "Origin": f"http://setup.evil.example:{page.port}"}
    status, text = page.post(FORM, headers=rebound)
    assert status == 421 and "host's address" in text
    with pytest.raises(urllib.error.HTTPError) as e:
        page.get("/", host=f"setup.evil.example:{page.port}")
    assert e.value.code == 421
    status, _ = post_multipart(f"http://127.0.0.1:{page.port}/restore",
                               {"passphrase": "whatever it is"}, b"LOYALTY",
                               {"Origin": "http://evil.example"})
    assert status == 403
    assert not etc.exists() or list(etc.iterdir()) == []
    assert page.requests == []
    # The page itself, by the host's address or its own name: it works.
    status, html = page.post(FORM, headers={"Origin": f"http://127.0.0.1:{page.port}"})
    assert status == 200 and "is set up" in html
