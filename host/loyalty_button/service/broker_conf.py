"""The store broker's Mosquitto configuration, generated from the store's
settings (`loyalty-button broker apply`, docs/broker.md), and the same
base for the simulator's and tests' private brokers (sim/broker.py).

What a store broker gets:
- a plain listener for the LAN (1883) and, with a local CA the host makes
  itself, a TLS listener (8883); panels may use either;
- `allow_anonymous false`, the password file and ACL kept by
  broker_access (host, probe, installer, one login per panel), client ids
  bound to user names;
- persistence saved every `autosave_s` seconds and on shutdown;
- on an appliance, a snippet in /etc/mosquitto/conf.d (`snippet`): Debian's
  own mosquitto.conf already sets persistence and its location, and
  Mosquitto refuses a second value for them; it sets the pid file on
  Debian 12 but not on Debian 13 (its unit is Type=notify), so the snippet
  names the pid file only where the main file does not;
- optionally a bridge to the chain's central broker: Mosquitto's own, that
  publishes the store's panel and probe status there (the chain watches
  its fleet live), with its own login and CA."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..settings import private
from . import broker_access

# The largest MQTT packet the store broker passes (config_text): far above
# the protocol's 1 KiB messages; what a panel may have to read past.
MAX_PACKET_SIZE = 65536


class BrokerConfError(RuntimeError):
    pass


@dataclass
class Listener:
    port: int
    bind: str = "0.0.0.0"
    tls_dir: Path | None = None  # holds ca.crt, server.crt, server.key


@dataclass
class Bridge:
    store: str
    address: str            # host:port of the chain's central broker
    user: str | None = None
    password: str | None = None
    cafile: Path | None = None  # TLS to the central broker when given


def main_config_sets(snippet: Path, key: str) -> bool:
    """Whether the mosquitto.conf that includes the snippet (Debian's, in
    the conf.d folder's parent) sets `key` itself."""
    try:
        text = (Path(snippet).parent.parent / "mosquitto.conf").read_text()
    except OSError:
        return False
    return any(line.split()[:1] == [key] for line in text.splitlines())


def config_text(listeners: list[Listener], data_dir: Path, password_file: Path | None = None,
                acl_file: Path | None = None, run_as: str | None = None,
                pid_file: Path | None = None, autosave_s: int | None = None,
                bridge: Bridge | None = None, source: str = "", snippet: bool = False) -> str:
    """The whole configuration, or with `snippet` the part included by
    Debian's mosquitto.conf (no persistence location or user: that file and
    Mosquitto's unit set them; pass no pid_file where that file sets one,
    main_config_sets)."""
    lines = [f"# Written by `loyalty-button broker apply`{' from ' + source if source else ''};",
             "# it is written again on every apply: change the settings, not this file.",
             "per_listener_settings false",
             f"allow_anonymous {'false' if password_file else 'true'}"]
    if not snippet:
        lines += ["persistence true", f"persistence_location {data_dir}/"]
    if autosave_s:
        # Mosquitto keeps its state in memory and writes it every this
        # many seconds and at a clean shutdown: a power cut loses at most
        # this much of the broker's state. Answers are safe regardless:
        # a panel keeps each one until the host has stored it and acked.
        lines.append(f"autosave_interval {autosave_s}")
    lines += [
        # Mosquitto's default (1000) silently drops QoS 1 messages queued for
        # a slow or offline subscriber; a store's answers must not be dropped.
        "max_queued_messages 100000",
        "max_inflight_messages 100",
        # Every message of the protocol is at most 1 KiB; one login must not
        # be able to make the broker hold and re-send megabytes (a retained
        # 20 MB status goes to every subscriber). A bigger packet ends the
        # sender's connection.
        f"max_packet_size {MAX_PACKET_SIZE}",
        # Without it a small packet (a PUBACK, an answer) can wait for the
        # peer's delayed ACK (~40 ms on Linux): the question would reach the
        # panel tens of milliseconds late.
        "set_tcp_nodelay true",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
    ]
    if run_as and not snippet:
        lines.append(f"user {run_as}")
    if pid_file:
        # Where `loyalty-button panels` finds the broker to reload (SIGHUP:
        # password file and ACL read again, connected clients kept).
        lines.append(f"pid_file {pid_file}")
    if password_file:
        lines.append(f"password_file {password_file}")
    if acl_file:
        lines.append(f"acl_file {acl_file}")
    for lst in listeners:
        lines += ["", f"listener {lst.port} {lst.bind}"]
        if password_file:
            # The client id is the user name, whatever the client asks for:
            # a panel's login cannot take the host's (or another panel's) id
            # and so knock it off the broker (MQTT drops the older of two
            # connections with one id). A listener's own setting: it must
            # follow each `listener` line.
            lines.append("use_username_as_clientid true")
        if lst.tls_dir:
            lines += [f"cafile {lst.tls_dir}/ca.crt", f"certfile {lst.tls_dir}/server.crt",
                      f"keyfile {lst.tls_dir}/server.key", "tls_version tlsv1.2"]
    if bridge:
        root = f"lb/v1/{bridge.store}/"
        lines += ["", f"connection lb-store-{bridge.store}", f"address {bridge.address}",
                  f"remote_clientid lb-store-{bridge.store}",
                  "bridge_protocol_version mqttv311",
                  # The central broker keeps what it queued for this store
                  # while the link is down.
                  "cleansession false",
                  "try_private true",
                  "notifications true",
                  f"notification_topic {root}bridge/state"]
        if bridge.user:
            lines.append(f"remote_username {bridge.user}")
        if bridge.password:
            lines.append(f"remote_password {bridge.password}")
        if bridge.cafile:
            lines += [f"bridge_cafile {bridge.cafile}", "bridge_tls_version tlsv1.2"]
        # Out only, the store's status: the chain watches; nothing comes in.
        lines += [f"topic panel/+/status out 1 {root} {root}",
                  f"topic probe/status out 1 {root} {root}"]
    return "\n".join(lines) + "\n"


# --- the local CA for the TLS listener --------------------------------------

def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BrokerConfError(f"openssl {args[0]} failed: {done.stderr.strip()[-300:]}")


def _readable_by(path: Path, account: str | None) -> None:
    """Key files: Mosquitto's account and group only (Mosquitto reads them
    again as itself, after dropping root, on a reload; Debian 13's 2.0.21
    warns of a password file or ACL it does not own, "future versions will
    refuse to load this file")."""
    private(path, 0o640)
    os.chmod(path, 0o640)
    if account:
        try:
            os.chown(path, pwd.getpwnam(account).pw_uid, grp.getgrnam(account).gr_gid)
        except (KeyError, PermissionError):
            pass  # no such account here (a developer's machine): ours only


def make_ca(ca_dir: Path, store: str) -> bool:
    """The store's own CA in ca_dir (ca.key, ca.crt), made once: a CA made
    again would orphan every panel that trusts the old one. Returns True
    when it was made now. The appliance makes it at set-up, among the
    store's data, so that a store backup carries it (store_backup.py)."""
    ca_dir = Path(ca_dir)
    ca_key, ca_crt = ca_dir / "ca.key", ca_dir / "ca.crt"
    if ca_key.exists() and ca_crt.exists():
        return False
    ca_dir.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
             "-out", str(ca_crt), "-days", "3650", "-subj",
             f"/O=Loyalty Button/CN=store {store} local CA")
    private(ca_key, 0o600)  # the CA's key signs; nobody else reads it
    return True


