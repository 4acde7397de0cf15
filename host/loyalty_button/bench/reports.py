"""Reports at a year of records: every `report` command, the CSV export and
every dashboard endpoint on a store database of 100k and of 1M realistic
records (bench/fake_records.py), against baselines measured in the same
run on the same database:

  - GROUP BY: one full-table `SELECT till, COUNT(*), ... GROUP BY till`,
    what any report that reads the records pays at least;
  - raw SELECT: the exported columns of every record, in the export's
    order, read through Python's sqlite3 (plain tuples) and thrown away.

Each command runs in its own process (`loyalty-button ...`, timed inside
it, after its imports; its peak RSS, and that of any program it runs, from
the kernel). The dashboard runs in its own process as on a store host; its
endpoints are timed from the client, its peak RSS read from /proc. Times
are the best of 3."""

from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..service import reports
from ..sim.broker import free_port
from . import fake_records

SIZES = (100_000, 1_000_000)
REPEAT = 3
COMMANDS = ([["report", "nps"], ["report", "summary", "--json"]]
            + [["report", "breakdown", by] for by in reports.BREAKDOWNS] + [["export"]])
ENDPOINTS = (["/api/summary", "/api/status", "/api/answers", "/api/summary?range=30d"]
             + [f"/api/breakdown?by={by}" for by in reports.BREAKDOWNS]
             + ["/export/breakdown.csv?by=till", "/export/records.csv"])
_RAW = (f"SELECT {', '.join(reports.EXPORT_FIELDS)} FROM records ORDER BY received_ms, id")
_GROUP_BY = ("SELECT till, COUNT(*), SUM(outcome = 'answered'), SUM(kind = 'nps' AND value >= 9), "
             "SUM(kind = 'nps' AND value <= 6), AVG(total) FROM records GROUP BY till")


# --- in the measured process ----------------------------------------------------------

def _worker(kind: str, db: str, args: list[str]) -> None:
    """Runs one measurement and prints {"s": seconds, "rss_mb": peak}."""
    if kind == "command":
        # The command's own code, as `loyalty-button` runs it (the CLI module
        # itself imports the benchmarks, so it is not imported from here).
        import argparse
        from ..service import report_cli
        parser = argparse.ArgumentParser()
        if args[0] == "export":
            report_cli.add_export_arguments(parser)
            parsed, command = parser.parse_args(["--db", db, "--out", db + ".csv"]), \
                report_cli.export
        else:
            report_cli.add_arguments(parser)
            parsed, command = parser.parse_args(args[1:] + ["--db", db]), report_cli.run
        devnull = open(os.devnull, "w")
        real, sys.stdout = sys.stdout, devnull
        t0 = time.perf_counter()
        rc = command(parsed)
        seconds = time.perf_counter() - t0
        sys.stdout = real
        if rc != 0:
            raise SystemExit(f"{' '.join(args)} exited {rc}")
    else:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        t0 = time.perf_counter()
        if kind == "raw":
            for _ in conn.execute(_RAW):
                pass
        else:
            conn.execute(_GROUP_BY).fetchall()
        seconds = time.perf_counter() - t0
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"s": seconds, "rss_mb": rss / 1024}))


def _serve(db: str, port: int, users: str) -> None:
    """The dashboard alone, as the concentrator serves it, with every
    report computed afresh (no reuse of a result seconds old)."""
    import asyncio
    from ..service import dashboard
    from ..service.config import parse
    from ..service.report_jobs import ReportJobs
    root = Path(db).parent
    cfg = parse({"store": "bench", "catalogue": "c.yaml", "database": db,
                 "dashboard": {"port": int(port), "bind": "127.0.0.1", "users_file": users}},
                root)

    async def main():
        await dashboard.start(cfg, lambda: {}, ReportJobs(cfg.database, fresh_s=0))
        print("ready", flush=True)
        await asyncio.Event().wait()
    asyncio.run(main())


# --- the bench --------------------------------------------------------------------------

