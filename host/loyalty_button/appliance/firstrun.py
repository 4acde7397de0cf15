"""The store's first-run set-up: from a handful of answers (store id, time
zone, tills, the manager's login, the panels' Wi-Fi) to a configured
store: concentrator.yaml with fresh secrets, the catalogue with the tills,
the dashboard's users file, one registered panel per till.

Two doors, one function: the set-up page the dashboard serves until the
store is configured (setup_page.py), and `loyalty-button setup` for
installers. The POS key and token are returned once, to be shown once:
they are in concentrator.yaml (0600) and nowhere on a screen again."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import tempfile
import time
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

from lbpanel import boards

from ..panels.registry import TILL, Registry, RegistryError
from ..service import broker_conf, catalogue as catalogue_mod, config as host_config, dashboard
from ..settings import draft_beside, own_like, replace_owned
from . import layout

STORE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class FirstRunError(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Answers:
    store: str
    timezone: str
    tills: list[str]
    admin: str
    admin_password: str
    wifi_ssid: str
    wifi_password: str
    broker_host: str          # the address the panels dial: this host on the store LAN
    board: str = "cyd"
    lang: str = "ru"
    ports: dict = field(default_factory=dict)  # broker, tls, pos_http, pos_udp, dashboard


PORTS = {"broker": 1883, "tls": 8883, "pos_http": 8080, "pos_udp": 47800, "dashboard": 8088}


def check(a: Answers) -> list[str]:
    """Every problem with the answers, each saying what to give instead."""
    return [en for _, en, _ in field_problems(a)]


def field_problems(a: Answers) -> list[tuple[str, str, str]]:
    """check()'s problems as (the answer's field, English, Russian): the
    set-up page shows each beside its field, in the page's language."""
    out = []

    def bad(name: str, en: str, ru: str) -> None:
        out.append((name, en, ru))
    if not STORE_ID.match(a.store or ""):
        bad("store", "store id: lower-case letters, digits, - or _ (at most 32), e.g. msk-12",
            "код магазина: строчные латинские буквы, цифры, - или _ (до 32), например msk-12")
    try:
        zoneinfo.ZoneInfo(a.timezone or "")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        bad("timezone", f"time zone {a.timezone!r}: a name like Europe/Moscow",
            f"часовой пояс {a.timezone!r}: название вида Europe/Moscow")
    if not a.tills:
        bad("tills", "tills: at least one, as the POS numbers them (e.g. 1, 2, 3)",
            "кассы: хотя бы одна, с номерами, как у кассовой программы (например 1, 2, 3)")
    for till in a.tills:
        if not TILL.match(till):
            bad("tills", f"till {till!r}: letters, digits, - or _ (at most 16)",
                f"касса {till!r}: буквы, цифры, - или _ (до 16)")
    if len(set(a.tills)) != len(a.tills):
        bad("tills", "tills: each till once", "кассы: каждая по одному разу")
    if not a.admin or ":" in a.admin or len(a.admin) > 64:
        bad("admin", "manager's user name: without ':' (at most 64 characters)",
            "имя управляющего: без «:» (до 64 символов)")
    if len(a.admin_password or "") < 8:
        bad("admin_password", "manager's password: at least 8 characters",
            "пароль управляющего: не короче 8 символов")
    if not 1 <= len((a.wifi_ssid or "").encode()) <= 32:
        bad("wifi_ssid", "Wi-Fi name for the panels: 1 to 32 bytes",
            "имя сети Wi-Fi для панелей: от 1 до 32 байт")
    if a.wifi_password and not 8 <= len(a.wifi_password.encode()) <= 63:
        bad("wifi_password", "Wi-Fi password: 8 to 63 characters (WPA2), or none for an open "
            "network", "пароль Wi-Fi: от 8 до 63 символов (WPA2) или пусто для открытой сети")
    if not _is_address(a.broker_host or ""):
        bad("broker_host", f"this host's address on the store LAN {a.broker_host!r}: an IP "
            f"address or host name the panels can reach, e.g. 192.168.1.10",
            f"адрес этого компьютера в сети магазина {a.broker_host!r}: IP-адрес или имя, "
            f"доступное панелям, например 192.168.1.10")
    if a.board not in boards.BOARDS:
        bad("board", f"board {a.board!r}: one of {', '.join(sorted(boards.BOARDS))}",
            f"плата {a.board!r}: одна из {', '.join(sorted(boards.BOARDS))}")
    if a.lang not in ("ru", "en"):
        bad("lang", f"language {a.lang!r}: ru or en", f"язык {a.lang!r}: ru или en")
    for name, port in a.ports.items():
        if name not in PORTS or not isinstance(port, int) or not 1 <= port <= 65535:
            bad("ports", f"port {name}={port!r}: one of {', '.join(PORTS)}, 1..65535",
                f"порт {name}={port!r}: один из {', '.join(PORTS)}, 1..65535")
    return out


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return bool(HOST_NAME.match(text)) and not text.endswith(".")


def configured(etc: Path = layout.ETC) -> bool:
    return (Path(etc) / layout.CONFIG.name).exists()


