"""The store's registered panels: which till each serves, its board, and
its MQTT login; kept in step with the store broker's password file and ACL.

The registry is a JSON file (settings `panels.registry`, by default
panels.json beside the database), private to the host (0600: it holds the
panels' passwords, which a re-flash writes into panel.json again).

Adding or removing a panel edits the broker's password file with
`mosquitto_passwd` (one user at a time: the host's and the probe's entries
stay as they are), writes the ACL when it is missing or not the project's
(docs/protocol.md), and reloads Mosquitto with SIGHUP (its `pid_file`):
Mosquitto then reads both files again and keeps every connection."""

from __future__ import annotations

import json
import os
import re
import secrets
import ssl
import time
from pathlib import Path

from lbpanel import boards, config as panel_config

from ..service import broker_access
from ..settings import write_beside

# The store's CA on a panel's flash, in DER: MicroPython's mbedTLS takes it
# as data without the PEM parser's terminating NUL, and it is smaller.
CA_FILE = "ca.der"

TILL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$")


class RegistryError(RuntimeError):
    pass


def panel_id_for(till: str) -> str:
    if not TILL.match(till):
        raise RegistryError(f"till {till!r}: use letters, digits, - or _ (at most 16), "
                            f"e.g. 3 or front-2")
    return f"till-{till}"


