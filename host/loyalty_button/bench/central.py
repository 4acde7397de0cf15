"""The chain's central service at a year of a chain (`tools/bench central`).

The data set: 300 stores, 10 million records over the last 365 days (and a
second database with a tenth of them, to see how times grow), made inside
PostgreSQL by one INSERT ... SELECT over generate_series per million rows
(GENERATOR below: tills, cashiers, kinds, outcomes, scores skewed per store
so stores differ, reasons, members, each store's UTC offset); the totals'
triggers are off meanwhile and the totals are then counted in one pass per
30 stores by the migration's own backfill. How long that took is printed.

Then, against baselines measured in the same run on the same database:
  - every chain dashboard endpoint (through a real worker over HTTPS) and
    the e-mail report (its queries, PDF and XLSX) against one full-table
    GROUP BY store over the records (the query the totals replace), and
    against its own time at a tenth of the records;
  - the worker's peak RSS (VmHWM);
  - ingest: records/s one worker takes (gzip'd batches of 500 over HTTPS,
    upserted with the totals' triggers) against a plain COPY of the same
    rows into a copy of the table without the triggers; the CPU it costs
    (worker + PostgreSQL) per record, and so the cores the chain's peak
    needs: 300 stores x 20 tills x a sale every 30 s = 200 records/s;
  - a dashboard request's p95 while ingest runs flat out, against idle."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import ssl
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from ..forward import postgres
from ..sim.central_rig import CentralRig
from ..sim.pg_server import PgServer
from .reports import _vm_hwm_mb

STORES = 300
RECORDS = 10_000_000
PEAK_RATE = STORES * 20 / 30      # records/s: 20 tills a store, a sale every 30 s each
CHUNK = 1_000_000
REPEAT = 3
ZONES_H = (3, 4, 5, 7, 10)        # hours east of UTC: Moscow to Vladivostok

# One million records at a time: {first}..{last} are their numbers,
# {t0} the year's first ms (UTC midnight). Each store's scores lean its own way.
GENERATOR = """
INSERT INTO lb_records (id, store, till, receipt, panel, loyalty_id, member, cashier, total,
    currency, items, lang, sale_ts, rule, qid, kind, asked_ms, outcome, value, reasons,
    answer_ms, late, closed_ms, utc_offset_s)
SELECT 'r' || g, st, till, 'R' || g, st || '-p' || till,
       CASE WHEN r1 < 0.4 THEN 'p-' || md5(st || (g % 5000)::text) END, r1 < 0.4,
       'c' || ((g * 7) % 25), round((100 + r2 * 3000)::numeric, 2), 'RUB', 1 + (g % 30),
       CASE WHEN r2 < 0.85 THEN 'ru' ELSE 'en' END, at / 1000, 'all', kind, kind,
       CASE WHEN kind IS NOT NULL THEN at END,
       CASE WHEN kind IS NULL THEN 'not_asked' WHEN r3 < 0.55 THEN 'answered'
            WHEN r3 < 0.7 THEN 'declined' WHEN r3 < 0.92 THEN 'timeout'
            WHEN r3 < 0.97 THEN 'no_reply' ELSE 'superseded' END,
       CASE WHEN kind IS NULL OR r3 >= 0.55 THEN NULL
            WHEN kind = 'nps' THEN to_jsonb(LEAST(10, GREATEST(0, round(7 + bias + r4 * 6 - 3))::int))
            WHEN kind = 'csat' THEN to_jsonb(1 + floor(r4 * 4.99)::int)
            ELSE to_jsonb(CASE WHEN r4 < 0.6 THEN 'yes' ELSE 'no' END) END,
       CASE WHEN kind = 'nps' AND r3 < 0.55 AND 7 + bias + r4 * 6 - 3 < 6.5 THEN
            (ARRAY['["queue"]', '["staff"]', '["prices", "queue"]', '["cleanliness"]',
                   '["assortment"]'])[1 + (g % 5)]::jsonb END,
       CASE WHEN r3 < 0.55 THEN 1500 + (g % 9000) END, false, at + 9000, off
FROM (SELECT g, st, till, bias, off, r1, r2, r3, r4, kind,
             -- the store's opening hours, 08:00-22:00 of its own day
             ({t0} + day * 86400000 + (8 * 3600000 - off * 1000) + (r5 * 14 * 3600000)::bigint)
                 AS at
      FROM (SELECT g, 's' || lpad((1 + g % 300)::text, 3, '0') AS st,
                   (1 + (g / 300) % 20)::text AS till,
                   ((g % 300) % 7 - 3) * 0.5 AS bias,
                   (ARRAY[{zones}])[1 + (g % 300) % {n_zones}] * 3600 AS off,
                   random() AS r1, random() AS r2, random() AS r3, random() AS r4,
                   random() AS r5, floor(random() * 365)::bigint AS day,
                   (ARRAY['nps', 'nps', 'nps', 'nps', 'nps', 'nps', 'csat', 'csat',
                          'choice', NULL])[1 + floor(random() * 10)::int] AS kind
            FROM generate_series({first}::bigint, {last}::bigint) AS g) AS a) AS b