def configure(a: Answers, etc: Path = layout.ETC, var: Path = layout.VAR,
              mosquitto: dict | None = None) -> dict:
    """Write the store's settings; returns what is shown once (POS key and
    token, the dashboard's address). `mosquitto`: where the broker's files
    go (password_file, acl_file, tls_dir, config, snippet), by default the
    appliance's. Nothing is left half-written: concentrator.yaml, the mark
    of a configured store, is written last."""
    etc, var = Path(etc), Path(var)
    problems = check(a)
    if configured(etc):
        problems.insert(0, f"this store is set up already ({etc / layout.CONFIG.name}); "
                           f"change that file, or move it away to set up again")
    if problems:
        raise FirstRunError(problems)
    ports = {**PORTS, **a.ports}
    broker_files = {"password_file": str(layout.MOSQUITTO_PASSWD),
                    "acl_file": str(layout.MOSQUITTO_ACL),
                    "tls_dir": str(layout.MOSQUITTO_TLS),
                    "ca_dir": str(var / layout.STORE_CA.name), **(mosquitto or {})}
    shown = {"pos_key": secrets.token_hex(32), "pos_token": secrets.token_urlsafe(24),
             "dashboard": f"http://{a.broker_host}:{ports['dashboard']}/"}
    etc.mkdir(parents=True, exist_ok=True)
    var.mkdir(parents=True, exist_ok=True)
    # Everything is made beside where it goes (draft_beside: under names
    # nobody could have planted), checked, and only then put in place,
    # concentrator.yaml last: a set-up refused on the way leaves nothing
    # behind, not a manager's login in particular.
    drafts: list[Path] = []

    def draft(path: Path, data: bytes | str, mode: int = 0o600) -> Path:
        drafts.append(draft_beside(path, data, mode))
        return drafts[-1]
    ca_draft = None
    try:
        catalogue = draft(etc / "catalogue.yaml", catalogue_text(a.tills, a.lang), 0o640)
        try:
            catalogue_mod.load(catalogue)
        except catalogue_mod.CatalogueError as e:  # a bug of ours, not the retailer's
            raise FirstRunError([f"the catalogue made for these tills: {p}"
                                 for p in e.problems])
        users = etc / "dashboard-users"
        users_draft = draft(users, users.read_bytes() if users.exists() else b"")
        dashboard.add_user(users_draft, a.admin, a.admin_password)
        final = etc / layout.CONFIG.name
        config = draft(final, config_text(a, var, ports, shown, broker_files))
        cfg = host_config.load(config)
        registry_path = Path(cfg.panels_registry)
        # A set-up started again keeps the panels' logins.
        registry_draft = draft(registry_path, registry_path.read_bytes()
                               if registry_path.exists() else b'{"panels": {}}')
        cfg.panels_registry = registry_draft
        registry = Registry(cfg)
        have = registry.load()
        for till in a.tills:
            if f"till-{till}" not in have:
                registry.add(till, a.board, broker=False)
        # The store's CA, among its data (a store backup carries it); the
        # broker's certificate is signed with it by `broker apply`.
        ca_dir = Path(cfg.mosquitto_ca_dir)
        if not (ca_dir / "ca.key").exists():
            ca_dir.parent.mkdir(parents=True, exist_ok=True)
            ca_draft = Path(tempfile.mkdtemp(dir=ca_dir.parent, prefix=f".{ca_dir.name}."))
            drafts.append(ca_draft)
            broker_conf.make_ca(ca_draft, a.store)
    except (host_config.HostConfigError, RegistryError, broker_conf.BrokerConfError,
            OSError, ValueError) as e:
        for path in drafts:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        if isinstance(e, FirstRunError):
            raise
        raise FirstRunError(getattr(e, "problems", None) or [str(e)]) from None
    # In place: the catalogue, the users, the panels, the CA, then the mark.
    replace_owned(catalogue, etc / "catalogue.yaml")
    replace_owned(users_draft, users)
    replace_owned(registry_draft, registry_path)
    if ca_draft is not None:
        os.chmod(ca_draft, 0o750)
        for path in (ca_draft, *ca_draft.iterdir()):  # root's `setup`: the service's
            own_like(path, ca_draft.parent)
        ca_draft.rename(ca_dir)
    replace_owned(config, final)
    return shown


def catalogue_text(tills: list[str], lang: str) -> str:
    """The example catalogue (docs/catalogue.md) with the store's tills, in
    the language chosen at set-up: the catalogue's default language is what
    the host tells the panels to speak and what the records carry
    (panel.json's `lang`, from `panels.lang`, is only the panel's first
    words before the host's)."""
    text = (EXAMPLES / "catalogue.yaml").read_text(encoding="utf-8")
    block = "tills:\n" + "".join(f'  "{t}": {{panel: till-{t}}}\n' for t in tills)
    text = re.sub(r"^tills:\n(?:  .*\n)+", block, text, count=1, flags=re.M)
    text, n = re.subn(r"^default_lang: .*$", f"default_lang: {lang}", text, count=1, flags=re.M)
    if n != 1:  # the example lost its line: the language would silently be another
        raise RuntimeError("examples/catalogue.yaml has no 'default_lang:' line")
    return text


