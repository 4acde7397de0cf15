"""The phone survey's page under a flood (`tools/bench phone`).

One central worker (its own process, as in production) over a real
PostgreSQL, serving the survey of store s1. Ordinary shoppers (each
from an address of its own) open fresh links one after another: the baseline is their
page time with nothing else running. Then 10 000 bounded requests come
from 100 other loopback addresses, 50 at a time: links of the wrong
shape, links with a changed signature for the real store, expired links,
answered links, and answers posted to them; meanwhile shoppers keep
opening links. Reported: the shopper's p50/p95 during the flood
against idle, whether every shopper request was answered with the page,
what the flood was answered (by status), its rate, the worker's RSS
before and after, and the first response's weight in both languages."""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from .. import phone_link
from ..sim.central_rig import CentralRig
from ..sim.pg_server import PgServer

FLOOD = 10_000
AT_ONCE = 50
ADDRESSES = 100
SHOPPER = "127.0.0.9"


def _shoppers():
    """Ordinary shoppers: one phone each, so one address each."""
    n = 0
    while True:
        n += 1
        yield f"127.0.{2 + n // 250 % 50}.{1 + n % 250}"
SURVEY = {"languages": ["ru", "en"], "default_lang": "ru", "expiry_h": 72, "review": None,
          "questions": [
              {"qid": "nps", "kind": "nps", "text": {"ru": "Порекомендуете ли вы нас?",
                                                      "en": "Would you recommend us?"}},
              {"qid": "comment", "kind": "comment", "text": {"ru": "Что улучшить?",
                                                              "en": "What to improve?"}}]}


def _call(rig_url: str, source: str, method: str, path: str, body: bytes | None = None,
          lang: str = "ru") -> tuple[int, int]:
    """(status, body bytes) of one request from `source`."""
    parts = urlsplit(rig_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30,
                                      source_address=(source, 0))
    try:
        headers = {"Accept-Language": lang}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body, headers)
        resp = conn.getresponse()
        return resp.status, len(resp.read())
    finally:
        conn.close()


def _grant(rig: CentralRig) -> dict:
    body = json.dumps({"health": {}, "phone": {"survey": SURVEY, "since": 0}}).encode()
    parts = urlsplit(rig.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("POST", "/api/v1/status", body, {"Authorization": f"Bearer {rig.token('s1')}",
                                                  "Content-Type": "application/json"})
    doc = json.loads(conn.getresponse().read())
    conn.close()
    g = doc["phone"]["grant"]
    return {**g, "key": base64.b64decode(g["key"])}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(out=print) -> dict:
    pg = PgServer().start()
    root = Path(tempfile.mkdtemp(prefix="lb-bench-phone-"))
    rig = None
    try:
        import psycopg
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE phone_bench")
        dsn = pg.dsn.rsplit("/", 1)[0] + "/phone_bench"
        rig = CentralRig(root / "central", dsn, tls=False, phone=True).setup()
        rig.add_store("s1")
        rig.start()
        grant = _grant(rig)
        serial = iter(range(10 ** 9))

        def link(age_s: float = 0) -> str:
            token = phone_link.make(grant["key"], grant["number"], f"s1-B{next(serial)}",
                                    time.time() - age_s + 72 * 3600)
            return phone_link.PATH + token

        weights = {lang: _call(rig.url, SHOPPER, "GET", link(), lang=lang)[1]
                   for lang in ("ru", "en")}
        out(f"phone: first response {weights['ru']} bytes (ru), {weights['en']} (en)")

        addresses = _shoppers()

        def shopper(stop: threading.Event | None, n: int | None) -> tuple[list, list]:
            times, statuses = [], []
            while (stop is None and len(times) < n) or (stop is not None and not stop.is_set()):
                t = time.perf_counter()
                status, _ = _call(rig.url, next(addresses), "GET", link())
                times.append(time.perf_counter() - t)
                statuses.append(status)
                # Five shoppers a second at one store: a busy one (its
                # budget, phone.per_store_per_s, is 10).
                time.sleep(0.2)
            return times, statuses

        idle, idle_status = shopper(None, 60)
        # The flood's requests, made before it starts (the signing is not
        # what is measured). Answered links are answered first.
        used = [link() for _ in range(50)]
        for i, path in enumerate(used):
            _call(rig.url, f"127.0.1.{i % 200 + 1}", "POST", path, b"lang=ru&q0=7")
        rnd = random.Random(34)
        requests = []
        for i in range(FLOOD):
            kind = i % 5
            if kind == 0:    # not a link at all
                path = phone_link.PATH + "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                                                 for _ in range(phone_link.TOKEN_CHARS))
            elif kind == 1:  # the real store's number, a changed signature
                good = link()
                path = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
            elif kind == 2:  # expired
                path = link(age_s=100 * 3600)
            elif kind == 3:  # answered already
                path = rnd.choice(used)
            else:            # an answer posted to an answered link
                path = rnd.choice(used)
            body = b"lang=ru&q0=3&q1=" + b"x" * 500 if kind == 4 else None
            requests.append((f"127.0.0.{10 + i % ADDRESSES}", "POST" if body else "GET", path,
                             body))
        rss_before = _rss_mb(rig.proc.pid)
        stop = threading.Event()
        result: dict = {}
        watcher = threading.Thread(target=lambda: result.update(
            busy=shopper(stop, None)), daemon=True)
        watcher.start()
        codes: dict[int, int] = {}
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(AT_ONCE) as pool:
            for status, _ in pool.map(lambda r: _call(rig.url, *r), requests):
                codes[status] = codes.get(status, 0) + 1
        flood_s = time.perf_counter() - started
        stop.set()
        watcher.join(60)
        busy, busy_status = result["busy"]
        rss_after = _rss_mb(rig.proc.pid)

        def pct(values, q):
            return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000
        figures = {
            "flood_requests": FLOOD, "flood_s": round(flood_s, 2),
            "flood_per_s": round(FLOOD / flood_s), "flood_status": dict(sorted(codes.items())),
            "shopper_idle_p50_ms": round(statistics.median(idle) * 1000, 2),
            "shopper_idle_p95_ms": round(pct(idle, 0.95), 2),
            "shopper_flood_p50_ms": round(statistics.median(busy) * 1000, 2),
            "shopper_flood_p95_ms": round(pct(busy, 0.95), 2),
            "shopper_idle_answered": sum(1 for s in idle_status if s == 200),
            "shopper_idle_requests": len(idle),
            "shopper_flood_requests": len(busy),
            "shopper_flood_answered": sum(1 for s in busy_status if s == 200),
            "rss_before_mb": round(rss_before, 1), "rss_after_mb": round(rss_after, 1),
            "page_bytes_ru": weights["ru"], "page_bytes_en": weights["en"]}
        figures["shopper_p95_ratio"] = round(figures["shopper_flood_p95_ms"]
                                             / figures["shopper_idle_p95_ms"], 2)
        out(f"phone: {FLOOD} flood requests in {flood_s:.1f} s ({figures['flood_per_s']}/s), "
            f"answered {figures['flood_status']}")
        out(f"phone: the shopper's page p95 {figures['shopper_flood_p95_ms']} ms during the "
            f"flood against {figures['shopper_idle_p95_ms']} ms idle "
            f"({figures['shopper_p95_ratio']}x); {figures['shopper_flood_answered']} of "
            f"{len(busy)} answered with the page; worker RSS {rss_before:.0f} -> "
            f"{rss_after:.0f} MB")
        return {"phone": figures}
    finally:
        if rig is not None:
            rig.stop()
        pg.stop()
