"""The store broker as `loyalty-button broker apply` writes it
(docs/broker.md), run by a real Mosquitto from the generated file: no
anonymous client, no panel with another panel's password, the TLS listener
with the host's own CA, and Mosquitto's bridge carrying the store's panel
status to a chain's central broker."""

from __future__ import annotations

import contextlib
import getpass
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from loyalty_button.panels.firmware_build import venv_tool
from loyalty_button.sim.broker import Broker, free_port, mosquitto_path

STORE = "s1"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([venv_tool("loyalty-button", "loyalty-button"), *args],
                          capture_output=True, text=True, timeout=120)


def _login(port: int, user: str | None, password: str | None, ca: Path | None = None,
           tls: bool = False) -> str:
    """'ok', or why the broker (or TLS) turned the client away."""
    got = {}
    done = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{time.monotonic_ns()}")
    if user:
        c.username_pw_set(user, password)
    if tls:
        c.tls_set(ca_certs=str(ca) if ca else None)

    def on_connect(client, userdata, flags, reason, properties=None):
        got["r"] = "ok" if not reason.is_failure else str(reason)
        done.set()
    c.on_connect = on_connect
    try:
        c.connect("127.0.0.1", port, 10)
    except (ssl.SSLError, OSError) as e:
        return f"refused: {type(e).__name__}"
    c.loop_start()
    done.wait(5)
    c.loop_stop()
    c.disconnect()
    return got.get("r", "no answer")


def _wait_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    for _ in range(200):
        assert proc.poll() is None, f"mosquitto refused the generated config:\n{log.read_text()}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing on port {port}")


@contextlib.contextmanager
def _mosquitto(conf: Path, port: int):
    """A real Mosquitto run from `conf` (its log beside it), once it listens
    on `port`; stopped afterwards."""
    log = conf.with_name("mosquitto.log")
    with open(log, "wb") as logf:
        proc = subprocess.Popen([mosquitto_path(), "-c", str(conf)], stdout=logf,
                                stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, log)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def _settings(d: Path, port: int, pid_file: Path, mosquitto: str) -> Path:
    """A store's concentrator.yaml in `d` with its broker on `port`;
    `mosquitto`: that section's own lines."""
    cfg = d / "concentrator.yaml"
    cfg.write_text(f"""store: {STORE}
catalogue: catalogue.yaml
database: data/records.db
broker: {{host: 127.0.0.1, port: {port}, user: host, password: host-secret}}
panels:
  wifi_ssid: store-12-pos
  broker_host: 127.0.0.1
  password_file: {d}/passwd
  acl_file: {d}/acl
  broker_pid_file: {pid_file}
mosquitto:
  bind: 127.0.0.1
  port: {port}
  run_as: {getpass.getuser()}
{mosquitto}""")
    cfg.chmod(0o600)
    return cfg


@pytest.fixture
def store(tmp_path):
    central = Broker(tmp_path / "central", store="chain").start()  # anonymous: the chain's
    d = tmp_path / "store"
    d.mkdir()
    (d / "catalogue.yaml").touch()
    port, tls_port = free_port(), free_port()
    cfg = _settings(d, port, d / "mosquitto.pid", f"""  config: {d}/mosquitto.conf
  snippet: false
  tls_port: {tls_port}
  tls_names: 127.0.0.1,localhost
  persistence_dir: {d}/data
  bridge_address: 127.0.0.1:{central.port}
""")
    (d / "data").mkdir()
    yield d, cfg, port, tls_port, central
    central.stop()


def test_the_generated_broker_admits_only_its_own_logins_and_bridges_the_status(store):
    d, cfg, port, tls_port, central = store
    # The probe's settings beside the store's: its login comes from there (a
    # store restored onto a new host brings them).
    probe = (Path(__file__).resolve().parents[1] / "host" / "loyalty_button" / "examples"
             / "probe.yaml").read_text().replace("password: change-me",
                                                 "password: probe-pass-123")
    (d / "probe.yaml").write_text(probe)
    applied = _cli("broker", "apply", "--config", str(cfg))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Mosquitto is not running" in applied.stdout
    conf = (d / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "use_username_as_clientid true" in conf
    assert f"listener {tls_port} 127.0.0.1" in conf and "autosave_interval 10" in conf
    ca = d / "data" / "broker-tls" / "ca.crt"
    assert ca.exists() and (d / "data" / "broker-tls" / "ca.key").stat().st_mode & 0o077 == 0

    log = d / "mosquitto.log"
    with _mosquitto(d / "mosquitto.conf", port) as proc:
        _wait_port(tls_port, proc, log)
        for till in ("1", "2"):
            added = _cli("panels", "add", till, "--board", "cyd", "--config", str(cfg))
            assert added.returncode == 0, added.stderr
            assert "reloaded" in added.stdout
        reg = __import__("json").loads((d / "data" / "panels.json").read_text())["panels"]
        pw1, pw2 = reg["till-1"]["password"], reg["till-2"]["password"]

        assert _login(port, None, None) != "ok"                    # anonymous
        assert _login(port, "till-1", pw2) != "ok"                 # another panel's password
        assert _login(port, "till-9", pw1) != "ok"                 # not registered
        assert _login(port, "till-1", pw1) == "ok"
        assert _login(port, "probe", "probe-pass-123") == "ok"
        assert _login(port, "probe", "change-me") != "ok"
        assert _login(tls_port, "till-1", pw1, ca=ca, tls=True) == "ok"
        # A client that does not trust the store's CA gets no TLS session.
        assert _login(tls_port, "till-1", pw1, tls=True) != "ok"
        assert _login(tls_port, "till-1", pw2, ca=ca, tls=True) != "ok"

        # The bridge: a panel's status reaches the chain's central broker.
        seen = threading.Event()
        watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="chain-watch")
        watcher.on_message = lambda c, u, m: seen.set() if m.payload == b"online!" else None
        watcher.connect("127.0.0.1", central.port)
        watcher.subscribe(f"lb/v1/{STORE}/panel/+/status", 1)
        watcher.loop_start()
        panel = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="till-1")
        panel.username_pw_set("till-1", pw1)
        panel.connect("127.0.0.1", port)
        panel.loop_start()
        time.sleep(0.5)
        panel.publish(f"lb/v1/{STORE}/panel/till-1/status", b"online!", qos=1, retain=True)
        assert seen.wait(10), "the status did not cross the bridge:\n" + log.read_text()[-2000:]
        panel.loop_stop()
        watcher.loop_stop()

    # No complaint about the file (the OpenSSL line is the untrusting client).
    bad = [ln for ln in log.read_text().splitlines() if "Error" in ln and "OpenSSL" not in ln]
    assert not bad, bad

    # Applied again: the same CA (panels trust it), the same logins.
    before = ca.read_bytes()
    again = _cli("broker", "apply", "--config", str(cfg))
    assert again.returncode == 0 and ca.read_bytes() == before
    assert "till-1:" in (d / "passwd").read_text()


