"""What the chain dashboard and the e-mail reports show, read from the
totals the records' trigger keeps (forward/postgres.py), never from the
records one by one, by the store's own counting rules (service/rollup.py,
service/reports.py).

Who sees what is part of every query: each one reads only the stores in
VISIBLE for its user (a chain admin all, a region's user its region's, a
store manager one store), so no code path can forget the check."""

from __future__ import annotations

from datetime import date, timedelta

from ..forward.postgres import DAY_S
from ..service import reports, rollup
from ..service.rollup import Tally

EPOCH = date(1970, 1, 1)

# The stores user %(user)s may see.
VISIBLE = ("SELECT s.store FROM lb_stores AS s JOIN lb_users AS u ON u.name = %(user)s "
           "WHERE u.role = 'chain' OR (u.role = 'region' AND s.region = u.scope) "
           "OR (u.role = 'store' AND s.store = u.scope)")
_SUMS = ", ".join(f"SUM(t.{c})" for c in rollup.TALLIES)
FORMULA = "RS = (WAI × W + I × R) / (W + R)"


def day_slot(d: date) -> int:
    """A day's slot in the totals: that date's midnight read as UTC."""
    return (d - EPOCH).days * DAY_S


def slot_day(slot: int) -> date:
    return EPOCH + timedelta(days=slot // DAY_S)


def _scope(args: dict, region: str | None, store: str | None) -> str:
    """The stores a query of totals `t` reads: the user's, within a region
    and a store when given."""
    sql = f" WHERE t.store IN ({VISIBLE})"
    if region:
        sql += " AND t.store IN (SELECT store FROM lb_stores WHERE region = %(region)s)"
        args["region"] = region
    if store:
        sql += " AND t.store = %(store)s"
        args["store"] = store
    return sql


def _days(args: dict, period) -> str:
    """The period's day slots, or the all-time slot (period None)."""
    if period is None:
        return f" AND t.slot = {rollup.ALL_TIME_SLOT}"
    args.update(lo=day_slot(period[0]), hi=day_slot(period[1]))
    return " AND t.slot >= %(lo)s AND t.slot <= %(hi)s"


def _where(args: dict, period, region: str | None, store: str | None, dim: str) -> str:
    """The filter of a totals query: the user's stores, a region, a store,
    the period's days (or all time) in dimension `dim`."""
    args["dim"] = dim if period is None or dim != "all" else "all_days"
    return _scope(args, region, store) + " AND t.dim = %(dim)s" + _days(args, period)


async def _grouped(conn, user: str, by: str, period, region=None, store=None,
                   dim: str = "all") -> dict:
    """group -> Tally, grouped by `by` (a column of lb_totals)."""
    args = {"user": user}
    sql = f"SELECT {by}, {_SUMS} FROM lb_totals AS t" + _where(args, period, region, store, dim) \
        + " GROUP BY 1"
    cur = await conn.execute(sql, args)
    return {key: Tally(*(int(v) for v in sums)) for key, *sums in await cur.fetchall()}


async def me(conn, user: str) -> dict | None:
    cur = await conn.execute("SELECT name, role, scope, email, lang FROM lb_users "
                             "WHERE name = %s", (user,))
    row = await cur.fetchone()
    if row is None:
        return None
    return dict(zip(("name", "role", "scope", "email", "lang"), row))


async def stores(conn, user: str) -> list[dict]:
    cur = await conn.execute(f"SELECT store, name, region FROM lb_stores WHERE store IN "
                             f"({VISIBLE}) ORDER BY region, name, store", {"user": user})
    return [{"store": s, "name": n, "region": r} for s, n, r in await cur.fetchall()]


def shrunk(index: float | None, responses: int, average: float | None,
           weight: int) -> float | None:
    """A store's index pulled toward the average of the table by the
    weight of `weight` answers: RS = (WAI*W + I*R) / (W + R). A store with
    few answers sits near the average until its answers say otherwise."""
    if average is None:
        return index
    if index is None or responses == 0:
        return round(average, 1)
    return round((average * weight + index * responses) / (weight + responses), 1)


def _row(key: str, t: Tally) -> dict:
    return reports.breakdown_rows({key: t}, "key")[0]


async def league(conn, user: str, period, region: str | None = None,
                 weight: int = 50) -> dict:
    """The stores the user sees, worst first by their shrunk NPS, with the
    figures each store's own report gives for the same days."""
    known = [s for s in await stores(conn, user) if not region or s["region"] == region]
    groups = await _grouped(conn, user, "t.store", period, region)
    total = rollup.EMPTY
    for t in groups.values():
        total = rollup.add(total, t)
    chain = _row("", total)
    rows = []
    for s in known:
        row = {**s, **_row(s["store"], groups.get(s["store"], rollup.EMPTY))}
        del row["key"]
        row["score"] = shrunk(row["nps"], row["n"], chain["nps"], weight)
        rows.append(row)
    # Worst first; a store with no answers last (there is nothing to rank).
    rows.sort(key=lambda r: (r["score"] is None, r["score"] if r["score"] is not None else 0,
                             r["store"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    del chain["key"]
    return {"period": _period(period), "weight": weight, "formula": FORMULA,
            "chain": chain, "stores": rows}


def _period(period) -> dict:
    return ({"from": None, "to": None} if period is None
            else {"from": period[0].isoformat(), "to": period[1].isoformat()})


async def breakdown(conn, user: str, store: str, by: str, period) -> list[dict]:
    """A store's tills, cashiers or questions for a period."""
    if by not in ("till", "cashier", "question"):
        raise ValueError(f"unknown breakdown {by!r}")
    groups = await _grouped(conn, user, "t.key", period, store=store, dim=by)
    return reports.breakdown_rows({k or "(none)": t for k, t in groups.items() if t.n}, by)


async def reasons(conn, user: str, period, region=None, store=None) -> dict:
    args = {"user": user}
    sql = ("SELECT grp, reason, SUM(n) FROM lb_reason_totals AS t"
           + _scope(args, region, store) + _days(args, period))
    cur = await conn.execute(sql + " GROUP BY 1, 2 HAVING SUM(n) > 0 ORDER BY 1, 3 DESC, 2",
                             args)
    out: dict[str, dict[str, int]] = {}
    for grp, reason, n in await cur.fetchall():
        out.setdefault(grp, {})[reason] = int(n)
    return out


async def trend(conn, user: str, period, region=None, store=None) -> list[dict]:
    """Per day: NPS with its 95 % interval, answers and response rate."""
    args = {"user": user}
    if period is None:  # all time: every day there is
        where = _scope(args, region, store) + " AND t.dim = 'all_days'"
    else:
        where = _where(args, period, region, store, "all")
    cur = await conn.execute(f"SELECT t.slot, {_SUMS} FROM lb_totals AS t{where} GROUP BY 1 "
                             f"ORDER BY 1", args)
    out = []
    for slot, *sums in await cur.fetchall():
        row = _row("", Tally(*(int(v) for v in sums)))
        del row["key"]
        out.append({"day": slot_day(int(slot)).isoformat(), **row})
    return out


async def summary(conn, user: str, period, region=None, store=None) -> dict:
    groups = await _grouped(conn, user, "''", period, region, store)
    t = next(iter(groups.values()), rollup.EMPTY)
    out = reports._summary(t)
    out["receipts"] = t.n
    return out


async def phone(conn, user: str, period, region=None, store=None) -> dict:
    """The shoppers' phone survey for a period (docs/phone-survey.md): how
    many answered, and the phone's NPS with its interval."""
    args = {"user": user}
    sql = ("SELECT COALESCE(SUM(t.phone_n), 0), COALESCE(SUM(t.phone_promoters), 0), "
           "COALESCE(SUM(t.phone_passives), 0), COALESCE(SUM(t.phone_detractors), 0) "
           "FROM lb_totals AS t" + _where(args, period, region, store, "all"))
    cur = await conn.execute(sql, args)
    n, pro, pas, det = (int(v) for v in await cur.fetchone())
    return {"answers": n, "nps": reports.nps_counts(pro, pas, det)}


async def store_detail(conn, user: str, store: str, period) -> dict | None:
    """One store for a period: its summary, tills, cashiers, questions,
    reasons and trend; None when the user may not see it (or it is not)."""
    cur = await conn.execute(f"SELECT store, name, region FROM lb_stores WHERE store = "
                             f"%(store)s AND store IN ({VISIBLE})", {"user": user, "store": store})
    row = await cur.fetchone()
    if row is None:
        return None
    return {"store": row[0], "name": row[1], "region": row[2], "period": _period(period),
            "summary": await summary(conn, user, period, store=store),
            "tills": await breakdown(conn, user, store, "till", period),
            "cashiers": await breakdown(conn, user, store, "cashier", period),
            "questions": await breakdown(conn, user, store, "question", period),
            "reasons": await reasons(conn, user, period, store=store),
            "phone": await phone(conn, user, period, store=store),
            "trend": await trend(conn, user, period, store=store)}


async def fleet(conn, user: str, silent_after_h: float, behind_after_min: float) -> list[dict]:
    """Each store's link to the service and its health as it last said:
    when it was last heard of, its outbox (records waiting, since when),
    panels not online, batches refused, a revoked token; worst first."""
    cur = await conn.execute(
        f"SELECT store, name, region, revoked, token_hash IS NOT NULL, "
        f"EXTRACT(EPOCH FROM now() - GREATEST(last_batch, health_at)), batches, records, "
        f"refused, last_refusal, health, EXTRACT(EPOCH FROM now()) FROM lb_stores "
        f"WHERE store IN ({VISIBLE}) ORDER BY store", {"user": user})
    out = []
    for (store, name, region, revoked, has_token, age_s, batches, records, refused,
         last_refusal, health, now_s) in await cur.fetchall():
        health = health if isinstance(health, dict) else {}
        outbox = health.get("outbox") if isinstance(health.get("outbox"), dict) else {}
        own = health.get("health") if isinstance(health.get("health"), dict) else {}
        oldest = outbox.get("oldest_pending_ms")
        waited_s = (max(0, round(float(now_s) - oldest / 1000))
                    if isinstance(oldest, (int, float)) else None)
        offline = own.get("panels_offline") if isinstance(own.get("panels_offline"), list) \
            else []
        problems = []
        if revoked or not has_token:
            problems.append("no_token")
        if age_s is None:
            problems.append("never_reported")
        elif float(age_s) > silent_after_h * 3600:
            problems.append("silent")
        if waited_s is not None and waited_s > behind_after_min * 60:
            problems.append("behind")
        if offline:
            problems.append("panels_offline")
        if outbox.get("dead"):
            problems.append("dead_letters")
        out.append({"store": store, "name": name, "region": region,
                    "last_heard_s": None if age_s is None else round(float(age_s)),
                    "batches": batches, "records": records, "refused": refused,
                    "last_refusal": last_refusal, "pending": outbox.get("pending"),
                    "waiting_s": waited_s, "dead": outbox.get("dead"),
                    "tills": own.get("tills"), "panels_offline": [str(t) for t in offline],
                    "problems": problems})
    out.sort(key=lambda r: (-len(r["problems"]), r["store"]))
    return out
