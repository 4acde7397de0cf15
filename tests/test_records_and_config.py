"""The record store (one row per receipt, group commit, a bad write cannot
block the others) and the concentrator's settings file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml

from loyalty_button.service import config as host_config
from loyalty_button.service.config import HostConfigError
from loyalty_button.service.records import RecordStore, open_records
from loyalty_button.sim.store import EXAMPLES


def rec(i: int, **kw) -> dict:
    r = {"id": f"s1-R{i}", "store": "s1", "till": "1", "receipt": f"R{i}", "source": "udp",
         "sale_ts": 1, "received_ms": i, "state": "pending"}
    r.update(kw)
    return r


def test_a_record_id_is_stored_once_and_closed_in_place(tmp_path: Path):
    store = RecordStore(tmp_path / "r.db")
    store.insert(rec(1, loyalty_id="77"))
    store.insert(rec(1, loyalty_id="other"))  # the same receipt again
    store.close("s1-R1", {"outcome": "answered", "value": 9, "reasons": ["queue"],
                          "answer_id": "a1", "closed_ms": 5})
    store.flush()
    rows = open_records(tmp_path / "r.db")
    assert len(rows) == 1
    assert (rows[0]["loyalty_id"], rows[0]["state"], rows[0]["value"], rows[0]["reasons"]) == \
        ("77", "closed", 9, ["queue"])
    assert store.exists("s1-R1") and not store.exists("s1-R2")
    store.stop()


def test_many_writes_share_few_commits(tmp_path: Path):
    store = RecordStore(tmp_path / "r.db")
    for i in range(2000):
        store.insert(rec(i))
    store.flush()
    assert len(open_records(tmp_path / "r.db")) == 2000
    assert store.counters["db_batches"] < 200
    store.stop()


def test_a_write_the_database_refuses_does_not_take_the_batch_with_it(tmp_path: Path):
    store = RecordStore(tmp_path / "r.db")
    store.insert(rec(1))
    store.insert(rec(2, state=None))  # NOT NULL: can never be written
    store.insert(rec(3))
    store.flush()
    assert [r["id"] for r in open_records(tmp_path / "r.db")] == ["s1-R1", "s1-R3"]
    assert store.counters["db_refused"] == 1
    store.stop()


def test_the_database_is_in_wal_mode(tmp_path: Path):
    RecordStore(tmp_path / "r.db").stop()
    mode = sqlite3.connect(tmp_path / "r.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_the_shipped_settings_file_is_valid():
    cfg = host_config.load(EXAMPLES / "concentrator.yaml")
    assert cfg.store == "s1" and cfg.udp_port == 47800 and cfg.http_port == 8080
    assert cfg.catalogue == (EXAMPLES / "catalogue.yaml").resolve()
    assert cfg.pos_key and cfg.tz.key == "Europe/Moscow"


@pytest.mark.parametrize("change, expect", [
    ({"store": None}, "store: is required"),
    ({"store": "my store"}, "store: must be an id"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"broker": {"port": 70000}}, "broker.port"),
    ({"pos": {"key": "short"}}, "at least 16 characters"),
    ({"pos": {"key_file": "missing.key"}}, "cannot read"),
    ({"pos": {"udp_prot": 1}}, "pos.udp_prot: unknown setting"),
    ({"colour": "red"}, "colour: unknown setting"),
    ({"log_level": "LOUD"}, "log_level"),
])
def test_settings_mistakes_are_named(tmp_path: Path, change, expect):
    doc = {"store": "s1", "catalogue": "c.yaml", "database": "r.db"}
    doc.update(change)
    doc = {k: v for k, v in doc.items() if v is not None}
    with pytest.raises(HostConfigError) as e:
        host_config.parse(doc, tmp_path)
    assert any(expect in p for p in e.value.problems), e.value.problems


def test_key_file_is_read_relative_to_the_settings(tmp_path: Path):
    (tmp_path / "pos.key").write_text("0123456789abcdef0123\n")
    path = tmp_path / "concentrator.yaml"
    path.write_text(yaml.safe_dump({"store": "s1", "catalogue": "c.yaml", "database": "r.db",
                                    "pos": {"key_file": "pos.key"}}))
    assert host_config.load(path).pos_key == b"0123456789abcdef0123"


def test_refused_input_is_kept_but_capped(tmp_path: Path, monkeypatch):
    from loyalty_button.service import records
    monkeypatch.setattr(records, "MAX_REJECTS", 20)
    store = RecordStore(tmp_path / "r.db")
    for i in range(100):
        store.reject("udp:10.0.0.9", "unsigned", f"datagram {i}", b"x" * 5000)
        if i % 10 == 9:
            store.flush()
    store.flush()
    rows = sqlite3.connect(tmp_path / "r.db").execute(
        "SELECT detail, length(raw) FROM rejects ORDER BY n").fetchall()
    assert len(rows) <= 20 + 10
    assert rows[-1] == ("datagram 99", records.MAX_RAW)
    store.stop()


def test_the_host_writes_its_files_for_itself_and_warns_about_loose_secrets(tmp_path, broker,
                                                                           caplog):
    import logging
    from loyalty_button.sim.runner import ConcentratorProcess
    from loyalty_button.sim.store import write_config
    caplog.set_level(logging.WARNING)
    key = tmp_path / "host" / "pos.key"
    key.parent.mkdir()
    key.write_text("a-shared-key-of-enough-length\n")
    key.chmod(0o644)
    path = write_config(tmp_path / "host", "s1", broker.port, ["1"])
    doc = yaml.safe_load(path.read_text())
    doc["pos"].pop("key", None)
    doc["pos"]["key_file"] = "pos.key"
    doc["pos"]["token"] = "a-token-written-inline"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o644)
    host_config.load(path)
    loose = [r.getMessage() for r in caplog.records if "every user" in r.getMessage()]
    assert len(loose) == 2 and "pos.key_file" in loose[0] and "pos.token" in loose[1]
    key.chmod(0o600)
    path.chmod(0o600)
    caplog.clear()
    host_config.load(path)
    assert not [r for r in caplog.records if "every user" in r.getMessage()]
    # the real service process: what it writes is not world-readable
    conc = ConcentratorProcess(path, tmp_path / "host").start()
    conc.stop()
    cfg = host_config.load(path)
    written = [cfg.database, Path(str(cfg.database) + "-wal"), conc.log_path]
    for f in written:
        if f.exists():
            assert f.stat().st_mode & 0o007 == 0, (f, oct(f.stat().st_mode))
    assert cfg.database.exists() and conc.log_path.exists()


def test_a_record_store_made_world_readable_is_tightened(tmp_path, caplog):
    import logging
    caplog.set_level(logging.WARNING)
    db = tmp_path / "r.db"
    RecordStore(db).stop()
    assert db.stat().st_mode & 0o777 == 0o640
    db.chmod(0o644)
    RecordStore(db).stop()
    assert db.stat().st_mode & 0o777 == 0o640
    assert "readable by every user" in caplog.text