def _read_plain_file(path: Path, limit: int = 64 * 1024) -> bytes:
    """A file's bytes, refusing a symbolic link: root reads the CA from a
    folder the service's user owns, and must not be led to another file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise BrokerConfError(f"cannot read {path}: {e.strerror} (it must be a plain file)") \
            from None
    with os.fdopen(fd, "rb") as f:
        return f.read(limit)


def ensure_tls(tls_dir: Path, names: list[str], store: str, group: str | None = None,
               ca_dir: Path | None = None) -> bool:
    """A server certificate for `names` (IP addresses and host names the
    panels dial) in tls_dir, signed by the store's CA in ca_dir (by default
    tls_dir itself; made there when missing); made again when the names or
    the CA change (a store restored onto a new host). tls_dir gets a copy of
    the CA's certificate for Mosquitto's `cafile`. Returns True when
    something was made."""
    tls_dir = Path(tls_dir)
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca_dir = Path(ca_dir) if ca_dir else tls_dir
    made = False
    if not (ca_dir / "ca.key").exists() and (tls_dir / "ca.key").exists():
        ca_dir = tls_dir  # a store set up before the CA moved among its data: keep its CA
    elif not (ca_dir / "ca.key").exists():
        try:
            made = make_ca(ca_dir, store)
        except OSError as e:
            raise BrokerConfError(f"the store has no CA in {ca_dir} and one cannot be made "
                                  f"there ({e.strerror}): run 'loyalty-button setup' or "
                                  f"restore the store's backup") from None
    key, crt, made_for = tls_dir / "server.key", tls_dir / "server.crt", tls_dir / "server.names"
    ca_pem = _read_plain_file(ca_dir / "ca.crt")
    if b"-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise BrokerConfError(f"{ca_dir / 'ca.crt'} is not a certificate")
    if ca_dir != tls_dir and (not (tls_dir / "ca.crt").exists()
                              or (tls_dir / "ca.crt").read_bytes() != ca_pem):
        tmp = tls_dir / "ca.crt.tmp"
        tmp.write_bytes(ca_pem)
        os.chmod(tmp, 0o644)
        tmp.replace(tls_dir / "ca.crt")
    import hashlib
    want = ",".join(("IP:" if _is_ip(n) else "DNS:") + n for n in names)
    mark = f"{want}\nca sha256 {hashlib.sha256(ca_pem).hexdigest()}"
    if made or not crt.exists() or not made_for.exists() or made_for.read_text() != mark:
        # The CA's key goes to openssl from a copy in root's own folder.
        ca_key = tls_dir / ".ca.key.signing"
        fd = os.open(ca_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_read_plain_file(ca_dir / "ca.key"))
        csr, ext = tls_dir / "server.csr", tls_dir / "server.ext"
        try:
            _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                     str(csr), "-subj", f"/O=Loyalty Button/CN={names[0]}")
            ext.write_text(f"subjectAltName={want}\nextendedKeyUsage=serverAuth\n")
            _openssl("x509", "-req", "-in", str(csr), "-CA", str(tls_dir / "ca.crt"), "-CAkey",
                     str(ca_key), "-CAcreateserial", "-CAserial", str(tls_dir / "ca.srl"),
                     "-out", str(crt), "-days", "825", "-extfile", str(ext))
        finally:
            for path in (csr, ext, ca_key):
                path.unlink(missing_ok=True)
        made_for.write_text(mark)
        made = True
    _readable_by(key, group)
    return made


def _is_ip(name: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


# --- apply ------------------------------------------------------------------

def apply(cfg, out=print) -> Path:
    """Write the store broker's files from the settings and reload it.
    Returns the configuration file written."""
    problems = []
    if not cfg.broker_user or not cfg.broker_password:
        problems.append("broker.user and broker.password (the host's own login: the broker "
                        "takes no anonymous clients)")
    if not cfg.panels_password_file:
        problems.append("panels.password_file")
    if not cfg.panels_acl_file:
        problems.append("panels.acl_file")
    if cfg.mosquitto_tls_port and not _tls_names(cfg):
        problems.append("mosquitto.tls_names (or panels.broker_host): the addresses panels "
                        "dial, for the TLS certificate")
    if cfg.mosquitto_bridge_address and ":" not in cfg.mosquitto_bridge_address:
        problems.append("mosquitto.bridge_address as host:port")
    if problems:
        raise BrokerConfError(f"{cfg.source or 'the settings'}: set " + "; ".join(problems))
    logins = _sync_logins(cfg)
    out(f"logins in {cfg.panels_password_file}: {', '.join(logins)}")
    listeners = [Listener(cfg.mosquitto_port, cfg.mosquitto_bind)]
    if cfg.mosquitto_tls_port:
        tls_dir = Path(cfg.mosquitto_tls_dir)
        if ensure_tls(tls_dir, _tls_names(cfg), cfg.store, cfg.mosquitto_run_as,
                      cfg.mosquitto_ca_dir):
            out(f"TLS: a local CA and a server certificate for {', '.join(_tls_names(cfg))} "
                f"in {tls_dir}; panels that use TLS trust {tls_dir}/ca.crt")
        listeners.append(Listener(cfg.mosquitto_tls_port, cfg.mosquitto_bind, tls_dir))
    bridge = None
    if cfg.mosquitto_bridge_address:
        bridge = Bridge(cfg.store, cfg.mosquitto_bridge_address, cfg.mosquitto_bridge_user,
                        cfg.mosquitto_bridge_password, cfg.mosquitto_bridge_cafile)
    conf = Path(cfg.mosquitto_config)
    pid_file = cfg.panels_broker_pid_file
    if cfg.mosquitto_snippet and main_config_sets(conf, "pid_file"):
        pid_file = None  # Debian 12's mosquitto.conf names it; a second is refused
    text = config_text(listeners, cfg.mosquitto_persistence_dir, cfg.panels_password_file,
                       cfg.panels_acl_file, cfg.mosquitto_run_as, pid_file,
                       cfg.mosquitto_autosave_s, bridge, cfg.source, cfg.mosquitto_snippet)
    conf.parent.mkdir(parents=True, exist_ok=True)
    changed = not conf.exists() or conf.read_text() != text
    tmp = conf.with_name(conf.name + ".tmp")
    tmp.write_text(text)
    # The bridge's password is in it: Mosquitto's group may read, nobody else.
    _readable_by(tmp, cfg.mosquitto_run_as)
    tmp.replace(conf)
    out(f"wrote {conf} (listeners {', '.join(str(lst.port) for lst in listeners)}"
        f"{', bridge to ' + bridge.address if bridge else ''})")
    if changed and os.path.isdir("/run/systemd/system"):
        # Listeners and bridges are read only at start: a reload is not enough.
        done = subprocess.run(["systemctl", "restart", "mosquitto.service"],
                              capture_output=True, text=True)
        out("Mosquitto restarted" if done.returncode == 0 else
            f"systemctl restart mosquitto failed: {done.stderr.strip()}")
    elif cfg.panels_broker_pid_file and not Path(cfg.panels_broker_pid_file).exists():
        out("Mosquitto is not running: start it (systemctl start mosquitto)")
    elif changed:
        out(broker_access.reload(cfg.panels_broker_pid_file) +
            "; the configuration changed: restart Mosquitto for new listeners or a bridge")
    else:
        out(broker_access.reload(cfg.panels_broker_pid_file))
    return conf


def _sync_logins(cfg) -> list[str]:
    """Every login the store has, in Mosquitto's password file: the host's,
    and the installer's and each registered panel's from the registry (a
    set-up done by the dashboard, which cannot write Mosquitto's files,
    registers panels and leaves their logins to this). The files are
    readable by Mosquitto's group: it reads them again, as itself, on a
    reload."""
    from ..panels.registry import Registry, RegistryError
    logins = {cfg.broker_user: cfg.broker_password}
    try:
        logins.update(Registry(cfg).logins())
    except RegistryError as e:
        raise BrokerConfError(str(e)) from None
    logins.update(_probe_login(cfg))
    broker_access.write_acl(cfg.panels_acl_file, cfg.store, cfg.broker_user)
    for user, password in logins.items():
        broker_access.set_login(cfg.panels_password_file, user, password)
    for path in (cfg.panels_password_file, cfg.panels_acl_file):
        _readable_by(Path(path), cfg.mosquitto_run_as)
    return list(logins)


def _probe_login(cfg, out=print) -> dict[str, str]:
    """The emotion probe's login from probe.yaml beside the settings, when
    the store has one (a restored store brings it; the ACL names the user
    `probe`)."""
    from ..probe import config as probe_config
    if not cfg.source:
        return {}
    path = Path(cfg.source).parent / "probe.yaml"
    if not path.exists():
        return {}
    try:
        probe = probe_config.load(path)
    except probe_config.ProbeConfigError as e:
        out(f"the probe's login is left as it is: {path}: {'; '.join(e.problems)}")
        return {}
    if probe.broker_user != "probe" or not probe.broker_password:
        out(f"the probe's login is left as it is: {path} names broker.user "
            f"{probe.broker_user!r} (the ACL's is 'probe') or no password")
        return {}
    return {"probe": probe.broker_password}


def _tls_names(cfg) -> list[str]:
    raw = cfg.mosquitto_tls_names or cfg.panels_broker_host or ""
    return [n.strip() for n in raw.split(",") if n.strip()]


def pin_to_appliance(cfg, out=print):
    """The settings with every file root writes or hands to Mosquitto set to
    the appliance's own (appliance/layout.py). The appliance's broker unit
    runs as root on concentrator.yaml, which the service's user may write:
    without this, that user could name any file for root to write."""
    from ..appliance import layout
    from .config import DEBIAN_MOSQUITTO_PID
    pinned = {"mosquitto_config": layout.MOSQUITTO_CONF, "mosquitto_snippet": True,
              "panels_password_file": layout.MOSQUITTO_PASSWD,
              "panels_acl_file": layout.MOSQUITTO_ACL, "mosquitto_tls_dir": layout.MOSQUITTO_TLS,
              "mosquitto_ca_dir": layout.STORE_CA,
              "panels_broker_pid_file": DEBIAN_MOSQUITTO_PID, "mosquitto_run_as": "mosquitto",
              "mosquitto_persistence_dir": Path("/var/lib/mosquitto")}
    for key, value in pinned.items():
        have = getattr(cfg, key)
        if (str(have) if isinstance(have, Path) else have) != (
                str(value) if isinstance(value, Path) else value):
            out(f"{key.replace('_', '.', 1)}: {have} is not the appliance's; using {value} "
                f"(the broker unit writes only Mosquitto's own files)")
        setattr(cfg, key, value)
    return cfg


def cli(args) -> int:
    from . import config as host_config
    try:
        cfg = host_config.load(Path(args.config))
        apply(pin_to_appliance(cfg) if args.appliance else cfg)
    except (BrokerConfError, broker_access.AccessError) as e:
        print(f"broker apply: {e}")
        return 2
    return 0