def config_text(a: Answers, var: Path, ports: dict, shown: dict, mosq: dict) -> str:
    host_password = secrets.token_urlsafe(18)
    mosq_lines = "".join(f"  {k}: {v}\n" for k, v in mosq.items()
                         if k not in ("password_file", "acl_file"))
    return f"""# Written by the first-run set-up on {time.strftime('%Y-%m-%d %H:%M %Z')}.
# docs/concentrator.md explains every key; restart the service after a change
# (systemctl restart loyalty-button), and run `loyalty-button broker apply
# --config` after changing the broker or panels sections.
store: {a.store}
timezone: {a.timezone}
catalogue: catalogue.yaml
database: {var}/records.db
log_level: INFO
broker:
  host: 127.0.0.1
  port: {ports['broker']}
  user: host
  password: {host_password}
pos:
  bind: 0.0.0.0
  udp_port: {ports['pos_udp']}
  http_port: {ports['pos_http']}
  # The POS signs UDP receipts with this key and sends HTTP receipts with
  # this token (docs/concentrator.md).
  key: {shown['pos_key']}
  token: {shown['pos_token']}
dashboard:
  port: {ports['dashboard']}
  users_file: dashboard-users
panels:
  wifi_ssid: {_quoted(a.wifi_ssid)}
  wifi_password: {_quoted(a.wifi_password)}
  broker_host: {a.broker_host}
  lang: {a.lang}
  password_file: {mosq['password_file']}
  acl_file: {mosq['acl_file']}
  # The panels' app bundles this package carries: what `loyalty-button
  # panels update --bundle VERSION` rolls out (docs/ota.md).
  bundles: {layout.OPT}/bundles
mosquitto:
  port: {ports['broker']}
  tls_port: {ports['tls']}
{mosq_lines}backup:
  dir: {var}/backups
  keep: 14
"""


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # JSON strings are YAML strings


# --- `loyalty-button setup` ----------------------------------------------------

def add_arguments(p) -> None:
    p.add_argument("--store", required=True, help="the store's id, e.g. msk-12")
    p.add_argument("--timezone", required=True, help="e.g. Europe/Moscow")
    p.add_argument("--tills", required=True, help="the tills, as the POS numbers them: 1,2,3")
    p.add_argument("--board", default="cyd", help="the panels' board (default cyd)")
    p.add_argument("--admin", required=True, help="the manager's dashboard user name")
    p.add_argument("--wifi-ssid", required=True, help="the Wi-Fi the panels join")
    p.add_argument("--address", required=True,
                   help="this host's address on the store LAN (what the panels dial)")
    p.add_argument("--lang", default="ru", help="the panels' language: ru or en (default ru)")
    p.add_argument("--port", action="append", default=[], metavar="NAME=PORT",
                   help=f"a port other than the default ({', '.join(f'{k}={v}' for k, v in PORTS.items())})")
    p.add_argument("--etc", type=Path, default=layout.ETC, help=f"default {layout.ETC}")
    p.add_argument("--var", type=Path, default=layout.VAR, help=f"default {layout.VAR}")
    p.add_argument("--no-broker", action="store_true",
                   help="leave the broker alone (run `loyalty-button broker apply` later)")


def cli(args) -> int:
    """Reads the manager's password, then the Wi-Fi password, one line each
    from stdin (a terminal asks for them)."""
    import getpass
    import sys
    ask = sys.stdin.readline if not sys.stdin.isatty() else None
    try:
        password = ask().rstrip("\n") if ask else getpass.getpass("manager's password: ")
        wifi = ask().rstrip("\n") if ask else getpass.getpass("panels' Wi-Fi password: ")
        ports = {}
        for item in args.port:
            name, _, value = item.partition("=")
            ports[name] = int(value) if value.isdigit() else value
        answers = Answers(args.store, args.timezone, [t.strip() for t in args.tills.split(",")
                                                      if t.strip()],
                          args.admin, password, args.wifi_ssid, wifi, args.address,
                          board=args.board, lang=args.lang, ports=ports)
        shown = configure(answers, args.etc, args.var)
    except FirstRunError as e:
        print(f"cannot set up the store: {len(e.problems)} problem(s):", file=sys.stderr)
        for problem in e.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    config = args.etc / layout.CONFIG.name
    print(f"store {args.store} set up in {config}")
    if not args.no_broker:
        from ..service import broker_access, broker_conf
        try:
            broker_conf.apply(host_config.load(config), out=print)
        except (broker_conf.BrokerConfError, broker_access.AccessError) as e:
            print(f"the broker is not set up yet: {e}; run 'loyalty-button broker apply "
                  f"--config {config}'", file=sys.stderr)
    print(f"dashboard: {shown['dashboard']}")
    print("Give these to the POS integrator now; they are not shown again:")
    print(f"  POS key (UDP receipts):    {shown['pos_key']}")
    print(f"  POS token (HTTP receipts): {shown['pos_token']}")
    return 0
