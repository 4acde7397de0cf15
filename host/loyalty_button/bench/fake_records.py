"""A store database full of realistic made-up records, for `tools/bench
reports` and the tests that need a big store: 20 tills and 40 cashiers,
about 8 300 receipts a day between 08:00 and 22:00 (1M records is four
months), 40 % of shoppers with a loyalty card out of a base of 20 000 cards
(so a card comes back about weekly at four months),
the example catalogue's questions and rules, outcomes, scores, reasons,
adverts and the emotion probe's estimates in plausible shares."""

from __future__ import annotations

import random
from pathlib import Path

from ..service import records as records_db
from ..service import rollup

TILLS = [str(t) for t in range(1, 21)]
PER_DAY = 8300
MEMBERS = 20_000
ADVERTS = ["spring-sale", "fresh-bread", "coffee-2for1", "loyalty-card", None]
EMOTIONS = ["happy", "neutral", "sad", "surprise", "angry", "fear", "disgust"]
REASONS = ["queue", "staff", "range", "prices"]
OUTCOMES = (["answered"] * 60 + ["declined"] * 10 + ["timeout"] * 25 + ["superseded"] * 3
            + ["no_reply"] * 2)
NPS_WEIGHTS = [3, 1, 1, 2, 2, 4, 6, 10, 14, 22, 35]
START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def generate(n: int, seed: int = 1, start_ms: int = START_MS):
    """n records as insert parameters (records.RECORD_FIELDS order), oldest first."""
    rnd = random.Random(seed)
    members = [f"7700{i:08d}" for i in range(MEMBERS)]
    gap_ms = 14 * 3_600_000 // PER_DAY
    for i in range(n):
        day, nth = divmod(i, PER_DAY)
        at = start_ms + day * 86_400_000 + 5 * 3_600_000 + nth * gap_ms + rnd.randrange(gap_ms)
        till = TILLS[i % len(TILLS)]
        member = rnd.random() < 0.4
        items = rnd.randint(1, 40)
        lang = "ru" if rnd.random() < 0.85 else "en"
        rec = {"id": f"bench-R{i}", "store": "bench", "till": till, "receipt": f"R{i}",
               "panel": f"till-{till}", "loyalty_id": rnd.choice(members) if member else None,
               "cashier": f"c{int(till) * 2 - (nth // (PER_DAY // 2))}",
               "total": round(rnd.uniform(50, 5000), 2), "currency": "RUB", "items": items,
               "extras": {"channel": "till"}, "lang": lang, "source": "udp",
               "pos_msg_id": f"m{i}", "sale_ts": at // 1000, "received_ms": at,
               "state": "closed", "closed_ms": at + 9000, "updated_ms": at + 9000, "late": 0}
        if member:
            qid, kind, rule = "nps-member", "nps", "members"
        elif items >= 10 and rnd.random() < 0.5:
            qid, kind, rule = "found-all", "choice", "big-baskets"
        elif rnd.random() < 0.3:
            qid, kind, rule = "csat-visit", "csat", "others"
        else:
            qid = None
            rec.update(outcome="not_asked", reason="sample", rule="others")
        if qid:
            outcome = rnd.choice(OUTCOMES)
            rec.update(rule=rule, qid=qid, kind=kind, asked_ms=at + 40, outcome=outcome,
                       advert=rnd.choice(ADVERTS))
            if outcome == "answered":
                rec["answer_id"] = f"a{i}"
                rec["answer_ms"] = rnd.randint(800, 9000)
                rec["value"] = (rnd.choices(range(11), NPS_WEIGHTS)[0] if kind == "nps" else
                                rnd.randint(1, 5) if kind == "csat" else
                                rnd.choice(["all", "most", "little"]))
                if kind == "nps" and rnd.random() < 0.5:
                    rec["reasons"] = rnd.sample(REASONS, rnd.randint(1, 2))
                if rnd.random() < 0.01:
                    rec["burst"] = rnd.randint(4, 9)
            if rnd.random() < 0.7:
                emotion = rnd.choice(EMOTIONS)
                rec.update(probe="ok", emotion=emotion, emotions={emotion: 0.8},
                           c_value=rnd.randint(-100, 100), age_band="25-34",
                           gender=rnd.choice(["f", "m"]), probe_age_ms=rnd.randint(0, 900))
        yield records_db.encode_row(rec)


def fill(path: Path, n: int, seed: int = 1) -> Path:
    """A store database at `path` with n made-up records and their totals.
    The rows go in without the triggers, and the totals are counted once at
    the end (rollup.rebuild, as after a migration): much faster than a
    million closing transactions, and the same totals."""
    store = records_db.RecordStore(path)
    store.stop()
    conn = records_db.connect(path)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        for name in rollup.TRIGGER_NAMES:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        batch = []
        for row in generate(n, seed):
            batch.append(row)
            if len(batch) == 10_000:
                conn.executemany(records_db.INSERT, batch)
                batch.clear()
        conn.executemany(records_db.INSERT, batch)
        rollup.rebuild(conn)
        rollup.create(conn)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return Path(path)
