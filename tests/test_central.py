"""The chain's central service (docs/central.md): two simulated stores (the
store's own records database, outbox and forwarder) report to it over
HTTPS with a test CA; it is killed and started again mid-load; every record
is there once, the league table equals each store's own report, and each
user sees only their stores. Its ingest refuses bad batches whole. The
scheduled report arrives at a real SMTP server with a PDF and an XLSX whose
figures are the dashboard API's."""

from __future__ import annotations

import gzip
import http.cookiejar
import io
import json
import random
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import zoneinfo
from datetime import datetime, timedelta
from email.header import decode_header, make_header
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from loyalty_button.forward import config as fconfig, http as fhttp
from loyalty_button.forward.central import Central
from loyalty_button.forward.forwarder import Forwarder
from loyalty_button.forward.payload import record_payload
from loyalty_button.service import reports
from loyalty_button.service.records import CLOSE_FIELDS, RecordStore, memory_db, now_ms
from loyalty_button.settings import Checker
from loyalty_button.sim.broker import free_port
from loyalty_button.sim.central_rig import CentralRig
from loyalty_button.sim.pg_server import PgServer
from test_forwarding import KEY, _varied

ZONES = {"s1": "Europe/Moscow", "s2": "Asia/Vladivostok"}
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def pg():
    server = PgServer().start()
    yield server
    server.stop()


@pytest.fixture
def central(tmp_path):
    """CentralRig(...) made through this, stopped however the test ends."""
    made = []

    def make(name: str, dsn: str, **kw) -> CentralRig:
        rig = CentralRig(tmp_path / name, dsn, **kw)
        made.append(rig)
        return rig
    yield make
    for rig in made:
        rig.stop()


def _database(pg, name: str) -> str:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return pg.dsn.rsplit("/", 1)[0] + "/" + name


def _records(store: str, n: int, seed: int) -> list[dict]:
    """Closed records of every kind, over the last six days and today."""
    shift = now_ms() - 6 * DAY_MS - 1_767_225_600_000
    out = []
    for i, r in enumerate(_varied(n, seed)):
        r = dict(r, id=f"{store}-R{i}", store=store)
        for key in ("asked_ms", "received_ms", "closed_ms"):
            if r.get(key):
                r[key] += shift
        r["sale_ts"] = r["received_ms"] // 1000
        out.append(r)
    return out


