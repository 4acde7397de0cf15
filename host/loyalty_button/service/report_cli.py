"""`loyalty-button report ...` and `export`: the reports of reports.py from
a CSV of scores or from a store database, as text, JSON or CSV."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import zoneinfo
from pathlib import Path

from . import reports
from .records import connect


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="report", required=True)
    r = sub.add_parser("nps", help="NPS with its 95%% interval, from a CSV or a store database")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", type=Path, metavar="FILE",
                     help="a CSV with a 'score' column (0-10; empty = declined or timed out)")
    src.add_argument("--db", type=Path, metavar="DB", help="the store's records.db")
    r.add_argument("--json", action="store_true", help="one JSON object")
    r = sub.add_parser("summary", help="NPS, CSAT, response rate and reasons from a database")
    r.add_argument("--db", type=Path, required=True)
    r.add_argument("--json", action="store_true")
    r = sub.add_parser("breakdown", help="one row per store/till/cashier/... (or day, week)")
    r.add_argument("by", choices=reports.BREAKDOWNS)
    r.add_argument("--db", type=Path, required=True)
    r.add_argument("--tz", default="UTC", help="time zone for hour/day/week (default UTC)")
    r.add_argument("--csv", action="store_true", help="CSV instead of JSON")


def add_export_arguments(p) -> None:
    p.add_argument("--db", type=Path, required=True, help="the store's records.db")
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")


def _open(db: Path):
    """A read-only connection: a report never takes the writer's lock."""
    if not db.is_file():
        raise FileNotFoundError(f"{db}: no such database")
    return connect(db, readonly=True)


def run(args) -> int:
    try:
        if args.report == "nps":
            if args.csv is not None:
                scores, declined = reports.read_scores(args.csv.read_text(encoding="utf-8-sig"))
                result = reports.nps(scores, declined)
            else:
                result = reports.summary(_open(args.db))["nps"]
            if args.json:
                print(json.dumps(result))
            elif result["n"]:
                print(f"NPS {result['nps']:+.1f} (95% CI {result['ci95_low']:+.1f} to "
                      f"{result['ci95_high']:+.1f}); n {result['n']}: {result['promoters']} "
                      f"promoters, {result['passives']} passives, {result['detractors']} "
                      f"detractors; {result['declined']} declined or timed out"
                      + (f"; {result['burst_excluded']} button-mashing answers left out"
                         if result.get("burst_excluded") else ""))
            else:
                print(f"no scores (declined or timed out: {result['declined']})")
        elif args.report == "summary":
            result = reports.summary(_open(args.db))
            print(json.dumps(result, indent=None if args.json else 2, ensure_ascii=False))
        else:
            tz = zoneinfo.ZoneInfo(args.tz)
            rows = reports.breakdown(_open(args.db), args.by, tz)
            print(reports.to_csv(rows) if args.csv else json.dumps(rows, ensure_ascii=False),
                  end="" if args.csv else "\n")
    except reports.CsvError as e:
        print(f"{args.csv}: {len(e.problems)} bad row(s):", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError, zoneinfo.ZoneInfoNotFoundError, sqlite3.Error) as e:
        print(f"cannot report: {e}", file=sys.stderr)
        return 2
    return 0


def export(args) -> int:
    """Streams (reports.export_command): to a file through a temporary
    name, so that a failed export leaves no half file behind."""
    try:
        _open(args.db).close()
        cmd = reports.export_command(args.db)
        if args.out:
            tmp = args.out.with_name(args.out.name + ".part")
            with open(tmp, "wb") as f:
                done = subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE)
            if done.returncode == 0:
                tmp.replace(args.out)
            else:
                tmp.unlink()
        else:
            sys.stdout.flush()
            done = subprocess.run(cmd, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise reports.ExportError(done.stderr.decode(errors="replace").strip())
    except (OSError, sqlite3.Error, reports.ExportError) as e:
        print(f"cannot export: {e}", file=sys.stderr)
        return 2
    return 0
