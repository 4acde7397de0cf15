"""The host's parsers as fuzz targets: each takes what a POS, a panel, the
probe or an operator can send or write, and may refuse it only with its own
error (ReceiptError, ProtocolError, a ProblemsError with the place). Any
other exception is a crash: the harness counts it and keeps the input."""

from __future__ import annotations

import copy
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from lbpanel import config as panel_config, protocol

from ..adverts.library import PlaylistError, parse_playlist
from ..probe import config as probe_config, messages as probe_messages
from ..problems import ProblemsError
from ..service import catalogue, config as host_config, receipt
from ..service.fleet import panel_message
from ..settings import load_yaml
from .mutate import Rng, mutate_bytes

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STORE = "s1"
KEY = b"fuzzing-shared-key-0123"

# Values of the wrong kind, put where a document holds something else.
ODD = (None, True, False, 0, -1, 1 << 70, 1.5, math.nan, math.inf, "", "x" * 300, "\udcff",
       "a/b#+", "../../etc/passwd", [], {}, [[1]], {"a": {"b": [None]}}, ["x"] * 50)


def _places(node, out, parent=None, key=None):
    out.append((parent, key))
    if isinstance(node, dict):
        for k, v in node.items():
            _places(v, out, node, k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _places(v, out, node, i)


def mutate_doc(rng: Rng, doc):
    """One to three edits of a parsed document: a value of the wrong kind,
    a key removed or added, a node moved elsewhere."""
    doc = copy.deepcopy(doc)
    for _ in range(1 + rng.below(3)):
        places: list = []
        _places(doc, places)
        parent, key = rng.pick(places)
        value = copy.deepcopy(rng.pick(ODD))
        op = rng.below(4)
        if parent is None:
            if op == 0:
                doc = value
            continue
        if op == 0:
            parent[key] = value
        elif op == 1:
            del parent[key]
        elif op == 2:
            if isinstance(parent, dict):
                parent["k%d" % rng.below(5)] = value
            else:
                parent.insert(key, value)
        else:
            donor = rng.pick(places)
            if donor[0] is not None and donor[0] is not parent:
                parent[key] = copy.deepcopy(donor[0][donor[1]])
    return doc


@dataclass
class Target:
    name: str
    make: Callable[[Rng], object]      # one case
    run: Callable[[object], None]      # the parser; raises `expected` to refuse
    expected: tuple


def _receipts() -> list[dict]:
    base = {"v": 1, "type": "receipt", "id": "t1-1", "ts": 1795334470, "store": STORE,
            "till": "1", "receipt": "R-000123"}
    full = dict(base, loyalty_id="7700123", cashier="c-7", total=1234.5, currency="RUB",
                items=3, extras={"channel": "app", "coupon": "X1"})
    return [base, full]


def _json_case(rng: Rng, docs: list, pool: list) -> bytes:
    if rng.chance(2):
        return mutate_bytes(rng, rng.pick(pool), pool)
    return json.dumps(mutate_doc(rng, rng.pick(docs)), ensure_ascii=rng.chance(2)).encode(
        "utf-8", "surrogatepass")


def _panel_samples() -> list[tuple[str, bytes]]:
    answer = protocol.envelope("answer", "a0000000000000a1", 1795334470, STORE, "till-1")
    answer.update(session="s1-R-1", qid="nps", kind="nps", outcome="answered", value=9,
                  reasons=["staff"], answer_ms=2310, shown_ms=6120, advert="ad1", burst=3)
    declined = dict(answer, outcome="declined", value=None, id="a0000000000000a2")
    del declined["answer_ms"]
    status = protocol.envelope("status", "b000000000000001", 1795334470, STORE, "till-1")
    status.update(state="online", fw="1.2.0", uptime_s=60, outbox=0,
                  counters={"connects": 1, "rx_malformed": 2}, board="cyd")
    offline = protocol.envelope("status", "b000000000000002", 1795334470, STORE, "till-1")
    offline["state"] = "offline"
    return [(protocol.panel_topic(STORE, "till-1", m["type"]), protocol.encode(m))
            for m in (answer, declined, status, offline)]


def _panel_message_target() -> Target:
    samples = _panel_samples()
    pool = [p for _, p in samples]
    docs = [json.loads(p) for p in pool]

    def make(rng):
        topic = rng.pick(samples)[0]
        if rng.chance(20):
            topic = mutate_bytes(rng, topic.encode()).decode("utf-8", "replace")
        return topic, _json_case(rng, docs, pool)

    def run(case):
        got = panel_message(STORE, *case)
        if got is not None:
            protocol.encode(got[2])  # what was taken must encode again
    return Target("panel_message", make, run, (protocol.ProtocolError,))


def _probe_message_target() -> Target:
    req = probe_messages.request("9f2c41d07a1be3c5", 1795333491, STORE, "1", "s1-R-1",
                                 1795333491120)
    est = probe_messages.estimate("0c5d8e7f11a2b3c4", 1795333491, STORE, req, "ok", age_ms=140,
                                  faces=1, emotion="happy", c_value=93,
                                  emotions={e: 0.1 for e in probe_messages.EMOTIONS},
                                  age_band="25-34", gender="female")
    st = probe_messages.status("1d", 1795333400, STORE, "online", tills=["1", "2"],
                               age_gender=False)
    docs = [est, st]
    pool = [json.dumps(d).encode() for d in docs]

    def make(rng):
        return rng.pick(("probe_estimate", "probe_status")), _json_case(rng, docs, pool)
    return Target("probe_message", make, lambda c: probe_messages.decode(c[1], c[0]),
                  (protocol.ProtocolError,))


def _pos_targets() -> list[Target]:
    docs = _receipts()
    pool = [json.dumps(d).encode() for d in docs]

    def datagram(rng):
        body = _json_case(rng, docs, pool)
        return receipt.sign(body, KEY) if rng.below(4) else mutate_bytes(rng, body, pool)

    def run_datagram(data):
        receipt.validate(receipt.open_datagram(data, KEY), STORE)

    def run_body(data):
        receipt.validate(receipt.parse_json(data), STORE)
    return [Target("pos_datagram", datagram, run_datagram, (receipt.ReceiptError,)),
            Target("pos_http_body", lambda rng: _json_case(rng, docs, pool), run_body,
                   (receipt.ReceiptError,))]


def _yaml_case(rng: Rng, doc, text: str) -> str:
    if rng.chance(2):
        return mutate_bytes(rng, text.encode()).decode("utf-8", "replace")
    return yaml.safe_dump(mutate_doc(rng, doc), allow_unicode=rng.chance(2), sort_keys=False)


def _operator_targets(work: Path) -> list[Target]:
    cat_text = (EXAMPLES / "catalogue.yaml").read_text(encoding="utf-8")
    cat_doc = load_yaml(cat_text)
    playlist = {"adverts": [{"id": "spring", "file": "spring.png", "seconds": 8},
                            {"id": "coffee", "file": "coffee.jpg", "seconds": 5,
                             "panels": ["till-1", "till-2"]}]}
    play_text = yaml.safe_dump(playlist)

    def run_playlist(text):
        parse_playlist(load_yaml(text), "playlist.yaml")

    host_doc = load_yaml((EXAMPLES / "concentrator.yaml").read_text(encoding="utf-8"))
    probe_doc = load_yaml((EXAMPLES / "probe.yaml").read_text(encoding="utf-8"))
    panel_doc = {"store": STORE, "panel_id": "till-1", "board": "cyd",
                 "broker": {"host": "192.168.1.10", "port": 1883, "user": "till-1",
                            "password": "secret"},
                 "wifi": {"ssid": "shop", "password": "pw"}, "timeout_s": 20,
                 "outbox": {"dir": "outbox", "max_entries": 100}, "log_level": "INFO"}
    settings_errors = (ProblemsError, yaml.YAMLError)
    return [
        Target("catalogue", lambda rng: _yaml_case(rng, cat_doc, cat_text), catalogue.parse,
               (catalogue.CatalogueError,)),
        Target("playlist", lambda rng: _yaml_case(rng, playlist, play_text), run_playlist,
               (PlaylistError, yaml.YAMLError)),
        Target("settings_host", lambda rng: mutate_doc(rng, host_doc),
               lambda doc: host_config.parse(doc, work), settings_errors),
        Target("settings_probe", lambda rng: mutate_doc(rng, probe_doc),
               lambda doc: probe_config.parse(doc, work), settings_errors),
        Target("settings_panel", lambda rng: mutate_doc(rng, panel_doc), panel_config.parse,
               (panel_config.ConfigError,)),
    ]


def _setup_form_target() -> Target:
    """The set-up page's form as anyone on the LAN may send it: read,
    checked and shown again, never a crash (nothing is written)."""
    from ..appliance import setup_page
    form = {"store": "msk-12", "timezone": "Europe/Moscow", "tills": "1, 2 3",
            "admin": "manager", "admin_password": "manager-pass-1", "wifi_ssid": "shop-pos",
            "wifi_password": "wifi-pass-123", "broker_host": "192.168.10.2", "board": "cyd",
            "lang": "ru"}
    texts = [v for v in form.values()] + ["", " ", "\x00", "\n", "a:b", "Ω" * 40,
                                          "\udcff", "999999999999", "1" * 5000, "::1",
                                          "Mars/Olympus", "../../etc", "<script>", "\u202e"]

    def make(rng):
        case = dict(form)
        for _ in range(1 + rng.below(4)):
            key = rng.pick(list(form) + ["extra"])
            if rng.chance(4):
                case.pop(key, None)
            else:
                value = rng.pick(texts)
                case[key] = value if rng.chance(2) else \
                    mutate_bytes(rng, value.encode("utf-8", "surrogatepass")).decode(
                        "utf-8", "surrogateescape")
        return case, rng.pick(("ru", "en"))

    def run(case):
        values, _, found, by_field = setup_page.read_form(*case)
        setup_page.form_html(values, [], case[1], by_field).encode("utf-8", "surrogatepass")
    return Target("setup_form", make, run, ())


def _ota_manifest_target() -> Target:
    """A bundle's manifest as the panel reads it before it downloads."""
    from lbpanel import ota
    files = {"lbpanel/app.mpy": {"sha256": "a" * 64, "size": 10},
             "lbpanel/flow.mpy": {"sha256": "b" * 64, "size": 20},
             "main.py": {"sha256": "c" * 64, "size": 5}}
    doc = {"board": "cyd", "version": "0.2.0", "id": "x", "files": files}
    pool = [json.dumps(doc).encode()]

    def make(rng):
        case = dict(copy.deepcopy(doc))
        if rng.chance(3):  # a name that tries to leave the slot
            case["files"][rng.pick(("../main.py", "/boot.py", "a/../../b", "lbpanel/\x00"))] = \
                {"sha256": "d" * 64}
            return json.dumps(case).encode()
        return _json_case(rng, [doc], pool)

    def run(data):
        for rel, _ in ota.read_manifest(data, "cyd", "0.2.0"):
            if not ota.safe_name(rel):
                raise AssertionError(f"taken: {rel!r}")  # a crash: it must be refused
    return Target("ota_manifest", make, run, (ota.UpdateError,))


def _restore_schema_target(work: Path) -> Target:
    """A records file handed over for a restore: its schema, meta and
    objects changed (a trigger, a view named like a table, a schema version
    of any kind), or its bytes damaged. check_database refuses in words."""
    import shutil
    import sqlite3
    from ..appliance import backup
    from ..service.records import RecordStore
    good = work / "restore-good.db"
    store = RecordStore(good)
    store.stop()
    conn = sqlite3.connect(good)
    conn.execute("PRAGMA journal_mode=DELETE")  # one file, as a backup is
    conn.close()
    names = ["records", "meta", "outbox", "rollup", "rollup_insert_0", "evil", "x y", '"q"']
    edits = [
        lambda rng: f"UPDATE meta SET value = {rng.pick(('NULL', '-1', chr(39) + 'x' + chr(39), '0', '99', '1e3', '7.5'))} WHERE key = 'schema'",
        lambda rng: "DELETE FROM meta",
        lambda rng: f'CREATE TRIGGER "{rng.pick(names)}" AFTER INSERT ON records BEGIN '
                    f"DELETE FROM outbox; END",
        lambda rng: f'CREATE VIEW "{rng.pick(names)}" AS SELECT 1',
        lambda rng: f'CREATE TABLE "{rng.pick(names)}" (a)',
        lambda rng: f'DROP TABLE "{rng.pick(names)}"',
        lambda rng: f'ALTER TABLE records RENAME TO "{rng.pick(names)}"',
        lambda rng: f'CREATE INDEX "{rng.pick(names)}" ON records (receipt)',
    ]
    case_path = work / "restore-case.db"

    def make(rng):
        return [rng.pick(edits)(rng) for _ in range(1 + rng.below(3))], \
            rng.below(5) == 0, rng.below(1 << 30)

    def run(case):
        sql, damage, where = case
        shutil.copyfile(good, case_path)
        conn = sqlite3.connect(case_path)
        # Edits in memory, no fsync: the file is thrown away after the case.
        conn.execute("PRAGMA journal_mode=MEMORY")
        conn.execute("PRAGMA synchronous=OFF")
        for statement in sql:
            try:
                conn.execute(statement)
            except sqlite3.Error:
                pass  # an edit SQLite itself refuses: the file stays as it was
        conn.commit()
        conn.close()
        if damage:
            data = bytearray(case_path.read_bytes())
            data[where % len(data)] ^= 0xFF
            case_path.write_bytes(bytes(data))
        backup.check_database(case_path)
        backup.drop_triggers(case_path)
    return Target("restore_schema", make, run, (backup.BackupError,))


def _central_batch_target() -> Target:
    """A batch of records as a store host (or anyone with a token) sends it
    to the central service: gzip'd or not, of any shape. The ingest may
    refuse it only with a BatchError; what it takes must be rows
    PostgreSQL can store (text without NUL or lone surrogates, numbers in
    range) and encode as the upsert's JSON."""
    import gzip
    from ..central import ingest
    from ..forward.postgres import COLUMNS
    # lb_records' column types, as PostgreSQL reports them (information_schema).
    types = {"member": "boolean", "late": "boolean", "total": "numeric",
             **{c: "integer" for c in ("items", "answer_ms", "burst", "c_value",
                                       "utc_offset_s")},
             **{c: "bigint" for c in ("sale_ts", "asked_ms", "closed_ms")},
             **{c: "jsonb" for c in ("value", "reasons", "emotions", "extras", "phone")}}
    cols = {c: types.get(c, "text") for c in COLUMNS}
    rec = {"id": "s1-R-1", "store": STORE, "till": "1", "receipt": "R-1", "panel": "till-1",
           "loyalty_id": "p-0123", "member": True, "cashier": "Попова М.", "total": 1234.5,
           "currency": "RUB", "items": 3, "lang": "ru", "sale_ts": 1795334470, "rule": "all",
           "qid": "nps", "kind": "nps", "asked_ms": 1795334471000, "outcome": "answered",
           "value": 9, "reasons": ["staff"], "answer_ms": 2310, "late": False,
           "closed_ms": 1795334480000, "emotions": {"happy": 0.8}, "utc_offset_s": 10800}
    docs = [{"records": [rec]}, {"records": [rec, dict(rec, id="s1-R-2", value=3)]}]
    pool = [json.dumps(d).encode() for d in docs]

    def make(rng):
        body = _json_case(rng, docs, pool)
        if rng.chance(3):
            return gzip.compress(body) if rng.chance(2) else mutate_bytes(
                rng, gzip.compress(body)), "gzip"
        return body, rng.pick((None, "identity", "br"))

    def run(case):
        body, encoding = case
        rows = ingest.check(ingest.decode(body, encoding, 1 << 20), STORE, cols, 100)
        json.dumps(rows, ensure_ascii=False).encode("utf-8")
        for row in rows:
            for col, kind in cols.items():
                if ingest._field_problem(col, kind, row.get(col)):
                    raise AssertionError(f"taken: {col}={row.get(col)!r}")
    return Target("central_batch", make, run, (ingest.BatchError,))


def _phone_form_target() -> Target:
    """A shopper's phone survey link and form as anyone on the internet may
    send them (docs/phone-survey.md): the link is refused only as BadToken,
    the form only as FormError/ValueError; what is taken are scores in
    range, offered options and comments of at most MAX_COMMENT characters
    without control characters, and the page shown again encodes."""
    import unicodedata
    from urllib.parse import parse_qs
    from .. import phone_link
    from ..central import phone
    survey = {"languages": ["ru", "en"], "default_lang": "ru", "questions": [
        {"qid": "n", "kind": "nps", "text": {"ru": "Н?", "en": "N?"}},
        {"qid": "c", "kind": "choice", "text": {"ru": "В?", "en": "C?"},
         "options": [{"id": "a", "text": {"ru": "А", "en": "A"}}]},
        {"qid": "t", "kind": "comment", "text": {"ru": "Т?", "en": "T?"}}]}
    key = b"k" * 32
    token = phone_link.make(key, 12, "s1-R-1", 2_000_000_000)
    bodies = [b"lang=ru&q0=9&q1=a&q2=hello", b"q0=10", b"q2=" + b"x" * 1000,
              b"q0=0&q0=1&q2=%00%0D%0A", b"lang=en&q2=%F0%9F%98%80<b>"]

    def make(rng):
        tok = token if rng.chance(3) else mutate_bytes(rng, token.encode()).decode(
            "latin-1")
        return tok, mutate_bytes(rng, rng.pick(bodies), bodies) if rng.chance(2) \
            else rng.pick(bodies)

    def run(case):
        tok, body = case
        try:
            phone_link.verify(phone_link.parse(tok), key, 1_900_000_000)
        except phone_link.BadToken:
            pass
        form = parse_qs(body[:phone.MAX_FORM].decode("utf-8", "replace"), max_num_fields=20)
        try:
            doc = phone.read_answers(survey, form, "ru")
        except phone.FormError as e:
            phone.form_page(survey, "ru", "/S/X", {k: v[0] for k, v in form.items()}, str(e)) \
                .encode("utf-8")
            raise
        for qid, value in doc["answers"].items():
            ok = {"n": lambda v: isinstance(v, int) and 0 <= v <= 10,
                  "c": lambda v: v == "a",
                  "t": lambda v: isinstance(v, str) and 0 < len(v) <= phone.MAX_COMMENT and all(
                      c in "\n\t" or unicodedata.category(c)[0] != "C" for c in v)}[qid]
            if not ok(value):
                raise AssertionError(f"taken: {qid}={value!r}")
    return Target("phone_form", make, run, (phone.FormError, ValueError))


def host_targets() -> list[Target]:
    work = Path(tempfile.mkdtemp(prefix="lb-fuzz-"))
    return (_pos_targets() + [_panel_message_target(), _probe_message_target()]
            + _operator_targets(work)
            + [_setup_form_target(), _ota_manifest_target(), _restore_schema_target(work),
               _central_batch_target(), _phone_form_target()])