class Session:
    """A dashboard user's browser session over HTTPS (the test CA)."""

    def __init__(self, rig: CentralRig, user: str, password: str):
        self.rig = rig
        context = ssl.create_default_context(cafile=str(rig.ca)) if rig.ca else None
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            urllib.request.HTTPSHandler(context=context))
        body = f"user={user}&password={password}".encode()
        with self.opener.open(urllib.request.Request(rig.url + "/login", data=body)) as resp:
            assert resp.url.rstrip("/") == rig.url, f"{user} did not log in"

    def get(self, path: str):
        try:
            with self.opener.open(self.rig.url + path) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def post(self, path: str, doc: dict):
        req = urllib.request.Request(self.rig.url + path, data=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"})
        with self.opener.open(req) as resp:
            return json.loads(resp.read())


class SimStore:
    """A store host's records database, outbox and forwarder, in its own
    time zone, with the central service as its destination."""

    def __init__(self, root: Path, store: str, rig: CentralRig):
        self.store, self.tz = store, zoneinfo.ZoneInfo(ZONES[store])
        root.mkdir(parents=True, exist_ok=True)
        check = Checker(root)
        fwd = fconfig.parse({"pseudonym_key": KEY.decode(), "destinations": [{
            "name": "central", "type": "central", "url": rig.url,
            "token_file": str(rig.tokens[store]), "ca_file": str(rig.ca), "batch": 100,
            "backoff_base_s": 0.05, "backoff_max_s": 0.5, "timeout_s": 5,
            "status_every_s": 0.3}]}, check)
        assert check.problems == []
        self.path = root / "records.db"
        self.records = RecordStore(self.path, ["central"])
        # The host's health summary (StoreHost.health_summary): s2's till 2
        # has its panel offline.
        offline = ["2"] if store == "s2" else []
        self.forwarder = Forwarder(self.path, fwd, store, self.tz, health=lambda: {
            "tills": 4, "broker": "up", "panels_offline": offline})
        self.latest: dict[str, dict] = {}

    def start(self) -> "SimStore":
        self.forwarder.start()
        return self

    def add(self, recs: list[dict]) -> None:
        for r in recs:
            self.records.insert(r)
            self.latest[r["id"]] = r
        self.records.flush()

    def late_answers(self, n: int, seed: int) -> None:
        """A late answer re-closes a record: the outbox sends it again."""
        rnd = random.Random(seed)
        asked = sorted((r for r in self.latest.values() if r["kind"]), key=lambda r: r["id"])
        for r in rnd.sample(asked, n):
            fields = {f: r.get(f) for f in CLOSE_FIELDS}
            fields.update(outcome="answered", burst=None, late=1, reasons=["staff"],
                          value={"nps": rnd.randint(0, 10), "csat": rnd.randint(1, 5),
                                 "choice": "yes"}[r["kind"]])
            self.records.close(r["id"], fields)
            self.latest[r["id"]] = dict(r, **fields)
        self.records.flush()

    def status(self) -> dict:
        return self.forwarder.status()["central"]

    def drained(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            s = self.status()
            if s["pending"] == 0 and s["sent"] >= len(self.latest):
                return s
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.store}: {s}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.forwarder.stop()
        self.records.stop()


def _store_report(sim: SimStore, first, last) -> dict:
    """The store's own report of its local dates first..last."""
    period, _ = reports.date_range("custom", sim.tz, time.time(), first.isoformat(),
                                   last.isoformat())
    return reports.summary(memory_db(list(sim.latest.values())), period)


def test_two_stores_report_over_https_through_a_crash_and_each_user_sees_their_own(
        pg, tmp_path, central):
    dsn = _database(pg, "central_two")
    # The dashboard's reads go to the "replica" (the same server here: the
    # read path, not PostgreSQL's replication, is what is tested).
    rig = central("central", dsn, settings={"timezone": "UTC", "replica": dsn})
    rig.setup()
    rig.add_store("s1", region="north", name="Store one")
    rig.add_store("s2", region="south", name="Store two")
    rig.add_user("north-boss", "region", "north")
    rig.add_user("m1", "store", "s1")
    rig.start()
    stores = {s: SimStore(tmp_path / s, s, rig).start() for s in ("s1", "s2")}
    try:
        recs = {s: _records(s, 1500, seed) for s, seed in (("s1", 11), ("s2", 12))}
        for s in stores:
            stores[s].add(recs[s][:700])
        # Mid-load: the worker dies (SIGKILL) while batches are in flight.
        deadline = time.monotonic() + 30
        while min(st.status()["sent"] for st in stores.values()) < 100:
            assert time.monotonic() < deadline, [st.status() for st in stores.values()]
            time.sleep(0.01)
        rig.kill()
        for s in stores:
            stores[s].add(recs[s][700:])
        time.sleep(1.0)  # the stores fail, back off and keep their outboxes
        assert all(st.status()["failures_in_a_row"] > 0 for st in stores.values())
        rig.start()
        for s in stores:
            stores[s].late_answers(200, seed=len(s))
        for st in stores.values():
            st.drained()
        time.sleep(1.0)  # a heartbeat after the outbox emptied
    finally:
        for st in stores.values():
            st.stop()

    # Every record once, as the store last sent it.
    with psycopg.connect(rig.dsn) as conn:
        rows = conn.execute("SELECT id, store, outcome, value, utc_offset_s FROM lb_records") \
            .fetchall()
    assert len(rows) == 3000 == len({r[0] for r in rows})
    latest = {**stores["s1"].latest, **stores["s2"].latest}
    for rid, store, outcome, value, offset in rows:
        want = latest[rid]
        assert (store, outcome, value) == (want["store"], want["outcome"], want["value"]), rid
        assert offset == {"s1": 3 * 3600, "s2": 10 * 3600}[store]

    # The league table for each store's last seven days equals the store's
    # own report of the same dates; the chain's row is both together.
    boss = Session(rig, "boss", "boss-password")
    today = datetime.now(zoneinfo.ZoneInfo("UTC")).date()
    first, last = today - timedelta(days=6), today
    status, league = boss.get(f"/api/league?range=custom&from={first}&to={last}")
    assert status == 200
    by_store = {row["store"]: row for row in league["stores"]}
    assert set(by_store) == {"s1", "s2"}
    for s, sim in stores.items():
        mine = _store_report(sim, first, last)
        row = by_store[s]
        assert (row["n"], row["nps"], row["ci95_low"], row["ci95_high"]) == (
            mine["nps"]["n"], mine["nps"]["nps"], mine["nps"]["ci95_low"],
            mine["nps"]["ci95_high"]), s
        assert (row["asked"], row["answered"], row["response_pct"]) == (
            mine["response"]["asked"], mine["response"]["answered"],
            mine["response"]["rate_pct"]), s
        assert row["csat_mean"] == mine["csat"]["mean"]
        status, detail = boss.get(f"/api/store/{s}?range=custom&from={first}&to={last}")
        assert status == 200 and detail["reasons"] == mine["reasons"], s
    # Worst first, by the shrunk score, with the formula on the page.
    scores = [r["score"] for r in league["stores"]]
    assert scores == sorted(scores) and "(W + R)" in league["formula"]
    chain = league["chain"]
    assert chain["n"] == by_store["s1"]["n"] + by_store["s2"]["n"]

    # A store manager sees their store only; a region's user their region's.
    m1 = Session(rig, "m1", "user-password")
    status, league = m1.get("/api/league?range=all")
    assert [r["store"] for r in league["stores"]] == ["s1"]
    assert m1.get("/api/store/s2?range=all")[0] == 404
    assert m1.get("/api/trend?range=all&store=s2")[1]["days"] == []
    assert [s["store"] for s in m1.get("/api/fleet")[1]["stores"]] == ["s1"]
    assert m1.get("/api/store/s1?range=all")[0] == 200
    # Dates a person may type: the year 1 has no days before it; nonsense is 400.
    assert m1.get("/api/league?range=custom&from=0001-01-01&to=0001-01-02")[0] == 200
    assert m1.get("/api/league?range=custom&from=2026-13-01&to=2026-12-01")[0] == 400
    assert m1.get("/api/league?range=custom&from=2026-12-02&to=2026-12-01")[0] == 400
    north = Session(rig, "north-boss", "user-password")
    assert [r["store"] for r in north.get("/api/league?range=all")[1]["stores"]] == ["s1"]
    assert north.get("/api/league?range=all&region=south")[1]["stores"] == []
    # The fleet, from the stores' own reports: both heard of, nothing
    # waiting, nothing refused; s2's panel at till 2 offline.
    fleet = {r["store"]: r for r in boss.get("/api/fleet")[1]["stores"]}
    assert fleet["s1"]["problems"] == [] and fleet["s2"]["problems"] == ["panels_offline"]
    assert fleet["s2"]["panels_offline"] == ["2"] and fleet["s2"]["tills"] == 4
    assert all(r["pending"] == 0 and r["refused"] == 0 and r["records"] >= 1500
               for r in fleet.values()), list(fleet.values())
    rig.stop()


def _post(rig: CentralRig, token: str | None, body: bytes, gz: bool | None = True):
    """gz True: gzip the body; None: say gzip and send it as it is."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if gz is not False:
        body = gzip.compress(body) if gz else body
        headers["Content-Encoding"] = "gzip"
    context = ssl.create_default_context(cafile=str(rig.ca))
    return fhttp.request("POST", rig.url + "/api/v1/records", body, headers, 20, context)


def test_the_ingest_refuses_a_bad_batch_whole_and_says_why(pg, central):
    rig = central("central", _database(pg, "central_bad"),
                  settings={"ingest": {"store_batches_per_s": 5}})
    rig.setup()
    rig.add_store("s1")
    rig.add_store("s2")
    rig.start()
    t1, t2 = rig.token("s1"), rig.token("s2")
    good = [dict(r, utc_offset_s=0, member=False) for r in _records("s1", 5, 3)]
    for r in good:
        r.pop("received_ms"), r.pop("state"), r.pop("source")

    def body(recs) -> bytes:
        return json.dumps({"records": recs}).encode()

    def count() -> tuple:
        with psycopg.connect(rig.dsn) as conn:
            return (conn.execute("SELECT COUNT(*) FROM lb_records").fetchone()[0],
                    conn.execute("SELECT COALESCE(SUM(n), 0) FROM lb_totals WHERE dim = 'all' "
                                 "AND slot = -1").fetchone()[0])
    resp = _post(rig, t1, body(good))
    assert resp.status == 200 and resp.json() == {"stored": 5}
    assert count() == (5, 5)
    time.sleep(1.0)  # the bucket refills
    cases = [
        (None, body(good), True, 401, "token"),
        ("not-a-token", body(good), True, 401, "unknown or revoked"),
        (t1, b"\x1f\x8b\x08\x00garbage", None, 400, "gzip"),
        (t1, gzip.compress(body(good))[:-12], None, 400, "cut short"),
        (t1, body(good)[:-3], False, 400, "not JSON"),
        (t1, b"[1, 2]", True, 400, '{"records"'),
        (t1, body([]), True, 400, "no records"),
        (t1, body(good + [dict(good[0], id="s1-bad", value="\x00")]), True, 400, "NUL"),
        (t1, body(good + [dict(good[0], id="s1-bad2", items="many")]), True, 400,
         "items must be a whole number"),
        (t1, body(good).replace(b'"s1-R0"', b'"s1-R0\\ud800"'), True, 400, "not valid Unicode"),
        (t1, body(good + [dict(good[0], id=None)]), True, 400, "id must be given"),
        (t1, body(good + [dict(good[0], id="s1-x", store="s2")]), True, 403, "store 's2'"),
    ]
    for token, data, gz, status, why in cases:
        resp = _post(rig, token, data, gz)
        assert resp.status == status and why in resp.json()["error"], (why, resp.status,
                                                                       resp.body[:300])
        time.sleep(0.25)
    # s2's token cannot take over s1's records by their ids: the whole batch
    # is refused, nothing of it is written, s1's rows are untouched.
    theirs = [dict(r, store="s2", value=0) for r in good[:2]] + [
        dict(good[0], id="s2-new", store="s2")]
    resp = _post(rig, t2, body(theirs))
    assert resp.status == 409 and "another store" in resp.json()["error"]
    assert count() == (5, 5)
    with psycopg.connect(rig.dsn) as conn:
        assert conn.execute("SELECT DISTINCT store FROM lb_records").fetchall() == [("s1",)]
    # A gzip bomb is refused before it is inflated.
    bomb = gzip.compress(b"[" + b" " * (40 << 20) + b"]")
    assert len(bomb) < 100_000
    resp = _post(rig, t1, bomb, gz=None)
    assert resp.status == 413 and "inflates" in resp.json()["error"], resp.body[:200]
    # A store sending too fast is told when to come back, and the store's
    # sender reads it.
    statuses = [_post(rig, t1, body(good[:1])) for _ in range(20)]
    limited = [r for r in statuses if r.status == 429]
    assert limited and all(float(r.headers["Retry-After"]) >= 1 for r in limited)
    sender = Central(SimpleNamespace(url=rig.url, token=t1, ca_file=rig.ca, timeout_s=5))
    with pytest.raises(fhttp.Retry) as err:
        for _ in range(20):
            sender.send_batch([(good[0], 0, None)])
    assert err.value.after_s is not None and err.value.after_s >= 1
    # A revoked token stops at once.
    rig.cli("store", "revoke", "s1")
    time.sleep(1.0)
    assert _post(rig, t1, body(good)).status == 401
    with psycopg.connect(rig.dsn) as conn:
        refused = conn.execute("SELECT refused, last_refusal FROM lb_stores WHERE store = 's1'") \
            .fetchone()
    assert refused[0] >= 6 and refused[1]
    # What the worker counted, for the balancer's health check and people.
    health = json.loads(fhttp.request("GET", rig.url + "/healthz", None, {}, 10,
                                      ssl.create_default_context(cafile=str(rig.ca))).body)
    assert health["ok"] and health["counters"]["ingest_refused"] >= 10
    assert health["counters"]["ingest_rate_limited"] >= 1
    rig.stop()
    assert "batch refused" in rig.log()


def _send_all(rig: CentralRig, store: str, recs: list[dict], tz: str) -> None:
    sender = Central(SimpleNamespace(url=rig.url, token=rig.token(store), ca_file=rig.ca,
                                     timeout_s=10))
    for i in range(0, len(recs), 500):
        items = [(record_payload(r, False, KEY, zoneinfo.ZoneInfo(tz)), 0, None)
                 for r in recs[i:i + 500]]
        assert sender.send_batch(items) == [None] * len(items)


def test_scheduled_reports_arrive_by_e_mail_with_the_dashboards_figures(pg, tmp_path, smtp,
                                                                       central):
    port = smtp.port
    smtp_port = free_port()  # nothing listens here at first: the send fails
    rig = central("central", _database(pg, "central_mail"), settings={
        "timezone": "UTC", "smtp": {"host": "127.0.0.1", "port": smtp_port,
                                    "from": "reports@chain.example"},
        "reports": {"public_url": "https://central.chain.example/"}})
    rig.setup(email="boss@chain.example")
    rig.add_store("s1", region="north", name="Магазин на Тверской")
    rig.add_store("s2", region="south", name="Store two")
    rig.add_user("north-boss", "region", "north", email="north@chain.example", lang="ru")
    rig.start()
    for store, seed in (("s1", 21), ("s2", 22)):
        _send_all(rig, store, _records(store, 800, seed), "UTC")
    boss = Session(rig, "boss", "boss-password")
    north = Session(rig, "north-boss", "user-password")
    assert boss.post("/api/subscriptions", {"every": "daily", "on": True})["subscribed"] == \
        ["daily"]
    north.post("/api/subscriptions", {"every": "weekly", "on": True})

    # The mail server is away: the sends fail, are kept, and show.
    assert json.loads(rig.cli("send-reports")) == {"sent": 0, "failed": 2}
    sends = boss.get("/api/subscriptions")[1]["sends"]
    assert [s["state"] for s in sends] == ["failed"] and "smtp" in sends[0]["last_error"]
    assert json.loads(rig.cli("send-reports")) == {"sent": 0, "failed": 0}  # not due yet
    # It comes back (and the retry's time has come): they are sent, once.
    rig.stop()
    rig_cfg = rig.config.read_text().replace(str(smtp_port), str(port))
    rig.config.write_text(rig_cfg)
    with psycopg.connect(rig.dsn, autocommit=True) as conn:
        conn.execute("UPDATE lb_report_sends SET next_try = now()")
    assert json.loads(rig.cli("send-reports")) == {"sent": 2, "failed": 0}
    assert json.loads(rig.cli("send-reports")) == {"sent": 0, "failed": 0}
    rig.start()
    sends = boss.get("/api/subscriptions")[1]["sends"]
    assert [(s["state"], s["attempts"]) for s in sends] == [("sent", 2)]

    mails = {to[0]: msg for to, msg in smtp.messages}
    assert set(mails) == {"boss@chain.example", "north@chain.example"}
    yesterday = (datetime.now(zoneinfo.ZoneInfo("UTC")).date() - timedelta(days=1)).isoformat()
    status, league = boss.get(f"/api/league?range=custom&from={yesterday}&to={yesterday}")
    assert status == 200 and league["chain"]["n"] > 0
    msg = mails["boss@chain.example"]
    assert yesterday in msg["Subject"] and msg["From"] == "reports@chain.example"
    parts = {p.get_content_type(): p for p in msg.walk() if not p.is_multipart()}
    body = parts["text/html"].get_payload(decode=True).decode()
    assert f"{league['chain']['nps']}" in body and "https://central.chain.example/" in body
    # The PDF opens (pdftoppm draws its first page) and says the API's figures.
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(parts["application/pdf"].get_payload(decode=True))
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf),
                    str(tmp_path / "page")], check=True)
    assert (tmp_path / "page-1.png").stat().st_size > 2000
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    for row in league["stores"]:
        line = next(ln for ln in text.splitlines() if row["name"] in ln)
        assert f" {row['score']} " in f" {line} " and f" {row['nps']} " in f" {line} ", line
    # The XLSX holds every store's row, as the API gives it.
    from openpyxl import load_workbook
    xlsx = parts["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"]
    book = load_workbook(io.BytesIO(xlsx.get_payload(decode=True)))
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    # Columns: rank, name, region, score, NPS, answers, response, id, ...
    assert [(g[7], g[0], g[4], g[5], g[3]) for g in rows[2:]] == [
        (r["store"], r["rank"], r["nps"], r["n"], r["score"]) for r in league["stores"]]
    # The region's user gets their region's store only, in Russian.
    msg = mails["north@chain.example"]
    assert "Еженедельный отчёт" in str(make_header(decode_header(msg["Subject"])))
    parts = {p.get_content_type(): p for p in msg.walk() if not p.is_multipart()}
    book = load_workbook(io.BytesIO(parts[
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    ].get_payload(decode=True)))
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert [r[rows[1].index("id")] for r in rows[2:]] == ["s1"]
    rig.stop()


def test_bi_tools_read_documented_views_and_nothing_else(pg, central):
    """The read-only role sees the bi views (no loyalty ids there), not the
    tables; the views' figures are the dashboard's (the same interval)."""
    rig = central("central", _database(pg, "central_bi"), tls=False)
    rig.setup()
    rig.add_store("s1", region="north", name="Store one")
    rig.start()
    recs = _records("s1", 600, 31)
    _send_all(rig, "s1", recs, "Europe/Moscow")
    rig.cli("bi-role", "metabase", "--password-stdin", stdin="bi-password-1\n")
    bi_dsn = rig.dsn.replace(f"{pg.user}:{pg.password}@", "metabase:bi-password-1@")
    with psycopg.connect(bi_dsn) as conn:
        cols = [c.name for c in conn.execute("SELECT * FROM bi.answers LIMIT 1").description]
        assert "loyalty_id" not in cols and {"store", "region", "score", "day"} <= set(cols)
        assert conn.execute("SELECT COUNT(*) FROM bi.answers").fetchone()[0] == 600
        days = conn.execute("SELECT day, receipts, promoters, passives, detractors, nps, "
                            "nps_ci95_low, nps_ci95_high, response_rate_pct FROM "
                            "bi.store_days WHERE store = 's1' ORDER BY day").fetchall()
        assert conn.execute("SELECT store, name, region FROM bi.stores").fetchall() == [
            ("s1", "Store one", "north")]
        for table in ("lb_records", "lb_totals", "lb_users", "lb_stores"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {table} LIMIT 1")
            conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.mine (x int)")
    boss = Session(rig, "boss", "boss-password")
    trend = {d["day"]: d for d in boss.get("/api/trend?range=all")[1]["days"]}
    assert len(days) == len(trend) >= 6
    def shown(v):  # as the dashboard shows it: one decimal
        return None if v is None else round(v, 1)
    for day, receipts, pro, pas, det, nps, low, high, rate in days:
        want = trend[day.isoformat()]
        assert (pro, pas, det) == (want["promoters"], want["passives"], want["detractors"])
        assert (shown(nps), shown(low), shown(high)) == (
            want["nps"], want["ci95_low"], want["ci95_high"]), day
        assert shown(rate) == want["response_pct"], day
    rig.stop()


def test_the_chain_dashboard_in_a_browser_on_a_desktop_and_a_phone(pg, tmp_path, central,
                                                                   browser):
    """Log in, the league table worst first with its formula, a store's
    tills and cashiers, Russian, and a phone's width with nothing wider
    than the screen (screenshots to LB_SCREENSHOT_DIR for docs/images)."""
    import os
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    from conftest import page_shot
    rig = central("central", _database(pg, "central_ui"), tls=False,
                  settings={"timezone": "Europe/Moscow"})
    rig.setup()
    names = {"s1": ("Тверская, 12", "Москва"), "s2": ("Невский, 40", "Санкт-Петербург"),
             "s3": ("Ленина, 5", "Москва")}
    for s, (name, region) in names.items():
        rig.add_store(s, region=region, name=name)
    rig.start()
    for i, s in enumerate(names):
        _send_all(rig, s, _records(s, 400 + 300 * i, 40 + i), "Europe/Moscow")
    shots = Path(os.environ.get("LB_SCREENSHOT_DIR", tmp_path / "shots"))
    wait = WebDriverWait(browser, 15)
    browser.get(rig.url + "/")
    browser.find_element(By.ID, "user").send_keys("boss")
    browser.find_element(By.ID, "password").send_keys("boss-password")
    browser.find_element(By.ID, "submit").click()
    browser.execute_script("localStorage.setItem('lb-lang', 'en')")
    browser.refresh()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#league tbody tr")) == 3)
    Select(browser.find_element(By.ID, "range")).select_by_value("all")
    wait.until(lambda d: "All time" in d.find_element(By.ID, "days").text)
    rows = browser.find_elements(By.CSS_SELECTOR, "#league tbody tr")
    scores = [float(r.find_elements(By.TAG_NAME, "td")[3].text) for r in rows]
    assert scores == sorted(scores)
    assert "(WAI × W + I × R) / (W + R)" in browser.find_element(By.ID, "formula").text
    assert browser.find_element(By.ID, "region-pick").is_displayed()
    rows[1].click()
    wait.until(lambda d: d.find_element(By.ID, "store-box").is_displayed())
    store = rows[1].find_elements(By.TAG_NAME, "td")[1].text
    assert store in browser.find_element(By.ID, "store-title").text
    tills = browser.find_elements(By.CSS_SELECTOR, "#store-table tr")
    assert [t.find_elements(By.TAG_NAME, "td")[0].text for t in tills[1:]] == ["1", "2", "3", "4"]
    browser.find_element(By.CSS_SELECTOR, "#store-tabs button[data-by='cashiers']").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#store-table th").text == "cashiers")
    fleet = browser.find_element(By.ID, "fleet").text
    assert all(name in fleet for name, _ in names.values())
    page_shot(browser, shots / "central-en-desktop.png", 1366, 768)
    browser.find_element(By.CSS_SELECTOR, "#langs button[data-lang='ru']").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#league-box h2").text
               == "Магазины, худшие сверху")
    assert "вся сеть" in browser.find_element(By.ID, "who").text
    browser.set_window_size(390, 844)
    wait.until(lambda d: d.execute_script("return document.documentElement.scrollWidth")
               <= d.execute_script("return window.innerWidth"))
    cards = browser.find_elements(By.CSS_SELECTOR, ".card")
    assert len({c.location["y"] for c in cards}) == 3  # one above the other
    wait.until(lambda d: d.execute_script(  # the trend redrawn at the phone's width
        "return document.getElementById('trend').viewBox.baseVal.width") < 400)
    page_shot(browser, shots / "central-ru-phone.png", 390, 844)
    # Subscribing from the page.
    box = browser.find_element(By.ID, "sub-weekly")
    browser.execute_script("arguments[0].scrollIntoView()", box)
    box.click()
    wait.until(lambda d: Session(rig, "boss", "boss-password").get(
        "/api/subscriptions")[1]["subscribed"] == ["weekly"])


def test_settings_problems_are_listed_in_words(tmp_path):
    """central.yaml and a store's `central` destination: every problem at
    start, with where it is and what to write."""
    from loyalty_button.central import config as central_config
    bad = tmp_path / "central.yaml"
    bad.write_text("database: postgresql://x@y/z\ndatabase_file: dsn\n"
                   "listen: {port: 70000, tls_cert: cert.pem}\npool: {min: 9, max: 2}\n"
                   "timezone: Mars/Olympus\ningest: {at_once: 0}\nsurprise: 1\n")
    with pytest.raises(central_config.CentralConfigError) as err:
        central_config.load(bad)
    text = "\n".join(err.value.problems)
    for want in ("give one of database, database_file", "listen.port", "tls_cert and tls_key",
                 "cert.pem is not a file", "pool.min", "unknown time zone 'Mars/Olympus'",
                 "ingest.at_once", "surprise"):
        assert want in text, (want, text)
    good = tmp_path / "ok.yaml"
    good.write_text("database: postgresql://x@y/z\n")
    cfg = central_config.load(good)
    assert (cfg.port, cfg.ingest_at_once, cfg.tz.key) == (8443, 1, "UTC")

    check = Checker(tmp_path)
    fconfig.parse({"pseudonym_key": KEY.decode(), "destinations": [
        {"name": "b", "type": "central", "url": "https://x"},
        {"name": "c", "type": "central", "url": "ftp://x", "token": "t"},
        {"name": "d", "type": "central", "url": "https://x", "token": "t",
         "ca_file": "missing.crt"}]}, check)
    text = "\n".join(check.problems)
    assert "needs token or token_file" in text and "must start with https://" in text
    assert "missing.crt is not a file" in text


def test_the_store_hosts_health_summary_names_the_tills_whose_panel_is_not_online(host,
                                                                                   panels):
    """What the heartbeat sends (StoreHost.health_summary), from a real host
    on a real Mosquitto: the till whose panel connected is not listed."""
    panels.start("till-1")
    host.wait_online("till-1")
    got = host.thread.call(host.host.health_summary)
    assert got == {"tills": 3, "broker": "up", "panels_offline": ["2", "3"]}