class Registry:
    def __init__(self, cfg):
        """cfg: the concentrator's HostConfig (its panels.* settings)."""
        self.cfg = cfg
        self.path = Path(cfg.panels_registry)

    # --- the file -----------------------------------------------------------
    def _doc(self) -> dict:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"panels": {}}
        except (OSError, ValueError) as e:
            raise RegistryError(f"{self.path}: cannot read the panel registry ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("panels"), dict):
            raise RegistryError(f"{self.path}: not a panel registry (no 'panels' mapping)")
        return doc

    def load(self) -> dict[str, dict]:
        return self._doc()["panels"]

    def _save(self, panels: dict, installer: dict | None = None,
              ota_key: str | None = None) -> None:
        doc = self._doc()
        doc["panels"] = panels
        if installer is not None:
            doc["installer"] = installer
        if ota_key is not None:
            doc["ota_key"] = ota_key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Made private from the start: it holds the panels' passwords.
        write_beside(self.path, json.dumps(doc, indent=1, sort_keys=True) + "\n", 0o600)

    def logins(self) -> dict[str, str]:
        """Every login the registry holds: the installer's (once made) and
        each panel's, user name to password."""
        doc = self._doc()
        out = {broker_access.INSTALLER_USER: doc["installer"]["password"]} \
            if doc.get("installer") else {}
        out.update((pid, e["password"]) for pid, e in sorted(doc["panels"].items()))
        return out

    def installer_login(self) -> tuple[str, str]:
        """The station's own broker login (it may only read the panels'
        status), made at the first use. Never the host's: the broker binds
        client ids to user names, so a second "host" login would knock the
        concentrator off."""
        doc = self._doc()
        entry = doc.get("installer")
        if not entry:
            self._require_panel_settings()
            entry = {"password": secrets.token_urlsafe(18)}
            self._broker_user(broker_access.INSTALLER_USER, entry["password"])
            self._save(doc["panels"], entry)
            self.reload_broker()
        return broker_access.INSTALLER_USER, entry["password"]

    def ota_key(self) -> str:
        """The store's update signing key (64 hex digits), made at the first
        use. Every panel.json carries it; a bundle signed with it is one
        this store's host sent (docs/ota.md)."""
        doc = self._doc()
        key = doc.get("ota_key")
        if not key:
            key = secrets.token_hex(32)
            self._save(doc["panels"], ota_key=key)
        return key

    # --- what an installer does ---------------------------------------------
    def add(self, till: str, board: str, broker: bool = True) -> str:
        """Register the till's panel; returns its panel id. The broker
        learns its login at once, or (`broker` False: the dashboard's
        set-up, which may not touch Mosquitto's files) at the next
        `loyalty-button broker apply`."""
        if board not in boards.BOARDS:
            raise RegistryError(f"board {board!r}: one of {', '.join(sorted(boards.BOARDS))}")
        self._require_panel_settings()
        panel_id = panel_id_for(till)
        panels = self.load()
        if panel_id in panels:
            raise RegistryError(f"till {till} already has a panel ({panel_id}); "
                                f"'loyalty-button panels remove {panel_id}' first")
        panels[panel_id] = {"till": till, "board": board,
                            "password": secrets.token_urlsafe(18),
                            "added": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if broker:
            self._broker_user(panel_id, panels[panel_id]["password"])
        self._save(panels)
        if broker:
            self.reload_broker()
        return panel_id

    def remove(self, panel_id: str) -> dict:
        panels = self.load()
        if panel_id not in panels:
            raise RegistryError(f"no panel {panel_id!r} is registered "
                                f"(see 'loyalty-button panels list')")
        gone = panels.pop(panel_id)
        self._broker_user(panel_id, None)
        self._save(panels)
        self.reload_broker()
        return gone

    def panel_json(self, panel_id: str) -> dict:
        """The panel's panel.json: its identity and login, the store's
        Wi-Fi and the broker address panels dial. Checked with the panel's
        own parser, so what is written is what the panel accepts."""
        entry = self.load().get(panel_id)
        if entry is None:
            raise RegistryError(f"no panel {panel_id!r} is registered")
        self._require_panel_settings()
        cfg = self.cfg
        broker = {"host": cfg.panels_broker_host, "port": self.broker_port(),
                  "user": panel_id, "password": entry["password"]}
        if cfg.panels_tls:
            self.ca_der()  # refused here, before a panel is flashed without it
            broker["ca_file"] = CA_FILE
        doc = {
            "panel_id": panel_id,
            "store": cfg.store,
            "board": entry["board"],
            "lang": cfg.panels_lang,
            "broker": broker,
            "wifi": {"ssid": cfg.panels_wifi_ssid, "password": cfg.panels_wifi_password or ""},
            "ota": {"key": self.ota_key()},
        }
        try:
            panel_config.parse(doc)
        except panel_config.ConfigError as e:
            raise RegistryError(f"panel.json for {panel_id} would be refused by the panel: "
                                f"{'; '.join(e.problems)}") from None
        return doc

    def broker_port(self) -> int:
        """The port panels dial: panels.broker_port, else the broker's TLS
        listener with panels.tls, else its plain one."""
        cfg = self.cfg
        if cfg.panels_broker_port:
            return cfg.panels_broker_port
        return cfg.mosquitto_tls_port if cfg.panels_tls else cfg.broker_port

    def ca_der(self) -> bytes | None:
        """The store's CA certificate in DER for panels on TLS (None without
        panels.tls)."""
        cfg = self.cfg
        if not cfg.panels_tls:
            return None
        if not cfg.panels_broker_port and not cfg.mosquitto_tls_port:
            raise RegistryError("panels.tls is on but the broker has no TLS listener: set "
                                "mosquitto.tls_port (or panels.broker_port)")
        path = Path(cfg.mosquitto_tls_dir) / "ca.crt"
        try:
            return ssl.PEM_cert_to_DER_cert(path.read_text())
        except FileNotFoundError:
            raise RegistryError(f"panels.tls is on but the store has no CA yet ({path}): run "
                                f"'loyalty-button broker apply' first (docs/broker.md)") from None
        except (OSError, ValueError) as e:
            raise RegistryError(f"{path}: cannot read the store's CA ({e})") from None

    # --- the broker ---------------------------------------------------------
    def _require_panel_settings(self) -> None:
        cfg = self.cfg
        need = [k for k, v in (("panels.wifi_ssid", cfg.panels_wifi_ssid),
                               ("panels.broker_host", cfg.panels_broker_host),
                               ("panels.password_file", cfg.panels_password_file))
                if not v]
        if need:
            raise RegistryError(f"{cfg.source or 'the settings'}: set {', '.join(need)} "
                                f"(docs/installer.md, 'The store's settings')")

    def _broker_user(self, user: str, password: str | None) -> None:
        try:
            broker_access.set_login(self.cfg.panels_password_file, user, password)
            if self.cfg.panels_acl_file:
                broker_access.write_acl(self.cfg.panels_acl_file, self.cfg.store,
                                        self.cfg.broker_user or "host")
        except broker_access.AccessError as e:
            raise RegistryError(str(e)) from None

    def reload_broker(self) -> str:
        try:
            return broker_access.reload(self.cfg.panels_broker_pid_file)
        except broker_access.AccessError as e:
            raise RegistryError(str(e)) from None
