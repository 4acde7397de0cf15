"""A store set up for the installer's station, for its tests and benchmark:
a private Mosquitto with a host login, a password file, an ACL and a pid
file, and the store's concentrator.yaml with its `panels:` settings
(docs/installer.md)."""

from __future__ import annotations

from pathlib import Path

from .broker import Broker

STORE = "s1"
WIFI = "store-12-pos"
HOST_PASSWORD = "host-secret"


def start_broker(root: Path, tls: bool = False) -> Broker:
    """tls: also a TLS listener whose certificate names 127.0.0.1."""
    return Broker(Path(root) / "broker", users={"host": HOST_PASSWORD}, store=STORE,
                  tls_names=["127.0.0.1"] if tls else None).start()


def store_config(root: Path, broker: Broker, panels_port: int | None = None,
                 name: str = "concentrator.yaml") -> Path:
    """The store's settings; panels_port: the broker port written into the
    panels' panel.json (default: the broker's own)."""
    root = Path(root)
    (root / "catalogue.yaml").touch()
    # On TLS the port comes from mosquitto.tls_port, as in a store.
    port = panels_port or (None if broker.tls_port else broker.port)
    port_line = f"  broker_port: {port}\n" if port else ""
    path = root / name
    path.write_text(f"""store: {STORE}
catalogue: catalogue.yaml
database: data/records.db
broker: {{host: 127.0.0.1, port: {broker.port}, user: host, password: {HOST_PASSWORD}}}
panels:
  wifi_ssid: {WIFI}
  wifi_password: secret123
  broker_host: 127.0.0.1
{port_line}  lang: ru
  password_file: {broker.workdir}/passwd
  acl_file: {broker.workdir}/acl
  broker_pid_file: {broker.pid_file}
""")
    if broker.tls_port:
        # The panels dial the TLS listener and trust the store's CA.
        with open(path, "a") as f:
            f.write(f"""  tls: true
mosquitto:
  tls_port: {broker.tls_port}
  tls_dir: {broker.tls_dir}
""")
    path.chmod(0o600)
    return path