"""


def _make_data(pg: PgServer, name: str, records: int, out) -> tuple[str, float]:
    import psycopg
    from ..central import schema
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    dsn = pg.dsn.rsplit("/", 1)[0] + "/" + name
    began = time.perf_counter()
    year_start = (int(time.time()) // 86400 - 365) * 86_400_000
    with psycopg.connect(dsn, autocommit=True) as conn:
        schema.migrate(conn)
        conn.execute("ALTER TABLE lb_records DISABLE TRIGGER USER")
        conn.execute("SELECT setseed(0.42)")
        for first in range(0, records, CHUNK):
            last = min(records, first + CHUNK) - 1
            conn.execute(GENERATOR.format(first=first, last=last, t0=year_start,
                                          zones=", ".join(map(str, ZONES_H)),
                                          n_zones=len(ZONES_H)))
            out(f"  {name}: {last + 1:,} records ({time.perf_counter() - began:.0f} s)")
        stores = [f"s{i:03d}" for i in range(1, STORES + 1)]
        for i in range(0, STORES, 30):
            part = stores[i:i + 30]
            where = "r.store IN (" + ", ".join(f"'{s}'" for s in part) + ")"
            for sql in postgres._backfill(where):
                conn.execute(sql)
        conn.execute("ALTER TABLE lb_records ENABLE TRIGGER USER")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO lb_stores (store, name, region) VALUES (%s, %s, %s)",
                            [(s, f"Store {s[1:]}", f"region {int(s[1:]) % 10}")
                             for s in stores])
        conn.execute("VACUUM ANALYZE")
    took = time.perf_counter() - began
    out(f"  {name}: data set made in {took:.0f} s")
    return dsn, took


# The same question asked of the records themselves: what the totals replace.
GROUP_BY = ("SELECT store, COUNT(*), COUNT(*) FILTER (WHERE outcome = 'answered'), "
            "COUNT(*) FILTER (WHERE kind = 'nps' AND (value #>> '{}')::numeric >= 9), "
            "COUNT(*) FILTER (WHERE kind = 'nps' AND (value #>> '{}')::numeric <= 6) "
            "FROM lb_records GROUP BY store")


def _group_by_s(dsn: str) -> float:
    import psycopg
    best = None
    with psycopg.connect(dsn) as conn:
        for _ in range(REPEAT):
            t = time.perf_counter()
            conn.execute(GROUP_BY).fetchall()
            took = time.perf_counter() - t
            best = took if best is None else min(best, took)
    return best


class _Client:
    def __init__(self, rig: CentralRig):
        self.rig = rig
        self.context = ssl.create_default_context(cafile=str(rig.ca))
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self.context),
                                             urllib.request.HTTPCookieProcessor())
        opener.open(urllib.request.Request(rig.url + "/login",
                                           data=b"user=boss&password=boss-password")).read()
        self.opener = opener

    def get_s(self, path: str) -> float:
        t = time.perf_counter()
        with self.opener.open(self.rig.url + path, timeout=600) as resp:
            resp.read()
            assert resp.status == 200, (path, resp.status)
        return time.perf_counter() - t


def _endpoints(store: str) -> list[str]:
    today = time.strftime("%Y-%m-%d", time.gmtime())
    year_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 364 * 86400))
    year = f"range=custom&from={year_ago}&to={today}"
    return ["/api/me", "/api/league?range=7d", "/api/league?range=30d", f"/api/league?{year}",
            "/api/league?range=all", "/api/league?range=30d&region=region%203",
            "/api/trend?range=30d", f"/api/trend?{year}", "/api/trend?range=all",
            f"/api/store/{store}?range=30d", f"/api/store/{store}?{year}",
            f"/api/store/{store}?range=all", "/api/fleet", "/api/subscriptions"]


def _report_s(dsn: str) -> float:
    """The weekly e-mail report of the whole chain: its queries, PDF and XLSX."""
    from datetime import date
    from psycopg_pool import AsyncConnectionPool
    from ..central import mail
    cfg = type("Cfg", (), {"smtp_from": "bench@example", "public_url": None})()

    async def once():
        async with AsyncConnectionPool(dsn, min_size=1, max_size=2,
                                       kwargs={"autocommit": True}) as pool:
            best = None
            for _ in range(REPEAT):
                t = time.perf_counter()
                async with pool.connection() as conn:
                    c = await mail.content(conn, "boss", mail.due_period("weekly",
                                                                         date.today()))
                mail.message(cfg, "boss@example", "en", "weekly", c)
                took = time.perf_counter() - t
                best = took if best is None else min(best, took)
            return best
    return asyncio.run(once())


def _measure(dsn: str, root: Path, out) -> dict:
    rig = CentralRig(root, dsn)
    rig.setup()
    rig.start()
    try:
        client = _Client(rig)
        times = {}
        for path in _endpoints("s017"):
            times[path] = min(client.get_s(path) for _ in range(REPEAT))
        times["e-mail report (queries, PDF, XLSX)"] = _report_s(dsn)
        return {"times": times, "rss_mb": _vm_hwm_mb(rig.proc.pid)}
    finally:
        rig.stop()


def _payloads(n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    now = int(time.time() * 1000)
    out = []
    for i in range(n):
        store = f"s{1 + i % STORES:03d}"
        kind = rnd.choice(["nps", "nps", "csat", None])
        answered = kind is not None and rnd.random() < 0.55
        value = (rnd.randint(0, 10) if kind == "nps" else rnd.randint(1, 5)) if answered else None
        out.append({"id": f"new-{seed}-{i}", "store": store, "till": str(1 + i % 20),
                    "receipt": f"N{i}", "panel": f"{store}-p1", "loyalty_id": None,
                    "member": False, "cashier": f"c{i % 25}", "total": 512.5, "currency": "RUB",
                    "items": 3, "lang": "ru", "sale_ts": now // 1000 - 5, "rule": "all",
                    "qid": kind, "kind": kind, "asked_ms": now if kind else None,
                    "outcome": ("answered" if answered else "timeout") if kind else "not_asked",
                    "value": value, "reasons": ["queue"] if value is not None and value < 4
                    else None, "answer_ms": 2100 if answered else None, "late": False,
                    "closed_ms": now + 9000, "utc_offset_s": 3 * 3600})
    return out


def _batches(payloads: list[dict], tokens: dict[str, str]) -> list[tuple[str, bytes]]:
    """(token, gzip'd body) of 500 records of one store each, as stores send."""
    by_store: dict[str, list] = {}
    for p in payloads:
        by_store.setdefault(p["store"], []).append(p)
    return [(tokens[store], gzip.compress(json.dumps({"records": recs[i:i + 500]}).encode()))
            for store, recs in by_store.items() for i in range(0, len(recs), 500)]


def _cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _pg_pids(pg: PgServer) -> list[int]:
    pids = [pg.proc.pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pg.proc.pid:
                pids.append(int(entry.name))
    return pids


def _ingest(pg: PgServer, dsn: str, root: Path, out) -> dict:
    import psycopg
    from ..central import commands
    n = 60_000
    payloads = _payloads(n, 1)
    # The baseline: the same rows, COPY'd into a copy of the table (its
    # primary key and defaults, no triggers), in the same database.
    cols = list(postgres.COLUMNS)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS lb_copy")
        conn.execute("CREATE TABLE lb_copy (LIKE lb_records INCLUDING ALL)")
        t = time.perf_counter()
        with conn.cursor().copy(f"COPY lb_copy ({', '.join(cols)}) FROM STDIN") as copy:
            for p in payloads:
                copy.write_row([json.dumps(p[c]) if c in postgres._JSONB and p.get(c) is not None
                                else p.get(c) for c in cols])
        copy_s = time.perf_counter() - t
        conn.execute("DROP TABLE lb_copy")
        tokens = {s: commands.issue_token(conn, s) for s in {p["store"] for p in payloads}}
    rig = CentralRig(root, dsn, settings={"ingest": {"store_batches_per_s": 1000}})
    rig.setup()
    rig.start()
    try:
        context = ssl.create_default_context(cafile=str(rig.ca))
        batches = _batches(payloads, tokens)
        lock = threading.Lock()
        errors = []

        def post(token, body):
            req = urllib.request.Request(rig.url + "/api/v1/records", data=body, headers={
                "Authorization": f"Bearer {token}", "Content-Encoding": "gzip",
                "Content-Type": "application/json"})
            with urllib.request.urlopen(req, context=context, timeout=120) as resp:
                resp.read()

        def sender(queue):
            while True:
                with lock:
                    if not queue:
                        return
                    token, body = queue.pop()
                try:
                    post(token, body)
                except Exception as e:
                    errors.append(e)
        pids = [rig.proc.pid] + _pg_pids(pg)
        cpu0 = _cpu_s(pids)
        t = time.perf_counter()
        queue = list(batches)
        threads = [threading.Thread(target=sender, args=(queue,)) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        ingest_s = time.perf_counter() - t
        cpu = _cpu_s(pids) - cpu0
        if errors:
            raise RuntimeError(f"ingest: {len(errors)} batches failed: {errors[0]}")
        with psycopg.connect(dsn) as conn:
            got = conn.execute("SELECT COUNT(*) FROM lb_records WHERE id LIKE 'new-1-%'") \
                .fetchone()[0]
        assert got == n, (got, n)
        out(f"  ingest: {n:,} records in {ingest_s:.1f} s ({n / ingest_s:,.0f}/s); "
            f"plain COPY {copy_s:.2f} s ({n / copy_s:,.0f}/s); CPU {cpu:.1f} s")

        # A dashboard request, idle and while ingest runs flat out.
        client = _Client(rig)
        path = "/api/league?range=30d"

        def p95(k=40):
            times = sorted(client.get_s(path) for _ in range(k))
            return times[int(0.95 * (k - 1))]
        idle = p95()
        queue = _batches(_payloads(n, 2), tokens)
        threads = [threading.Thread(target=sender, args=(queue,)) for _ in range(4)]
        for th in threads:
            th.start()
        time.sleep(1.0)
        busy = p95()
        left = len(queue)
        for th in threads:
            th.join()
        if left == 0:
            out("  warning: the ingest ended before the busy p95 was measured")
        return {"ingest_per_s": n / ingest_s, "copy_per_s": n / copy_s,
                "cpu_s_per_record": cpu / n, "p95_idle_s": idle, "p95_busy_s": busy}
    finally:
        rig.stop()


def run(out=print, records: int = RECORDS) -> dict:
    pg = PgServer(settings={"shared_buffers": "1GB", "max_wal_size": "8GB",
                            "work_mem": "64MB", "maintenance_work_mem": "512MB"}).start()
    root = Path(tempfile.mkdtemp(prefix="lb-bench-central-"))
    try:
        results = {}
        made = {}
        for n in (records // 10, records):
            out(f"central: {n:,} records of {STORES} stores over a year")
            dsn, made[n] = _make_data(pg, f"chain_{n}", n, out)
            group_by = _group_by_s(dsn)
            got = _measure(dsn, root / f"m{n}", out)
            results[n] = {"group_by_s": group_by, **got}
            out(f"  full-table GROUP BY store: {group_by * 1000:.0f} ms; worker peak RSS "
                f"{got['rss_mb']:.0f} MB")
        small, big = results[records // 10], results[records]
        rows = []
        for what, s in big["times"].items():
            ratio = s / big["group_by_s"]
            growth = s / small["times"][what]
            rows.append((ratio, growth))
            out(f"  {what}: {s * 1000:.1f} ms = {ratio:.3f}x the GROUP BY; "
                f"{growth:.2f}x its time at {records // 10:,}")
        ingest = _ingest(pg, dsn, root / "ingest", out)
        cores = ingest["cpu_s_per_record"] * PEAK_RATE
        out(f"  ingest {ingest['ingest_per_s']:,.0f} records/s = "
            f"{ingest['ingest_per_s'] / ingest['copy_per_s']:.3f}x plain COPY; "
            f"{ingest['cpu_s_per_record'] * 1e6:.0f} us of CPU a record (worker + PostgreSQL): "
            f"the chain's peak ({PEAK_RATE:.0f} records/s) needs {cores:.2f} core(s)")
        out(f"  dashboard p95: idle {ingest['p95_idle_s'] * 1000:.1f} ms, during ingest "
            f"{ingest['p95_busy_s'] * 1000:.1f} ms")
        return {"records": records, "stores": STORES,
                "data_set_s": round(made[records]),
                "worst_ratio_to_groupby": round(max(r for r, _ in rows), 4),
                "worst_growth": round(max(g for _, g in rows), 3),
                "worker_peak_rss_mb": round(max(small["rss_mb"], big["rss_mb"]), 1),
                "ingest_ratio_to_copy": round(ingest["ingest_per_s"] / ingest["copy_per_s"], 4),
                "ingest_records_per_s": round(ingest["ingest_per_s"]),
                "peak_cores": round(cores, 3),
                "p95_ratio_under_ingest": round(ingest["p95_busy_s"] / ingest["p95_idle_s"], 3)}
    finally:
        pg.stop()
        import shutil
        shutil.rmtree(root, ignore_errors=True)
