"""`loyalty-button`: the store host's command line. A thin layer over the
package's modules."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import logsetup


def _demo(args) -> int:
    from .sim import demo
    from lbpanel import boards
    if not 0 <= args.answer_rate <= 1 or args.panels < 1 or args.rate <= 0:
        print("--answer-rate must be 0..1, --panels at least 1, --rate above 0", file=sys.stderr)
        return 2
    # Checked here, not seconds later inside a panel's process.
    if args.board is not None and args.board not in boards.BOARDS:
        print(f"--board {args.board}: one of {', '.join(sorted(boards.BOARDS))}", file=sys.stderr)
        return 2
    if not 3 <= args.timeout <= 300:
        print(f"--timeout {args.timeout}: the panels take 3 to 300 seconds", file=sys.stderr)
        return 2
    demo.run(panels=args.panels, rate=args.rate, duration=args.duration,
             answer_rate=args.answer_rate, timeout_s=args.timeout, pos=args.pos,
             seed=args.seed, probe=args.probe, board=args.board,
             shots=Path(args.shots) if args.shots else None)
    return 0


def _concentrator(args) -> int:
    import asyncio
    from .service import catalogue, config as host_config, host
    if args.setup_port and not Path(args.config).exists():
        # A fresh appliance: the set-up page until the store is configured.
        from .appliance import setup_page
        asyncio.run(setup_page.serve_until_set_up(args.setup_port, etc=Path(args.config).parent,
                                                  var=args.setup_var))
    try:
        cfg = host_config.load(args.config)
        catalogue.load(cfg.catalogue)  # refuse to start on a bad catalogue
    except (host_config.HostConfigError, catalogue.CatalogueError) as e:
        print(f"cannot start: {len(e.problems)} problem(s):", file=sys.stderr)
        for problem in e.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    if args.log_level is None:
        logging.getLogger().setLevel(cfg.log_level)
    asyncio.run(host.serve(cfg, ready_file=args.ready_file))
    return 0


def _bench(args) -> int:
    import json
    from .bench import heap as bench_heap, reports as bench_reports, store as bench_store
    def bench_probe(out):
        from .bench import probe as bench
        return bench.run(out=out)
    def bench_installer(out):
        from .bench import installer as bench
        return bench.run(out)
    def bench_ota(out):
        from .bench import ota as bench
        return bench.run(out)
    def bench_central(out):
        from .bench import central as bench
        return bench.run(out)
    def bench_phone(out):
        from .bench import phone as bench
        return bench.run(out)
    benches = {"store": bench_store.run, "heap": bench_heap.run, "probe": bench_probe,
               "reports": bench_reports.run, "installer": bench_installer, "ota": bench_ota,
               "central": bench_central, "phone": bench_phone}
    for name in args.names:
        if name not in benches:
            print(f"unknown benchmark {name!r}; known: {', '.join(benches)}", file=sys.stderr)
            return 2
    results = {}
    for name in args.names:
        results.update(benches[name](out=print))
    print(json.dumps(results))  # the last line of stdout: one JSON object
    return 0


def _probe(args) -> int:
    from .probe import cli as probe_cli
    return probe_cli.run(args)


def _report(args) -> int:
    from .service import report_cli
    return report_cli.run(args)


def _export(args) -> int:
    from .service import report_cli
    return report_cli.export(args)


def _dashboard(args) -> int:
    from .service import dashboard
    return dashboard.cli(args)


def _aggregator(args) -> int:
    import psycopg
    from .forward import postgres
    if args.action == "report":
        from .service import reports
        try:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                rows = postgres.breakdown(conn, args.by, args.store)
        except psycopg.Error as e:
            print(f"cannot report: {str(e).strip().splitlines()[0]}", file=sys.stderr)
            return 2
        print(reports.to_csv(rows) if args.csv else json.dumps(rows, indent=1), end=""
              if args.csv else "\n")
        return 0
    try:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            before = postgres.migrate(conn)
    except (psycopg.Error, RuntimeError) as e:
        print(f"cannot migrate: {e}", file=sys.stderr)
        return 2
    print(f"central database schema: {before} -> {postgres.SCHEMA_VERSION}")
    return 0


def _records(args) -> int:
    import sqlite3
    from .service.records import rebuild_totals
    if not args.db.is_file():
        print(f"cannot recount: {args.db}: no such database", file=sys.stderr)
        return 2
    try:
        n = rebuild_totals(args.db)
    except (sqlite3.Error, OSError, RuntimeError) as e:
        print(f"cannot recount: {e}", file=sys.stderr)
        return 2
    print(f"totals for reports recounted from {n} closed records")
    return 0


def _fuzz(args) -> int:
    from .fuzz import run
    return run.cli(args)


def _lazy(module: str, args, name: str = "main") -> int:
    import importlib
    return getattr(importlib.import_module(f"loyalty_button.{module}"), name)(args)


def _lazy_cli(module: str, args) -> int:
    import importlib
    return importlib.import_module(f"loyalty_button.{module}").cli(args)


def _restore(args) -> int:
    """What the file is decides: a store backup is sealed (sealed.MAGIC)."""
    from . import sealed
    try:
        with open(args.file, "rb") as f:
            store = f.read(len(sealed.MAGIC)) == sealed.MAGIC
    except OSError:
        store = False  # the records restore says what is wrong with the file
    if store:
        return _lazy("appliance.store_backup", args, "restore_cli")
    return _lazy("appliance.backup", args, "restore_cli")


def _build_fonts(args) -> int:
    from .panels import fonts
    out = Path(args.out_dir) if args.out_dir else None
    made = fonts.build_c(fonts.needed(), out) if args.c else fonts.build(out)
    for path in made:
        print(f"{path}  {path.stat().st_size} bytes")
    return 0


def _build_firmware(args) -> int:
    from .panels import firmware_build
    out = firmware_build.build(args.out_dir)
    print(f"firmware built in {out}/ (lbpanel/, boards/, fonts/, main.py); to put it on a "
          f"panel with its panel.json, use 'loyalty-button panels flash' (docs/installer.md)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loyalty-button",
                                     description="Loyalty Button store host")
    parser.add_argument("--log-level", default=None,
                        help="DEBUG, INFO, WARNING or ERROR (default: WARNING; for the "
                             "concentrator, its config's log_level)")
    from . import __version__
    from lbpanel import VERSION as panel_version
    parser.add_argument("--version", action="version",
                        version=f"loyalty-button {__version__} (panel firmware {panel_version})")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="a simulated store: broker, concentrator, panels, POS, shoppers")
    p.add_argument("--panels", type=int, default=4, help="panels (one per till), default 4")
    p.add_argument("--board", default=None,
                   help="run the panels as LVGL simulators of this board (cyd, s3_8048)")
    p.add_argument("--shots", default=None,
                   help="save each panel's current screen to SHOTS/<panel>.png (LVGL; "
                        "the board defaults to cyd)")
    p.add_argument("--rate", type=float, default=1.0, help="sales per second, store-wide (default 1)")
    p.add_argument("--duration", type=float, default=20, help="seconds of trading (default 20)")
    p.add_argument("--answer-rate", type=float, default=0.8,
                   help="share of shoppers who answer (default 0.8)")
    p.add_argument("--timeout", type=int, default=6,
                   help="question timeout on the panels, seconds (3-300, default 6)")
    p.add_argument("--pos", choices=("udp", "http", "both"), default="both",
                   help="how the POS sends receipts (default: both, alternating)")
    p.add_argument("--seed", type=int, help="random seed, for a repeatable run")
    p.add_argument("--probe", nargs="?", const=True, default=False, type=Path, metavar="FOLDER",
                   help="run the emotion probe too; its cameras play FOLDER's images "
                        "(default: sample frames made from scikit-image's photos)")
    p.set_defaults(func=_demo)
    p = sub.add_parser("concentrator", help="run the store's concentrator (POS intake, "
                                            "questions, feedback records)")
    p.add_argument("--config", required=True, type=Path, help="concentrator.yaml")
    p.add_argument("--ready-file", help="write the PID here once ready (for supervisors)")
    p.add_argument("--setup-port", type=int, default=0,
                   help="when --config does not exist yet, serve the set-up page on this "
                        "port until the store is configured (the appliance's first run)")
    p.add_argument("--setup-var", type=Path, default=Path("/var/lib/loyalty-button"),
                   help="where the set-up puts the database and panels (default "
                        "/var/lib/loyalty-button)")
    p.set_defaults(func=_concentrator)
    p = sub.add_parser("setup", help="set up a fresh store (what the set-up page does): "
                                     "settings, catalogue, manager's login, panels, broker")
    from .appliance import firstrun
    firstrun.add_arguments(p)
    p.set_defaults(func=lambda a: _lazy_cli("appliance.firstrun", a))
    p = sub.add_parser("backup", help="an online backup of the store database, keeping "
                                      "the newest backup.keep; with --store, the whole "
                                      "store, sealed with a passphrase, to move it")
    p.add_argument("--config", required=True, type=Path, help="concentrator.yaml")
    p.add_argument("--to", help="the folder (default: the settings' backup.dir)")
    p.add_argument("--keep", type=int, help="how many to keep (default: backup.keep)")
    p.add_argument("--store", action="store_true",
                   help="a store backup: records, settings, catalogue, users, POS key and "
                        "token, panel logins, the CA; asks for a passphrase (from stdin when "
                        "it is not a terminal)")
    p.set_defaults(func=lambda a: _lazy("appliance.store_backup", a, "backup_cli") if a.store
                   else _lazy("appliance.backup", a, "backup_cli"))
    p = sub.add_parser("restore", help="put a records backup in place of the store database "
                                       "(the service stopped), or make a fresh host the "
                                       "store in a store backup")
    p.add_argument("file", help="a records-*.db backup or a *.lbstore store backup")
    p.add_argument("--config", required=True, type=Path, help="concentrator.yaml")
    p.add_argument("--var", type=Path, default=Path("/var/lib/loyalty-button"),
                   help="a store backup: where the store's data goes (default "
                        "/var/lib/loyalty-button)")
    p.set_defaults(func=_restore)
    p = sub.add_parser("bench", help="benchmarks: store (end to end, the default), heap, probe, "
                                       "reports, installer, ota")
    p.add_argument("names", nargs="*", default=["store"])
    p.set_defaults(func=_bench)
    p = sub.add_parser("fuzz", help="fuzz every parser (POS, panel messages on both "
                                    "interpreters, the panel's MQTT reader, catalogue, "
                                    "playlist, settings); JSON report")
    p.add_argument("--cases", type=int, default=100_000, help="cases per parser")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", nargs="*", help="parser names (default: all)")
    p.set_defaults(func=_fuzz)
    p = sub.add_parser("probe", help="the emotion probe: analyze an image, run the service, "
                                     "fetch its models")
    from .probe.cli import add_arguments
    add_arguments(p)
    p.set_defaults(func=_probe)
    from .forward import postgres
    from .service import report_cli
    p = sub.add_parser("report", help="NPS (with its 95%% interval), CSAT, response rate, "
                                      "breakdowns and trends")
    report_cli.add_arguments(p)
    p.set_defaults(func=_report)
    p = sub.add_parser("export", help="all records of a store database as CSV")
    report_cli.add_export_arguments(p)
    p.set_defaults(func=_export)
    p = sub.add_parser("dashboard", help="dashboard users")
    dsub = p.add_subparsers(dest="action", required=True)
    d = dsub.add_parser("add-user", help="add a user (or set a new password)")
    d.add_argument("name")
    d.add_argument("--users", type=Path, required=True, help="the users file (dashboard.users_file)")
    d.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    d = dsub.add_parser("list-users", help="the users who can log in")
    d.add_argument("--users", type=Path, required=True, help="the users file (dashboard.users_file)")
    d = dsub.add_parser("remove-user", help="take a user's access away")
    d.add_argument("name")
    d.add_argument("--users", type=Path, required=True, help="the users file (dashboard.users_file)")
    p.set_defaults(func=_dashboard)
    p = sub.add_parser("aggregator", help="the chain's central PostgreSQL")
    asub = p.add_subparsers(dest="action", required=True)
    a = asub.add_parser("migrate", help="create or migrate its schema (store hosts also do it)")
    a.add_argument("--dsn", required=True, help="postgresql://user:password@host:5432/db")
    a = asub.add_parser("report", help="a breakdown of the chain (or of one store) from its "
                        "running totals")
    a.add_argument("by", choices=postgres.CENTRAL_BY, help="day: UTC days")
    a.add_argument("--dsn", required=True, help="postgresql://user:password@host:5432/db")
    a.add_argument("--store", help="one store only")
    a.add_argument("--csv", action="store_true", help="CSV instead of JSON")
    p.set_defaults(func=_aggregator)
    p = sub.add_parser("records", help="the store database")
    rsub = p.add_subparsers(dest="action", required=True)
    r = rsub.add_parser("rebuild-totals", help="recount the reports' running totals from the "
                                               "records (after restoring or editing records)")
    r.add_argument("--db", type=Path, required=True, help="the store's records.db")
    p.set_defaults(func=_records)
    p = sub.add_parser("build-firmware", help="compile the panel firmware to .mpy")
    p.add_argument("out_dir", nargs="?", default="build/firmware")
    p.set_defaults(func=_build_firmware)
    p = sub.add_parser("broker", help="the store's Mosquitto: its configuration from the "
                                      "settings (docs/broker.md)")
    bsub = p.add_subparsers(dest="action", required=True)
    b = bsub.add_parser("apply", help="write the broker's config, logins, ACL and TLS files "
                                      "from concentrator.yaml, and reload it")
    b.add_argument("--config", required=True, help="the store's concentrator.yaml")
    b.add_argument("--appliance", action="store_true",
                   help="write only the appliance's own Mosquitto files, whatever the "
                        "settings name (the package's root-run broker unit)")
    b.set_defaults(func=lambda a: _lazy_cli("service.broker_conf", a))
    from .panels import commands as panel_commands
    panel_commands.add_parser(sub)
    from .central import commands as central_commands
    central_commands.add_parser(sub)
    p = sub.add_parser("screens", help="render every panel screen of every board to PNG")
    p.add_argument("out_dir")
    p.add_argument("--board", default=None)
    p.add_argument("--measure", action="store_true",
                   help="also time each screen's full redraw and its heap")
    p.set_defaults(func=lambda a: _lazy("sim.screens", a))
    p = sub.add_parser("advert-image", help="convert a PNG/JPEG to a board's advert image file")
    p.add_argument("--board", default="cyd")
    p.add_argument("source")
    p.add_argument("out")
    p.set_defaults(func=lambda a: _lazy("adverts.image", a))
    p = sub.add_parser("build-fonts", help="make the panel's Latin + Cyrillic fonts (lv_font_conv)")
    p.add_argument("out_dir", nargs="?", default=None)
    p.add_argument("--c", action="store_true",
                   help="C sources to compile into a firmware image instead of .bin files "
                        "(hardware/README.md, what an image must contain)")
    p.set_defaults(func=_build_fonts)
    args = parser.parse_args(argv)
    logsetup.configure(args.log_level or "WARNING")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