def _measure(kind: str, db: Path, args=(), repeat: int = REPEAT) -> dict:
    best = None
    for _ in range(repeat):
        proc = subprocess.Popen([sys.executable, "-m", "loyalty_button.bench.reports", kind,
                                 str(db), *args], stdout=subprocess.PIPE, text=True)
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"{kind} {' '.join(args)} failed ({proc.returncode})")
        got = json.loads(out.strip().splitlines()[-1])
        best = got if best is None else {"s": min(best["s"], got["s"]),
                                         "rss_mb": max(best["rss_mb"], got["rss_mb"])}
    return best


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _get(port: int, path: str, cookie: str) -> tuple[int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("GET", path, headers={"Cookie": cookie})
        resp = conn.getresponse()
        size = 0
        while chunk := resp.read(1 << 16):
            size += len(chunk)
        return resp.status, size
    finally:
        conn.close()


def _dashboard(db: Path, root: Path, repeat: int = REPEAT) -> tuple[dict, float]:
    from ..service import dashboard
    users = root / "users"
    dashboard.add_user(users, "bench", "bench password")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "loyalty_button.bench.reports", "serve",
                             str(db), str(port), str(users)], stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the dashboard did not start")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/login", "user=bench&password=bench password",
                     {"Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        resp.read()
        cookie = resp.getheader("Set-Cookie").split(";")[0]
        conn.close()
        times = {}
        for path in ENDPOINTS:
            best = None
            for _ in range(repeat):
                t0 = time.perf_counter()
                status, size = _get(port, path, cookie)
                while status == 503:  # "computing": ask again, as the page does
                    time.sleep(0.5)
                    status, size = _get(port, path, cookie)
                took = time.perf_counter() - t0
                if status != 200:
                    raise RuntimeError(f"{path}: HTTP {status}")
                best = took if best is None else min(best, took)
            times[path] = best
        return times, _vm_hwm_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def run(out=print, sizes=SIZES, repeat: int = REPEAT) -> dict:
    out(__doc__.strip())
    root = Path(tempfile.mkdtemp(prefix="lb-bench-reports-"))
    results = {}
    try:
        for n in sizes:
            db = root / f"records-{n}.db"
            t0 = time.perf_counter()
            fake_records.fill(db, n)
            out(f"\n{n} records: made in {time.perf_counter() - t0:.0f} s, "
                f"{db.stat().st_size / 1e6:.0f} MB")
            r = {"group_by": _measure("groupby", db, repeat=repeat),
                 "raw_select": _measure("raw", db, repeat=repeat)}
            out(f"  baselines: GROUP BY {r['group_by']['s']:.3f} s, raw SELECT "
                f"{r['raw_select']['s']:.3f} s")
            for cmd in COMMANDS:
                name = " ".join(cmd[:3]) if cmd[1:2] != ["summary"] else "report summary"
                r[name] = _measure("command", db, cmd, repeat)
                out(f"  {name}: {r[name]['s']:.4f} s, peak {r[name]['rss_mb']:.0f} MB")
            times, hwm = _dashboard(db, root / f"dash-{n}", repeat)
            for path, s in times.items():
                r["GET " + path] = {"s": s, "rss_mb": hwm}
                out(f"  GET {path}: {s:.4f} s")
            out(f"  dashboard process peak {hwm:.0f} MB")
            results[n] = r
            db.unlink()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    small, big = results[sizes[0]], results[sizes[-1]]
    items = [k for k in big if k not in ("group_by", "raw_select")]
    # An export is every record: it grows with them by nature; its target is
    # the raw SELECT. Every other command and endpoint should stay flat.
    exports = ("export", "GET /export/records.csv")
    growth = {k: big[k]["s"] / small[k]["s"] for k in items if k not in exports}
    to_groupby = {k: big[k]["s"] / big["group_by"]["s"] for k in items}
    export_ratio = big["export"]["s"] / big["raw_select"]["s"]
    peak = max(v["rss_mb"] for res in results.values() for k, v in res.items()
               if k not in ("group_by", "raw_select"))
    worst_growth = max(growth, key=growth.get)
    # A trend's answer is one row per day or week: ten times the history,
    # ten times the rows. Everything else answers the same rows at any age.
    flat = {k: g for k, g in growth.items() if not k.endswith(("day", "week"))}
    worst_flat = max(flat, key=flat.get)
    worst_ratio = max((k for k in items if k not in exports), key=to_groupby.get)
    out(f"\nat {sizes[-1]} over {sizes[0]}: worst growth {growth[worst_growth]:.2f}x "
        f"({worst_growth}; target <= 2), without the day and week trends {flat[worst_flat]:.2f}x "
        f"({worst_flat}); worst time / GROUP BY {to_groupby[worst_ratio]:.3f} "
        f"({worst_ratio}; target <= 0.3); export / raw SELECT {export_ratio:.2f} (target <= 1.5; "
        f"dashboard download {big['GET /export/records.csv']['s'] / big['raw_select']['s']:.2f}); "
        f"peak RSS {peak:.0f} MB (target < 100)")
    return {"worst_growth": round(growth[worst_growth], 3), "worst_growth_item": worst_growth,
            "worst_growth_without_trends": round(flat[worst_flat], 3),
            "worst_growth_without_trends_item": worst_flat,
            "worst_ratio_to_groupby": round(to_groupby[worst_ratio], 4),
            "worst_ratio_item": worst_ratio,
            "export_ratio_to_select": round(export_ratio, 3),
            "dashboard_export_ratio_to_select": round(
                big["GET /export/records.csv"]["s"] / big["raw_select"]["s"], 3),
            "peak_rss_mb": round(peak, 1),
            "group_by_s": {n: round(r["group_by"]["s"], 3) for n, r in results.items()},
            "raw_select_s": {n: round(r["raw_select"]["s"], 3) for n, r in results.items()},
            "seconds": {n: {k: round(v["s"], 4) for k, v in r.items()}
                        for n, r in results.items()}}


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        _serve(*sys.argv[2:5])
    else:
        _worker(sys.argv[1], sys.argv[2], sys.argv[3:])
