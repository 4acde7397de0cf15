"""`loyalty-button panels ...`: the installer's commands (docs/installer.md).

    panels bundle --board cyd [--out DIR]
    panels add TILL --board cyd --config concentrator.yaml
    panels list --config concentrator.yaml
    panels remove PANEL --config concentrator.yaml
    panels flash --config concentrator.yaml (--port TILL=PORT ... | --all)
                 [--image FILE] [--bundle DIR ...] [--baud N] [--timeout S]
    panels update --config concentrator.yaml --bundle VERSION [--canary N]
                  [--tills 1,2] [--timeout S]          (docs/ota.md)
"""

from __future__ import annotations

import glob
import re
import sys
import tempfile
import time
from pathlib import Path

from ..appliance import layout
from ..service import config as host_config
from ..settings import SettingsError
from . import bundle as bundles
from .registry import Registry, RegistryError
from .station import Job, Station, StatusWatch, StepFailed


def _registry(args) -> Registry:
    return Registry(host_config.load(Path(args.config)))


def _add(args) -> int:
    reg = _registry(args)
    panel_id = reg.add(args.till, args.board)
    print(f"{panel_id}: registered for till {args.till} ({args.board}); its broker login "
          f"is in {reg.cfg.panels_password_file}")
    print(reg.reload_broker())
    print(f"next: loyalty-button panels flash --config {args.config} "
          f"--port {args.till}=/dev/ttyUSB0")
    return 0


def _remove(args) -> int:
    reg = _registry(args)
    gone = reg.remove(args.panel)
    print(f"{args.panel} (till {gone['till']}) removed; its login is revoked "
          f"(a panel still connected is cut off at once: Mosquitto checks every "
          f"connection again when it reloads)")
    return 0


def _ago(ts) -> str:
    if not isinstance(ts, (int, float)) or ts <= 0:
        return "-"
    s = max(0, int(time.time() - ts))
    return f"{s} s ago" if s < 120 else f"{s // 60} min ago" if s < 7200 else \
        f"{s // 3600} h ago"


def _list(args) -> int:
    reg = _registry(args)
    panels = reg.load()
    seen = {}
    note = ""
    if panels:
        try:
            watch = StatusWatch(reg.cfg, *reg.installer_login()).start()
            seen = watch.snapshot(args.wait)
            watch.stop()
        except StepFailed as e:
            note = f"(online state unknown: {e.what})"
    rows = [("till", "panel", "board", "state", "firmware", "signal", "last seen")]
    for panel_id, entry in sorted(panels.items(), key=lambda kv: natural(kv[1]["till"])):
        st = seen.get(panel_id, {})
        rows.append((entry["till"], panel_id, entry["board"], st.get("state", "never seen"),
                     st.get("fw", "-"), f"{st['rssi']} dBm" if st.get("rssi") else "-",
                     _ago(st.get("ts"))))
    _table(rows)
    if note:
        print(note)
    return 0


