"""Forwarding: durable outboxes, the webhook, HubSpot, Bitrix24 (against
local servers that check the vendors' request shapes), the chain's central
PostgreSQL (a real server), the cloud reporter, pseudonyms and retention."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import timezone
from pathlib import Path

import psycopg
import pytest

from conftest import STORE, Host, receipt_doc
from fake_vendors import (BITRIX_LIMIT, HUBSPOT_RATE_LIMIT, Bitrix24Fake, CloudFake,
                          HubSpotFake, WebhookReceiver)
from loyalty_button.forward import config as fconfig
from loyalty_button.forward import postgres
from loyalty_button.forward.crm_note import marker
from loyalty_button.forward.forwarder import Forwarder
from loyalty_button.forward.http import backoff_s
from loyalty_button.forward.outbox import OutboxDB
from loyalty_button.forward.payload import pseudonym
from loyalty_button.service import config as host_config
from loyalty_button.service.records import RecordStore, now_ms
from loyalty_button.settings import Checker
from loyalty_button.sim.pg_server import PgServer

KEY = b"pseudonym-key-0123456789"
SECRET = "webhook-secret-0123456789"
FAST = {"backoff_base_s": 0.02, "backoff_max_s": 0.2, "timeout_s": 2}



def _parse_forwarding(doc, base):
    check = Checker(base)
    return fconfig.parse(doc, check), check.problems

def _fwd(tmp_path, *dests, **top):
    doc = {"pseudonym_key": KEY.decode(), "destinations": list(dests), **top}
    fwd, problems = _parse_forwarding(doc, tmp_path)
    assert problems == []
    return fwd


def _closed(i: int, loyalty_id: str | None = "L-100", value: int | None = 9, **over) -> dict:
    now = now_ms()
    rec = {"id": f"{STORE}-R{i}", "store": STORE, "till": "1", "receipt": f"R{i}",
           "panel": "till-1", "loyalty_id": loyalty_id, "cashier": "c7", "total": 12.5 + i,
           "currency": "EUR", "source": "http", "sale_ts": now // 1000, "received_ms": now,
           "rule": "members", "qid": "nps", "kind": "nps", "asked_ms": now, "state": "closed",
           "outcome": "answered" if value is not None else "declined", "value": value,
           "reasons": ["queue"] if value is not None and value < 7 else None,
           "closed_ms": now, "extras": {"segment": "gold"}}
    rec.update(over)
    return rec


class Store:
    """A store database with records closed into the destinations' outboxes,
    and the forwarder running on it."""

    def __init__(self, tmp_path: Path, fwd):
        self.path = tmp_path / "records.db"
        self.fwd = fwd
        self.records = RecordStore(self.path, [d.name for d in fwd.destinations])
        self.forwarder = None

    def add(self, recs) -> None:
        for r in recs:
            self.records.insert(r)
        self.records.flush()

    def start(self):
        import zoneinfo
        self.forwarder = Forwarder(self.path, self.fwd, STORE, zoneinfo.ZoneInfo("UTC"))
        self.forwarder.start()
        return self

    def stop(self):
        if self.forwarder:
            self.forwarder.stop()
        self.records.stop()

    def stats(self, name):
        return self.forwarder.status()[name]

    def wait(self, name, timeout=15.0, **want):
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats(name)
            if all(s.get(k) == v for k, v in want.items()):
                return s
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: {s}, wanted {want}")
            time.sleep(0.05)


@pytest.fixture
def store_factory(tmp_path):
    made = []

    def make(*dests, **top):
        s = Store(tmp_path, _fwd(tmp_path, *dests, **top))
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


# --- the webhook ----------------------------------------------------------------

def test_webhook_is_signed_pseudonymised_and_survives_an_outage(store_factory):
    hook = WebhookReceiver(SECRET.encode()).start()
    try:
        store = store_factory({"name": "hook", "type": "webhook", "url": hook.url + "/hook",
                               "secret": SECRET, **FAST})
        hook.down = True
        store.add(_closed(i) for i in range(5))
        store.start()
        s = store.wait("hook", pending=5)
        time.sleep(0.5)
        assert store.stats("hook")["failures_in_a_row"] >= 2 and not hook.entries
        hook.down = False
        store.wait("hook", sent=5, pending=0)
        assert hook.shape_errors == []
        assert sorted(hook.entries) == [f"{STORE}-R{i}" for i in range(5)]
        body = hook.entries[f"{STORE}-R0"]
        # Not allowed raw ids: the keyed hash, and no free-form extras.
        assert body["loyalty_id"] == pseudonym(KEY, "L-100") != "L-100"
        assert body["member"] is True and "extras" not in body
        assert body["value"] == 9 and body["kind"] == "nps"
        assert s["dead"] == 0
    finally:
        hook.stop()


def test_webhook_with_raw_ids_and_a_refused_record_goes_to_dead_letters(store_factory):
    hook = WebhookReceiver(SECRET.encode()).start()
    try:
        store = store_factory({"name": "hook", "type": "webhook", "url": hook.url + "/hook",
                               "secret": SECRET, "raw_loyalty_ids": True, **FAST})
        hook.fail(1, 422, {"error": "cannot take it"})
        store.add([_closed(1), _closed(2)])
        store.start()
        store.wait("hook", sent=1, dead=1)
        dead = OutboxDB(store.path).dead("hook")
        assert dead[0]["record_id"] == f"{STORE}-R1" and "HTTP 422" in dead[0]["last_error"]
        assert hook.entries[f"{STORE}-R2"]["loyalty_id"] == "L-100"
        assert hook.entries[f"{STORE}-R2"]["extras"] == {"segment": "gold"}
        # A person fixed the cause: re-send the dead letter.
        assert OutboxDB(store.path).resend("hook") == 1
        store.wait("hook", sent=2, dead=0)
        assert f"{STORE}-R1" in hook.entries
    finally:
        hook.stop()


def test_wrong_webhook_secret_is_retried_not_lost(store_factory):
    hook = WebhookReceiver(b"the-receivers-other-secret").start()
    try:
        store = store_factory({"name": "hook", "type": "webhook", "url": hook.url + "/hook",
                               "secret": SECRET, "max_attempts": 3, **FAST})
        store.add([_closed(1)])
        store.start()
        store.wait("hook", dead=1)
        (dead,) = OutboxDB(store.path).dead()
        assert dead["attempts"] == 3 and "HTTP 401" in dead["last_error"]
        assert "check the credentials" in dead["last_error"] and hook.deliveries == 0
    finally:
        hook.stop()


# --- HubSpot ----------------------------------------------------------------------

HS = {"name": "crm", "type": "hubspot", "token": "pat-eu1-0123", "raw_loyalty_ids": True}


def test_hubspot_outage_rate_limits_and_lost_answers_lose_nothing_and_duplicate_nothing(
        store_factory):
    hs = HubSpotFake("pat-eu1-0123").start()
    try:
        store = store_factory({**HS, "base_url": hs.url, **FAST})
        members = [_closed(i, loyalty_id=f"L-{i % 3}", value=i % 11) for i in range(12)]
        store.add(members + [_closed(99, loyalty_id=None)])
        hs.down = True
        store.start()
        time.sleep(0.6)
        assert not hs.notes
        hs.down = False
        # Recovery, but rough: rate limits, a 500, and two requests that
        # were carried out whose answers were lost.
        hs.fail(2, 429, HUBSPOT_RATE_LIMIT, {"Retry-After": "0"})
        hs.fail(1, 500, {"status": "error", "message": "internal error"})
        hs.commit_then_fail(2)
        store.wait("crm", sent=13, pending=0, timeout=30)
        assert hs.shape_errors == []
        for r in members:
            assert len(hs.notes_for(marker(r["id"]))) == 1, r["id"]  # none lost, none twice
        assert len(hs.notes) == 12  # the non-member has no contact to attach to
        assert sorted(hs.contacts) == ["L-0", "L-1", "L-2"]
        body = hs.notes[hs.notes_for(marker(members[3]["id"]))[0]]["body"]
        assert "NPS 3 (detractor)" in body and "reasons: queue" in body
    finally:
        hs.stop()


def test_hubspot_late_answer_updates_the_same_note(store_factory):
    hs = HubSpotFake("pat-eu1-0123").start()
    try:
        store = store_factory({**HS, "base_url": hs.url, **FAST})
        store.add([_closed(1, value=None, outcome="no_reply")])
        store.start()
        store.wait("crm", sent=1)
        (nid,) = hs.notes_for(marker(f"{STORE}-R1"))
        assert "no rating (no_reply)" in hs.notes[nid]["body"]
        store.records.close(f"{STORE}-R1", {"outcome": "answered", "value": 10, "late": 1,
                                            "closed_ms": now_ms()})
        store.records.flush()
        store.wait("crm", sent=1, pending=0)
        deadline = time.monotonic() + 10
        while "NPS 10" not in hs.notes[nid]["body"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "NPS 10 (promoter)" in hs.notes[nid]["body"]
        assert hs.notes_for(marker(f"{STORE}-R1")) == [nid]
    finally:
        hs.stop()


def test_hubspot_bad_token_keeps_records_until_fixed(store_factory, tmp_path):
    hs = HubSpotFake("the-right-token").start()
    try:
        store = store_factory({**HS, "base_url": hs.url, **FAST})
        store.add([_closed(1)])
        store.start()
        s = store.wait("crm", pending=1)
        time.sleep(0.4)
        s = store.stats("crm")
        assert s["dead"] == 0 and "check the private app token" in s["last_error"]
        hs.token = "pat-eu1-0123"  # the installer fixed it on HubSpot's side
        store.wait("crm", sent=1)
    finally:
        hs.stop()


# --- Bitrix24 --------------------------------------------------------------------

def test_bitrix24_contacts_comments_limits_and_idempotency(store_factory):
    bx = Bitrix24Fake("s3cr3tw3bh00k").start()
    try:
        store = store_factory({"name": "b24", "type": "bitrix24",
                               "webhook_url": bx.webhook_url, "raw_loyalty_ids": False, **FAST})
        recs = [_closed(i, loyalty_id=f"L-{i % 2}", value=i) for i in range(6)]
        store.add(recs)
        bx.fail(3, 503, BITRIX_LIMIT)
        bx.commit_then_fail(1)
        bx.fail(1, 429, {"error": "OPERATION_TIME_LIMIT",
                         "error_description": "Method is blocked due to operation time limit."})
        store.start()
        store.wait("b24", sent=6, timeout=30)
        assert bx.shape_errors == []
        for r in recs:
            assert len(bx.comments_for(marker(r["id"]))) == 1
        # Pseudonymised: the CRM's contacts carry the keyed hash, not the card.
        assert {c["UF_CRM_LB_LOYALTY_ID"] for c in bx.contacts.values()} == {
            pseudonym(KEY, "L-0"), pseudonym(KEY, "L-1")}
    finally:
        bx.stop()


def test_bitrix24_wrong_webhook_secret_is_explained(store_factory):
    bx = Bitrix24Fake("s3cr3tw3bh00k").start()
    try:
        store = store_factory({"name": "b24", "type": "bitrix24", "raw_loyalty_ids": True,
                               "webhook_url": f"{bx.url}/rest/1/wrong/", **FAST})
        store.add([_closed(1)])
        store.start()
        deadline = time.monotonic() + 5
        while not store.stats("b24")["last_error"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "INVALID_CREDENTIALS" in store.stats("b24")["last_error"]
        assert store.stats("b24")["dead"] == 0
    finally:
        bx.stop()


# --- the chain's central PostgreSQL ------------------------------------------------

@pytest.fixture(scope="module")
def pg():
    server = PgServer().start()
    yield server
    server.stop()


def test_postgres_aggregator_upserts_survives_a_restart_and_never_duplicates(
        store_factory, pg, tmp_path):
    store = store_factory({"name": "chain", "type": "postgres", "dsn": pg.dsn, "batch": 20,
                           **FAST})
    store.add(_closed(i, loyalty_id=f"L-{i}", value=i % 11) for i in range(30))
    store.start()
    store.wait("chain", sent=30)
    with psycopg.connect(pg.dsn) as conn:
        assert conn.execute("SELECT value FROM lb_meta WHERE key = 'schema'").fetchone() == (
            str(postgres.SCHEMA_VERSION),)
        n, ids = conn.execute("SELECT COUNT(*), COUNT(DISTINCT loyalty_id) FROM lb_records"
                              ).fetchone()
        assert (n, ids) == (30, 30)
        lid = conn.execute("SELECT loyalty_id, value, reasons FROM lb_records WHERE id = %s",
                           (f"{STORE}-R3",)).fetchone()
        assert lid == (pseudonym(KEY, "L-3"), 3, ["queue"])
    # A re-send of everything (say, an operator re-queued it) changes nothing.
    db = OutboxDB(store.path)
    db.conn.execute("UPDATE outbox SET state = 'pending', next_ms = 0")
    store.wait("chain", sent=30, pending=0)
    with psycopg.connect(pg.dsn) as conn:
        assert conn.execute("SELECT COUNT(*) FROM lb_records").fetchone() == (30,)


def test_a_schema_1_central_database_gets_the_burst_column_and_keeps_its_rows(
        store_factory, pg):
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS old_chain")
        conn.execute("CREATE DATABASE old_chain")
    dsn = pg.dsn.rsplit("/", 1)[0] + "/old_chain"
    with psycopg.connect(dsn) as conn:  # what a host of the first version left
        for sql in postgres.MIGRATIONS[1]:
            conn.execute(sql)
        conn.execute("CREATE TABLE lb_meta (key text PRIMARY KEY, value text NOT NULL)")
        conn.execute("INSERT INTO lb_meta VALUES ('schema', '1')")
        conn.execute("INSERT INTO lb_records (id, store, member) VALUES ('s1-old', 's1', false)")
    store = store_factory({"name": "chain", "type": "postgres", "dsn": dsn, **FAST})
    store.add([_closed(1, value=0, burst=5)])
    store.start()
    store.wait("chain", sent=1)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT value FROM lb_meta WHERE key = 'schema'").fetchone() == (
            str(postgres.SCHEMA_VERSION),)
        rows = dict(conn.execute("SELECT id, burst FROM lb_records").fetchall())
    assert rows == {"s1-old": None, f"{STORE}-R1": 5}


def test_postgres_down_then_up_loses_nothing(store_factory, tmp_path):
    server = PgServer()
    dsn = server.dsn
    store = store_factory({"name": "chain", "type": "postgres", "dsn": dsn, **FAST})
    store.add(_closed(i) for i in range(10))
    store.start()
    time.sleep(0.5)
    s = store.stats("chain")
    assert s["pending"] == 10 and s["failures_in_a_row"] >= 1
    server.start()  # the same port and password: the database comes back
    try:
        store.wait("chain", sent=10, timeout=30)
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SELECT COUNT(*) FROM lb_records").fetchone() == (10,)
    finally:
        server.stop()


# --- the cloud reporter ----------------------------------------------------------------

def test_cloud_reporter_pushes_aggregates_without_ids(store_factory):
    cloud = CloudFake("cloud-token-1").start()
    try:
        store = store_factory(cloud={"url": cloud.url + "/v1/aggregates",
                                     "token": "cloud-token-1", "every_s": 5})
        store.add([_closed(1, value=10), _closed(2, value=3), _closed(3, value=None)])
        cloud.fail(1, 503, b"")
        store.start()
        deadline = time.monotonic() + 15
        while not cloud.pushes and time.monotonic() < deadline:
            time.sleep(0.05)
        push = cloud.pushes[0]
        day = push["days"][0]
        assert push["store"] == STORE and day["nps"]["n"] == 2 and day["nps"]["nps"] == 0.0
        assert day["response"]["declined"] == 1
        text = str(push)
        assert "L-100" not in text and "R1" not in text and pseudonym(KEY, "L-100") not in text
    finally:
        cloud.stop()


# --- retention ---------------------------------------------------------------------------

def test_retention_deletes_old_records_only_once_forwarded(tmp_path):
    store = RecordStore(tmp_path / "r.db", ["hook"])
    old = now_ms() - 40 * 86_400_000
    store.insert(_closed(1, received_ms=old))
    store.insert(_closed(2, received_ms=old))
    store.insert(_closed(3))
    store.flush()
    db = OutboxDB(tmp_path / "r.db")
    db.sent("hook", f"{STORE}-R1", None)
    deleted, held = db.purge(now_ms() - 30 * 86_400_000)
    assert (deleted, held) == (1, 1)
    left = [r[0] for r in db.conn.execute("SELECT id FROM records ORDER BY id").fetchall()]
    assert left == [f"{STORE}-R2", f"{STORE}-R3"]
    assert db.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 2
    store.stop()


def test_the_forwarder_runs_retention_with_no_destination_at_all(tmp_path):
    # retention_days alone (no CRM, no central database) still purges: the
    # forwarder owns retention, and a host with only that setting has one.
    store = RecordStore(tmp_path / "r.db", [])
    store.insert(_closed(1, received_ms=now_ms() - 40 * 86_400_000))
    store.insert(_closed(2))
    store.stop()
    fwd = _fwd(tmp_path, retention_days=30)
    assert fwd.destinations == []
    counters = Counter()
    forwarder = Forwarder(tmp_path / "r.db", fwd, STORE, timezone.utc, counters)
    forwarder.start()
    try:
        deadline = time.monotonic() + 10
        while counters["retention_deleted"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        forwarder.stop()
    assert counters["retention_deleted"] == 1
    db = OutboxDB(tmp_path / "r.db")
    assert [r[0] for r in db.conn.execute("SELECT id FROM records")] == [f"{STORE}-R2"]
    db.close()


# --- through the concentrator ----------------------------------------------------------

def test_a_real_answer_reaches_the_webhook_and_a_slow_crm_does_not_slow_the_store(
        tmp_path, broker, panels):
    hook = WebhookReceiver(SECRET.encode()).start()
    import socket
    hang = socket.socket()  # a CRM that takes the connection and never answers
    hang.bind(("127.0.0.1", 0))
    hang.listen(50)
    h = Host(tmp_path / "host", broker, forwarding={
        "pseudonym_key": KEY.decode(),
        "destinations": [
            {"name": "hook", "type": "webhook", "url": hook.url + "/hook", "secret": SECRET},
            {"name": "slow", "type": "webhook", "secret": SECRET, "timeout_s": 30,
             "url": f"http://127.0.0.1:{hang.getsockname()[1]}/hook"}]}).start()
    try:
        panel = panels.start("till-1")
        h.wait_online("till-1")
        for n in range(3):
            assert h.pos.send_http(receipt_doc("1", f"F{n}", loyalty_id=f"L-{n}"))[0] == 202
            panel.answer(f"{STORE}-F{n}", 8)
            panel.wait_screen("why", session=f"{STORE}-F{n}")
            panel.send("reasons queue")
            h.wait_record(f"{STORE}-F{n}", outcome="answered", value=8)
        deadline = time.monotonic() + 10
        while len(hook.entries) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hook.entries[f"{STORE}-F1"]["value"] == 8
        assert hook.entries[f"{STORE}-F1"]["reasons"] == ["queue"]
        assert hook.entries[f"{STORE}-F1"]["loyalty_id"] == pseudonym(KEY, "L-1")
        # The receiver has a record a moment before the worker marks it sent.
        h.wait(lambda: h.thread.status()["forwarding"]["hook"]["sent"] == 3, "3 sent to hook")
        status = h.thread.status()
        fwd = status["forwarding"]
        assert fwd["hook"]["sent"] == 3 and fwd["slow"]["pending"] == 3
        # The fleet the dashboard shows: the panel's own status and last answer.
        fleet = status["fleet"]["till-1"]
        assert fleet["state"] == "online" and fleet["fw"] and fleet["last_answer_ms"]
        assert status["tills"]["1"] == "till-1"
    finally:
        h.stop()
        hook.stop()
        hang.close()


# --- settings ----------------------------------------------------------------------------

def test_forwarding_settings_problems_are_all_listed(tmp_path):
    doc = {"destinations": [
        {"name": "a", "type": "fax"},
        {"name": "b", "type": "webhook", "url": "ftp://x"},
        {"name": "c", "type": "hubspot", "token": "t", "max_attempts": 0},
        {"name": "d", "type": "postgres", "dsn": "x", "dsn_file": "y"},
        {"name": "e", "type": "webhook", "url": "https://x", "secret": "0123456789abcdef"}],
        "cloud": {"url": "https://c"}, "retention_days": -1}
    _, problems = _parse_forwarding(doc, tmp_path)
    text = "\n".join(problems)
    for expected in ("type: must be one of webhook, hubspot, bitrix24, postgres",
                     "needs secret or secret_file", "max_attempts: must be a whole number",
                     "give one of dsn, dsn_file", "cloud: needs token or token_file",
                     "retention_days: must be a whole number",
                     "pseudonym_key or pseudonym_key_file is required"):
        assert expected in text, (expected, text)


def test_host_config_refuses_bad_forwarding(tmp_path):
    doc = {"store": "s1", "catalogue": "c.yaml", "database": "r.db",
           "forwarding": {"destinations": [{"name": "x", "type": "webhook"}]}}
    with pytest.raises(host_config.HostConfigError) as e:
        host_config.parse(doc, tmp_path)
    assert any("needs url" in p for p in e.value.problems)


def test_backoff_doubles_with_jitter_within_the_cap():
    for failures in range(1, 30):
        d = backoff_s(failures, 2.0, 3600.0)
        full = min(3600.0, 2.0 * 2 ** (failures - 1))
        assert full / 2 <= d <= full
    assert backoff_s(1, 2.0, 3600.0, after_s=30) >= 30
    assert backoff_s(1, 2.0, 60.0, after_s=1e6) <= 60


def _varied(n: int, seed: int) -> list[dict]:
    """Closed records of every kind the totals count differently: NPS, CSAT
    and choice answers, bursts, declines and timeouts, not asked, reasons
    (repeated ones too), members, adverts, emotions, several stores."""
    rnd = random.Random(seed)
    t0 = 1_767_225_600_000
    out = []
    for i in range(n):
        at = t0 + rnd.randrange(6 * 86_400_000)
        kind = rnd.choice(["nps", "nps", "csat", "choice", None])
        outcome = rnd.choice(["answered", "answered", "declined", "timeout", "no_reply"])
        value = {"nps": rnd.randint(0, 10), "csat": rnd.randint(1, 5),
                 "choice": rnd.choice(["yes", "no"])}.get(kind) if outcome == "answered" else None
        rec = _closed(i, loyalty_id=rnd.choice([None, "L-1", "L-2", "L-3"]), value=None,
                      id=f"s{i % 3}-R{i}", store=f"s{i % 3}", till=str(rnd.randint(1, 4)),
                      cashier=rnd.choice(["c1", "c2", None]), lang=rnd.choice(["ru", "en"]),
                      kind=kind, qid=kind and f"q-{kind}", outcome=outcome if kind else "not_asked",
                      asked_ms=at if kind else None, sale_ts=at // 1000, received_ms=at,
                      closed_ms=at + 5000, advert=rnd.choice(["a", "b", None]),
                      emotion=rnd.choice(["happy", "sad", None]),
                      burst=rnd.choice([None] * 8 + [3]),
                      reasons=rnd.choice([None, [], ["queue"], ["queue", "staff"],
                                          ["prices", "prices"]]) if value is not None else None)
        rec["value"] = value
        out.append(rec)
    return out


def _central_agrees_with_the_store(dsn: str, recs: list[dict]) -> None:
    """Every central breakdown (all stores, and one store) and the reasons
    equal a store report over the same records."""
    from loyalty_button.service import reports
    from loyalty_button.service.records import memory_db
    with psycopg.connect(dsn) as conn:
        for store in (None, "s1"):
            mine = [r for r in recs if store in (None, r["store"])]
            local = memory_db(mine)
            for by in postgres.CENTRAL_BY:
                got = postgres.breakdown(conn, by, store)
                want = reports.breakdown(local, by, timezone.utc)
                assert got == want, (store, by)
            assert postgres.reasons(conn, store) == reports.summary(local)["reasons"], store


def test_the_central_database_keeps_totals_by_the_store_reports_rules(pg):
    """The chain's totals, kept by PostgreSQL's trigger as records arrive,
    change and go, give the same figures as the store's own reports; a
    central database of schema 2 gets its existing rows counted."""
    from types import SimpleNamespace

    from loyalty_button.forward.payload import record_payload
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        for db in ("totals_chain", "totals_old"):
            conn.execute(f"DROP DATABASE IF EXISTS {db}")
            conn.execute(f"CREATE DATABASE {db}")
    base = pg.dsn.rsplit("/", 1)[0]
    dsn = base + "/totals_chain"
    sink = postgres.Postgres(SimpleNamespace(dsn=dsn, timeout_s=5))

    def send(recs):
        assert sink.send_batch([(record_payload(r, False, KEY), 0, None) for r in recs]) \
            == [None] * len(recs)
    recs = _varied(600, seed=5)
    send(recs)
    _central_agrees_with_the_store(dsn, recs)
    # Late answers and new estimates re-send records with other values...
    rnd = random.Random(6)
    changed = []
    for r in rnd.sample(recs, 150):
        r = dict(r, outcome="answered", value=rnd.randint(0, 10), kind="nps", qid="q-nps",
                 asked_ms=r["asked_ms"] or r["received_ms"], burst=None, emotion="surprise",
                 reasons=["staff"])
        changed.append(r)
    send(changed)
    by_id = {r["id"]: r for r in recs} | {r["id"]: r for r in changed}
    # ...and a DBA deletes a store's oldest records: the totals follow.
    gone = sorted((r for r in by_id.values() if r["store"] == "s2"),
                  key=lambda r: r["received_ms"])[:50]
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM lb_records WHERE id = ANY(%s)", ([r["id"] for r in gone],))
    for r in gone:
        del by_id[r["id"]]
    _central_agrees_with_the_store(dsn, list(by_id.values()))
    sink.close()

    # A store host's login with only the rights docs/forwarding.md lists
    # sends records; the totals follow, and it cannot write them itself.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS store_host")
        conn.execute("CREATE ROLE store_host LOGIN PASSWORD 'sh-pw'")
        conn.execute("GRANT INSERT, UPDATE, SELECT ON lb_records TO store_host")
        conn.execute("GRANT SELECT ON lb_meta TO store_host")
    host_dsn = f"postgresql://store_host:sh-pw@127.0.0.1:{pg.port}/totals_chain"
    limited = postgres.Postgres(SimpleNamespace(dsn=host_dsn, timeout_s=5))
    extra = [dict(r, id=f"s1-X{i}", store="s1") for i, r in enumerate(_varied(40, seed=8))]
    assert limited.send_batch([(record_payload(r, False, KEY), 0, None) for r in extra]) \
        == [None] * 40
    limited.close()
    by_id.update({r["id"]: r for r in extra})
    _central_agrees_with_the_store(dsn, list(by_id.values()))
    with psycopg.connect(host_dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE lb_totals SET promoters = promoters + 1")

    old = base + "/totals_old"
    with psycopg.connect(old) as conn:  # rows a host of schema 2 left
        for version in (1, 2):
            for sql in postgres.MIGRATIONS[version]:
                conn.execute(sql)
        conn.execute("CREATE TABLE lb_meta (key text PRIMARY KEY, value text NOT NULL)")
        conn.execute("INSERT INTO lb_meta VALUES ('schema', '2')")
        # Schema 2's columns: all but utc_offset_s (schema 4) and the
        # phone survey's two (schema 5), the last three.
        assert postgres.COLUMNS[-3:] == ("utc_offset_s", "phone_ref", "phone")
        cols = postgres.COLUMNS[:-3]
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO lb_records ({', '.join(cols)}) VALUES "
                            f"({', '.join('%s' for _ in cols)})",
                            [postgres._row(record_payload(r, False, KEY))[:-3] for r in recs])
    with psycopg.connect(old, autocommit=True) as conn:
        assert postgres.migrate(conn) == 2
    _central_agrees_with_the_store(old, recs)
    # The chain's reports, from the command line.
    run = subprocess.run([sys.executable, "-m", "loyalty_button.cli", "aggregator", "report",
                          "till", "--dsn", old, "--store", "s1"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    with psycopg.connect(old) as conn:
        assert json.loads(run.stdout) == postgres.breakdown(conn, "till", "s1") != []
    run = subprocess.run([sys.executable, "-m", "loyalty_button.cli", "aggregator", "report",
                          "day", "--dsn", base + "/no_such_db"], capture_output=True, text=True)
    assert run.returncode == 2 and "cannot report" in run.stderr, run.stderr


def test_a_destination_refusing_every_record_logs_three_errors_not_one_each(store_factory,
                                                                            caplog):
    """A CRM that changed a field refuses all 12 records: the dead letters
    hold all 12, the log three ERROR lines (then how many more, once the
    minute is over), not twelve."""
    import logging
    hook = WebhookReceiver(SECRET.encode()).start()
    try:
        store = store_factory({"name": "hook", "type": "webhook", "url": hook.url + "/hook",
                               "secret": SECRET, **FAST})
        hook.fail(12, 422, {"error": "unknown field 'c_value'"})
        store.add(_closed(i) for i in range(12))
        with caplog.at_level(logging.ERROR, logger="loyalty_button.forward.forwarder"):
            store.start()
            store.wait("hook", dead=12)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR
                  and "moved to dead letters" in r.getMessage()]
        assert len(errors) == 3
        assert len(OutboxDB(store.path).dead("hook")) == 12
    finally:
        hook.stop()


def test_a_record_re_closed_while_its_batch_is_in_flight_is_sent_again(tmp_path):
    """A late answer that re-closes a record while the record's earlier
    version is on its way: the destination's confirmation of the earlier
    version does not mark the new one sent; it goes too, and last."""
    from loyalty_button.forward.forwarder import Worker
    store = RecordStore(tmp_path / "records.db", ["d"])
    store.insert(_closed(1, value=3))
    store.flush()
    seen = []

    class Slow:
        """A destination that, while the first batch is in flight, sees the
        store re-close the record (a late answer: 10)."""

        def send_batch(self, items):
            seen.extend((p["id"], p["value"]) for p, _, _ in items)
            if len(seen) == 1:
                time.sleep(0.01)  # the new version gets a later updated_ms
                store.close(f"{STORE}-R1", {"outcome": "answered", "value": 10, "late": 1,
                                            "closed_ms": now_ms()})
                store.flush()
            return [None] * len(items)

        def close(self):
            pass
    dest = fconfig.Destination(name="d", type="webhook", raw_ids=True, batch=10)
    worker = Worker(tmp_path / "records.db", dest, None, Counter(), Slow())
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while len(seen) < 2:
            assert time.monotonic() < deadline, seen
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        worker.stop()
        worker.join(2)
        store.stop()
    assert seen == [(f"{STORE}-R1", 3), (f"{STORE}-R1", 10)]
    db = OutboxDB(tmp_path / "records.db")
    try:
        assert db.stats()["d"]["sent"] == 1 and db.stats()["d"]["pending"] == 0
    finally:
        db.close()