def test_apply_says_what_is_missing(tmp_path):
    (tmp_path / "catalogue.yaml").touch()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"store: {STORE}\ncatalogue: catalogue.yaml\ndatabase: data/r.db\n"
                   f"mosquitto: {{config: {tmp_path}/m.conf, bridge_address: central}}\n")
    run = _cli("broker", "apply", "--config", str(cfg))
    assert run.returncode == 2
    for want in ("broker.user and broker.password", "panels.password_file",
                 "panels.acl_file", "mosquitto.tls_names", "bridge_address as host:port"):
        assert want in run.stdout, (want, run.stdout)
    assert not (tmp_path / "m.conf").exists()


@pytest.mark.parametrize("release,main_pid_line", [
    ("bookworm", "pid_file {run}/mosquitto.pid"),       # Debian 12's mosquitto.conf sets it
    ("trixie", "#pid_file {run}/mosquitto.pid"),        # Debian 13's leaves it out
])
def test_the_appliance_snippet_names_the_pid_file_only_where_debian_does_not(
        tmp_path, release, main_pid_line):
    """On an appliance the settings go into /etc/mosquitto/conf.d, under
    Debian's own mosquitto.conf: a second pid_file is refused by Mosquitto,
    none leaves `broker apply` and the panels' tools without a broker to
    reload. Either way a real Mosquitto starts from the pair and writes the
    pid file the settings name."""
    etc, run = tmp_path / "mosquitto", tmp_path / "run"
    (etc / "conf.d").mkdir(parents=True)
    run.mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "catalogue.yaml").touch()
    (etc / "mosquitto.conf").write_text(
        main_pid_line.format(run=run) + f"\npersistence true\npersistence_location "
        f"{tmp_path}/data/\nuser {getpass.getuser()}\ninclude_dir {etc}/conf.d\n")
    port = free_port()
    cfg = _settings(tmp_path, port, run / "mosquitto.pid",
                    f"  config: {etc}/conf.d/loyalty-button.conf\n  snippet: true\n")
    applied = _cli("broker", "apply", "--config", str(cfg))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    snippet = (etc / "conf.d" / "loyalty-button.conf").read_text()
    assert ("pid_file" in snippet) == (release == "trixie"), snippet
    with _mosquitto(etc / "mosquitto.conf", port) as proc:
        assert (run / "mosquitto.pid").read_text().strip() == str(proc.pid)
        again = _cli("broker", "apply", "--config", str(cfg))
        assert f"Mosquitto (pid {proc.pid}) reloaded" in again.stdout, again.stdout


def test_a_store_set_up_before_the_ca_moved_keeps_its_ca(tmp_path):
    """A store whose CA is still in the broker's TLS folder (set up by an
    earlier build) goes on with that CA: no new one is made where the new
    setting points, which would orphan every panel that trusts the old."""
    from loyalty_button.service import broker_conf
    old_tls, new_ca = tmp_path / "broker-tls", tmp_path / "store-ca"
    broker_conf.ensure_tls(old_tls, ["192.168.10.2"], "s1")  # the earlier build's layout
    ca = (old_tls / "ca.crt").read_bytes()
    broker_conf.ensure_tls(old_tls, ["192.168.10.3"], "s1", None, new_ca)
    assert not new_ca.exists() and (old_tls / "ca.crt").read_bytes() == ca
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(old_tls / "ca.crt"),
                               str(old_tls / "server.crt")], capture_output=True, text=True)
    assert verified.returncode == 0 and "192.168.10.3" in (old_tls / "server.names").read_text()