def _table(rows: list[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def natural(text: str) -> tuple:
    """A sort key with numbers in number order: "2" < "10", ttyUSB2 < ttyUSB10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", text) if part)


def _jobs(args, reg: Registry) -> list[Job]:
    panels = reg.load()
    by_till = {e["till"]: (pid, e) for pid, e in panels.items()}
    pairs: list[tuple[str, str]] = []
    if args.all:
        # In natural order, as people number tills and the kernel ports:
        # till 2 before 10, ttyUSB2 before ttyUSB10.
        ports = sorted(glob.glob("/dev/ttyUSB*") + glob.glob("/dev/ttyACM*"), key=natural)
        tills = sorted(by_till, key=natural)
        if not ports:
            raise StepFailed("port", "no USB serial ports found (/dev/ttyUSB*, /dev/ttyACM*)",
                             "plug the panels in with data cables")
        pairs = list(zip(tills, ports))
        for till, port in pairs:
            print(f"--all: till {till} <- {port}")
        for till in tills[len(ports):]:
            print(f"--all: till {till} has no port (not plugged in?)")
    for spec in args.port or []:
        till, sep, port = spec.partition("=")
        if not sep or not port:
            raise StepFailed("port", f"--port {spec!r}: give TILL=PORT, e.g. 3=/dev/ttyUSB0",
                             "")
        pairs.append((till, port))
    jobs = []
    seen: dict[str, str] = {}
    for till, port in pairs:
        for one in filter(None, port.split(",")):
            if one in seen and seen[one] != till:
                # Two stations writing one chip at once would race.
                raise StepFailed("port", f"{one} is given for till {seen[one]} and till {till}",
                                 "one panel per port: check which panel is plugged where")
            seen[one] = till
        if till in {j.till for j in jobs}:
            raise StepFailed("port", f"till {till} is given twice", "one port per till")
        if till not in by_till:
            raise StepFailed("port", f"till {till} has no registered panel",
                             f"'loyalty-button panels add {till} --board BOARD' first")
        panel_id, entry = by_till[till]
        port, _, boot = port.partition(",")
        jobs.append(Job(panel_id, till, entry["board"], port, boot or None))
    if not jobs:
        raise StepFailed("port", "no panel to flash", "give --port TILL=PORT or --all")
    return jobs


def _bundles(args, boards_needed: set[str], out: Path) -> dict[str, Path]:
    given = {}
    for folder in args.bundle or []:
        given[bundles.load(Path(folder))["board"]] = Path(folder)
    for board in sorted(boards_needed - set(given)):
        # On the appliance the package carries them (mpy-cross is a
        # developer's tool); elsewhere they are built now.
        shipped = sorted((layout.OPT / "bundles").glob(f"{board}-*/{bundles.MANIFEST}"))
        given[board] = shipped[-1].parent if shipped else bundles.build(board, out)
    return given


class _Bars:
    """A progress bar per panel (tqdm), and plain lines when the output is
    not a terminal (a log, CI)."""

    def __init__(self, jobs: list[Job]):
        from tqdm import tqdm
        self.tty = sys.stdout.isatty()
        self.bars = {}
        self.last = {}
        if self.tty:
            for i, job in enumerate(jobs):
                self.bars[job.panel_id] = tqdm(total=100, position=i, leave=True,
                                               desc=f"till {job.till:<6} {job.port}",
                                               bar_format="{desc} {bar:30} {n:3.0f}% {postfix}")

    def __call__(self, job: Job, pct: float, text: str) -> None:
        if self.tty:
            bar = self.bars[job.panel_id]
            bar.n = pct
            bar.set_postfix_str(text, refresh=True)
        elif self.last.get(job.panel_id) != text:
            self.last[job.panel_id] = text
            print(f"till {job.till} {job.port}: {text} ({pct:.0f}%)", flush=True)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _flash(args) -> int:
    reg = _registry(args)
    jobs = _jobs(args, reg)
    with tempfile.TemporaryDirectory() as tmp:
        folders = _bundles(args, {j.board for j in jobs}, Path(tmp))
        station = Station(reg.cfg, reg, folders, image=args.image, baud=args.baud,
                          online_timeout=args.timeout)
        watch = StatusWatch(reg.cfg, *reg.installer_login()).start()
        bars = _Bars(jobs)
        start = time.monotonic()
        try:
            station.flash_all(jobs, bars, watch)
        finally:
            bars.close()
            watch.stop()
    total = time.monotonic() - start
    print()
    rows = [("till", "panel", "port", "result", "seconds", "firmware", "signal", "what failed",
             "what to do")]
    for j in jobs:
        rows.append((j.till, j.panel_id, j.port, j.result, f"{j.seconds:.1f}", j.fw or "-",
                     f"{j.rssi} dBm" if j.rssi else "-",
                     (j.step + ": " + j.what) if j.what else
                     "; ".join(([f"recopied {', '.join(j.recopied)}"] if j.recopied else [])
                               + j.notes), j.hint))
    _table(rows)
    ok = sum(j.result == "ok" for j in jobs)
    print(f"\n{ok} of {len(jobs)} panels online in {total:.1f} s")
    return 0 if ok == len(jobs) else 1


def _update(args) -> int:
    from .rollout import Rollout
    reg = _registry(args)
    tills = [t.strip() for t in args.tills.split(",") if t.strip()] if args.tills else None
    rollout = Rollout(reg, args.bundle, canary=args.canary, timeout_s=args.timeout,
                      out=lambda line: print(line, flush=True), downgrade=args.downgrade)
    targets = rollout.plan(tills)
    rollout.url_base()  # refused now, not after the first panel
    rollout.connect()
    start = time.monotonic()
    try:
        done = rollout.run(targets)
    finally:
        rollout.close()
    print()
    rows = [("till", "panel", "result", "seconds", "firmware", "what failed")]
    for t in targets:
        rows.append((t.till, t.panel_id, t.result, f"{t.seconds:.1f}", t.fw or "-", t.what))
    _table(rows)
    ok = sum(t.result == "ok" for t in targets)
    print(f"\n{ok} of {len(targets)} panels on {args.bundle} in {time.monotonic() - start:.1f} s")
    return 0 if done else 1


def cli(args) -> int:
    try:
        if args.action == "bundle":
            return bundles.cli(args)
        return {"add": _add, "remove": _remove, "list": _list, "flash": _flash,
                "update": _update}[args.action](args)
    except (RegistryError, bundles.BundleError, SettingsError) as e:
        print(f"panels {args.action}: {e}", file=sys.stderr)
        return 2
    except StepFailed as e:
        print(f"panels {args.action}: {e.what}" + (f"; {e.hint}" if e.hint else ""),
              file=sys.stderr)
        return 2


def add_parser(sub) -> None:
    p = sub.add_parser("panels", help="the installer's commands: register, flash and "
                                      "list the store's panels (docs/installer.md)")
    psub = p.add_subparsers(dest="action", required=True)
    b = psub.add_parser("bundle", help="build a board's app bundle (files + sha256 manifest)")
    b.add_argument("--board", required=True)
    b.add_argument("--out", default="build/bundles")

    def with_config(q):
        q.add_argument("--config", required=True, help="the store's concentrator.yaml")
        return q
    a = with_config(psub.add_parser("add", help="register a till's panel: id, broker login, "
                                                "panel.json"))
    a.add_argument("till")
    a.add_argument("--board", required=True)
    r = with_config(psub.add_parser("remove", help="unregister a panel; revoke its login"))
    r.add_argument("panel")
    ls = with_config(psub.add_parser("list", help="registered panels, online state, firmware"))
    ls.add_argument("--wait", type=float, default=1.0,
                    help="seconds to collect the panels' status (default 1)")
    f = with_config(psub.add_parser("flash", help="flash, provision and verify panels on "
                                                  "serial ports, in parallel"))
    f.add_argument("--port", action="append", metavar="TILL=PORT[,BOOT_PORT]",
                   help="a panel's port (repeat for several); BOOT_PORT: where its ROM "
                        "bootloader answers when not on PORT (simulators)")
    f.add_argument("--all", action="store_true",
                   help="every USB serial port, paired with the registered tills in order")
    f.add_argument("--image", type=Path, help="a firmware image to write first (esptool)")
    f.add_argument("--bundle", action="append", type=Path,
                   help="an app bundle folder (default: built now for each board)")
    f.add_argument("--baud", type=int, default=460800)
    f.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for each panel to come online (default 60)")
    u = with_config(psub.add_parser("update", help="update the panels over the air, a canary "
                                                   "first (docs/ota.md)"))
    u.add_argument("--bundle", required=True, metavar="VERSION",
                   help="the version; its bundles are in panels.bundles/<board>-VERSION/")
    u.add_argument("--canary", type=int, default=1,
                   help="panels updated and confirmed before the rest (default 1; 0: all "
                        "at once)")
    u.add_argument("--tills", help="only these tills, comma-separated")
    u.add_argument("--downgrade", action="store_true",
                   help="the version may be older than the panels' (they refuse an older "
                        "one otherwise)")
    u.add_argument("--timeout", type=float, default=600.0,
                   help="seconds each group may take to be confirmed (default 600)")
    p.set_defaults(func=cli)
