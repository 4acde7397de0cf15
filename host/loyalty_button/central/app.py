"""The central service's web application (docs/central.md): the stores'
ingest, the chain dashboard and its API. Nothing is kept in a worker
between requests (sessions and counts live in PostgreSQL), so any number
of workers can stand behind a balancer."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from .. import ratelimit
from ..forward import postgres
from ..service import reports
from ..service.dashboard import STATIC as STORE_STATIC, _Guesses, login_page_response, \
    security_headers
from ..service.users import check_password, hash_password
from . import ingest, phone, queries

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
COOKIE = "lb_central"
_CHECKS_AT_ONCE = 2


def make_app(cfg, pool, read_pool=None) -> web.Application:
    """cfg: CentralConfig; pool: an open psycopg_pool.AsyncConnectionPool;
    read_pool: one to a read replica, for what the dashboard shows."""
    counters: dict[str, int] = {}
    buckets = ratelimit.Buckets(cfg.store_batches_per_s, max(2.0, 2 * cfg.store_batches_per_s))
    ingesting = asyncio.Semaphore(cfg.ingest_at_once)
    checking = asyncio.Semaphore(_CHECKS_AT_ONCE)
    failures = _Guesses()
    decoy = hash_password(secrets.token_urlsafe(16))
    max_bytes = cfg.max_body_mb << 20
    cols: dict[str, str] = {}

    def count(name: str, n: int = 1) -> None:
        counters[name] = counters.get(name, 0) + n

    def connection(timeout: float = 5.0):
        return pool.connection(timeout=timeout)

    def reading(timeout: float = 5.0):
        """The dashboard's figures: from the replica when there is one (a
        session, a log-in and a subscription are the primary's)."""
        return (read_pool or pool).connection(timeout=timeout)

    # --- ingest ----------------------------------------------------------------------

    def refuse(status: int, reason: str, retry_after: float | None = None):
        headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after else None
        return web.json_response({"error": reason}, status=status, headers=headers)

    async def api_records(request):
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            count("ingest_unauthorised")
            return refuse(401, "send this store's token: Authorization: Bearer <token>")
        th = ingest.token_hash(auth[7:].strip())
        if not buckets.take(th):
            count("ingest_rate_limited")
            return refuse(429, "too many batches from this store; slow down",
                          1 / cfg.store_batches_per_s + 1)
        try:
            await asyncio.wait_for(ingesting.acquire(), 2.0)
        except asyncio.TimeoutError:
            count("ingest_busy")
            return refuse(503, "the service is busy; come back later", 5)
        try:
            return await _ingest(request, th)
        finally:
            ingesting.release()

    async def _ingest(request, th: str):
        import psycopg
        import psycopg_pool
        loop = asyncio.get_running_loop()
        store = None
        try:
            async with connection() as conn:
                cur = await conn.execute("SELECT store, revoked FROM lb_stores WHERE "
                                         "token_hash = %s", (th,))
                row = await cur.fetchone()
                if not cols:
                    cur = await conn.execute(postgres.COLUMNS_SQL)
                    cols.update(postgres.columns(await cur.fetchall()))
                    # The phone answer is this service's to set (phone.py),
                    # not the store's: a store's older copy never undoes it.
                    cols.pop("phone", None)
            if row is None or row[1]:
                count("ingest_unauthorised")
                log.warning("ingest: a batch from %s with an unknown or revoked token",
                            request.remote)
                return refuse(401, "this token is unknown or revoked: ask the central "
                                   "admin for the store's token")
            store = row[0]
            # No connection is held while the body arrives, and it is read
            # and checked off the event loop: the dashboard's requests on
            # this worker do not wait behind a big batch.
            body = await request.read()
            encoding = request.headers.get("Content-Encoding")

            def prepare():
                rows = ingest.check(ingest.decode(body, encoding, max_bytes), store, cols,
                                    cfg.max_batch_records)
                return rows, json.dumps(rows, ensure_ascii=False)
            try:
                rows, text = await loop.run_in_executor(None, prepare)
                async with connection() as conn:
                    stored = await _upsert(conn, store, rows, text)
            except ingest.BatchError as e:
                count("ingest_refused")
                log.warning("ingest: store %s: batch refused (%d): %s", store, e.status,
                            e.reason)
                async with connection() as conn:
                    await conn.execute("UPDATE lb_stores SET refused = refused + 1, "
                                       "last_refusal = %s WHERE store = %s",
                                       (e.reason[:500], store))
                return refuse(e.status, e.reason)
            count("ingest_batches")
            count("ingest_records", stored)
            return web.json_response({"stored": stored})
        except psycopg_pool.PoolTimeout:
            count("ingest_busy")
            return refuse(503, "the database is busy; come back later", 5)
        except psycopg.OperationalError as e:
            count("ingest_db_down")
            log.error("ingest: the database: %s", str(e).strip().splitlines()[0])
            return refuse(503, "the database is away; come back later", 10)

    async def _upsert(conn, store: str, rows: list[dict], text: str) -> int:
        """rows as JSON `text`, upserted in one statement and transaction."""
        sql = postgres.upsert_sql(cols)
        async with conn.transaction():
            cur = await conn.execute(sql, (text,))
            stored = len(await cur.fetchall())
            if stored != len(rows):
                cur = await conn.execute("SELECT id, store FROM lb_records WHERE id = ANY(%s) "
                                         "AND store <> %s LIMIT 3",
                                         ([r["id"] for r in rows], store))
                taken = await cur.fetchall()
                # Leaving the block by an exception rolls the whole batch back.
                raise ingest.BatchError(409, "record id(s) of another store: " + ", ".join(
                    f"{i[:64]}" for i, _ in taken))
            # A phone answer that came before its record joins it now.
            await conn.execute(
                "UPDATE lb_records AS r SET phone = a.doc FROM lb_phone_answers AS a "
                "WHERE r.id = ANY(%s) AND r.phone_ref IS NOT NULL AND a.store = r.store "
                "AND a.ref = r.phone_ref AND a.doc IS NOT NULL "
                "AND r.phone IS DISTINCT FROM a.doc", ([r["id"] for r in rows],))
            await conn.execute(
                "UPDATE lb_stores SET last_batch = now(), batches = batches + 1, "
                "records = records + %s WHERE store = %s", (stored, store))
        return stored

    async def api_status(request):
        """A store's health (forward/central.py Heartbeat): kept as it came,
        a small JSON object, for the fleet view."""
        import psycopg
        import psycopg_pool
        auth = request.headers.get("Authorization", "")
        th = ingest.token_hash(auth[7:].strip()) if auth.startswith("Bearer ") else None
        if th is None:
            return refuse(401, "send this store's token: Authorization: Bearer <token>")
        if not buckets.take(th):
            count("ingest_rate_limited")
            return refuse(429, "too many requests from this store; slow down",
                          1 / cfg.store_batches_per_s + 1)
        body = await request.read()
        try:
            doc = json.loads(body) if len(body) <= 65536 else None
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or ingest._json_ok(doc):
            return refuse(400, "send a JSON object of at most 64 KiB")
        try:
            health = {k: v for k, v in doc.items() if k != "phone"}
            async with connection() as conn:
                cur = await conn.execute(
                    "UPDATE lb_stores SET health = %s::jsonb, health_at = now() WHERE "
                    "token_hash = %s AND NOT revoked RETURNING store, number",
                    (json.dumps(health), th))
                row = await cur.fetchone()
                if row is None:
                    return refuse(401, "this token is unknown or revoked")
                reply = {"ok": True}
                grant = await phone.status_reply(conn, cfg, row[0], row[1], doc)
                if grant is not None:
                    reply["phone"] = grant
        except (psycopg_pool.PoolTimeout, psycopg.OperationalError):
            return refuse(503, "the database is busy or away; come back later", 10)
        count("status_reports")
        return web.json_response(reply)

    # --- sessions ----------------------------------------------------------------------

    async def session_user(request) -> str | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        async with connection() as conn:
            cur = await conn.execute(
                "SELECT s.name FROM lb_sessions AS s JOIN lb_users AS u USING (name) "
                "WHERE s.token_hash = %s AND s.expires > now() AND s.pwhash = u.pwhash",
                (ingest.token_hash(token),))
            row = await cur.fetchone()
        return row[0] if row else None

    @web.middleware
    async def auth(request, handler):
        if request.path in ("/login", "/healthz", "/api/v1/records", "/api/v1/status") or \
                request.path.startswith(("/static/", "/s/", "/S/")):
            return await handler(request)
        try:
            user = await session_user(request)
        except Exception as e:  # the database away: say so, not 500
            log.error("dashboard: cannot check the session: %s", e)
            raise web.HTTPServiceUnavailable(text="the database is away; try again shortly",
                                             headers={"Retry-After": "10"})
        if user is None:
            if request.path.startswith("/api/"):
                return web.json_response({"error": "log in first"}, status=401)
            raise web.HTTPFound("/login")
        request["user"] = user
        import psycopg
        import psycopg_pool
        try:
            return await handler(request)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as e:
            log.error("dashboard %s: the database: %s", request.path,
                      str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
            return web.json_response({"error": "the database is busy or away; try again "
                                               "shortly"}, status=503,
                                     headers={"Retry-After": "10"})

    def foreign(request) -> bool:
        origin = request.headers.get("Origin")
        return origin is not None and urlsplit(origin).netloc != request.host

    async def login_page(request):
        return login_page_response(request)

    async def login(request):
        if foreign(request):
            raise web.HTTPForbidden(text="cross-origin log-in refused")
        form = await request.post()
        name, password = str(form.get("user", ""))[:64], str(form.get("password", ""))[:1024]
        peer = request.remote or "?"
        now = time.monotonic()
        keys = failures.allowed(peer, name, now)
        if keys is None:
            raise web.HTTPTooManyRequests(text="too many failed log-ins; wait a minute")
        failures.note(now, *keys)
        async with connection() as conn:
            cur = await conn.execute("SELECT pwhash FROM lb_users WHERE name = %s", (name,))
            row = await cur.fetchone()
        stored = row[0] if row else None
        async with checking:
            ok = await asyncio.get_running_loop().run_in_executor(
                None, check_password, stored or decoy, password)
        if not ok or stored is None:
            log.warning("central dashboard: failed log-in for %r from %s", name, peer)
            raise web.HTTPFound("/login?error=1")
        failures.forget(now, *keys)
        token = secrets.token_urlsafe(32)
        async with connection() as conn:
            await conn.execute("DELETE FROM lb_sessions WHERE expires < now()")
            await conn.execute("INSERT INTO lb_sessions VALUES (%s, %s, %s, now() + "
                               "make_interval(hours => %s))",
                               (ingest.token_hash(token), name, stored, cfg.session_h))
        log.info("central dashboard: %s logged in from %s", name, peer)
        resp = web.HTTPFound("/")
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict",
                        max_age=cfg.session_h * 3600, secure=request.secure)
        raise resp

    async def logout(request):
        token = request.cookies.get(COOKIE)
        if token:
            async with connection() as conn:
                await conn.execute("DELETE FROM lb_sessions WHERE token_hash = %s",
                                   (ingest.token_hash(token),))
        resp = web.HTTPFound("/login")
        resp.del_cookie(COOKIE)
        raise resp

    async def healthz(request):
        try:
            async with connection(2.0) as conn:
                await conn.execute("SELECT 1")
        except Exception:
            return web.json_response({"ok": False, "counters": counters}, status=503)
        return web.json_response({"ok": True, "counters": counters})

    # --- the dashboard's API ----------------------------------------------------------

    def period_of(request):
        q = request.query
        try:
            return reports.range_days(q.get("range", "7d"), cfg.tz, time.time(), q.get("from"),
                                      q.get("to"))
        except ValueError as e:
            raise web.HTTPBadRequest(text=json.dumps({"error": str(e)}),
                                     content_type="application/json")

    def previous_of(period):
        if period is None:
            return None
        days = (period[1] - period[0]).days + 1
        try:
            return (date.fromordinal(period[0].toordinal() - days),
                    date.fromordinal(period[0].toordinal() - 1))
        except ValueError:  # before the year 1: there is no period before
            return None

    async def api_me(request):
        async with reading() as conn:
            me = await queries.me(conn, request["user"])
            me["stores"] = await queries.stores(conn, request["user"])
        me["regions"] = sorted({s["region"] for s in me["stores"]})
        me["timezone"] = cfg.timezone
        return web.json_response(me)

    async def api_league(request):
        period = period_of(request)
        region = request.query.get("region") or None
        async with reading() as conn:
            out = await queries.league(conn, request["user"], period, region,
                                       cfg.shrinkage_weight)
            prev = previous_of(period)
            out["previous"] = (await queries.summary(conn, request["user"], prev, region)
                               if prev else None)
        return web.json_response(out)

    async def api_trend(request):
        period = period_of(request)
        async with reading() as conn:
            rows = await queries.trend(conn, request["user"], period,
                                       request.query.get("region") or None,
                                       request.query.get("store") or None)
        return web.json_response({"days": rows})

    async def api_store(request):
        period = period_of(request)
        async with reading() as conn:
            out = await queries.store_detail(conn, request["user"],
                                             request.match_info["store"], period)
        if out is None:
            return web.json_response({"error": "no such store among yours"}, status=404)
        return web.json_response(out)

    async def api_fleet(request):
        async with reading() as conn:
            rows = await queries.fleet(conn, request["user"], cfg.silent_after_h,
                                       cfg.behind_after_min)
        return web.json_response({"stores": rows, "silent_after_h": cfg.silent_after_h,
                                  "behind_after_min": cfg.behind_after_min})

    async def api_subscriptions(request):
        user = request["user"]
        if request.method == "POST":
            if foreign(request) or request.content_type != "application/json":
                return web.json_response({"error": "send JSON from the dashboard"}, status=403)
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"error": "the body is not JSON"}, status=400)
            every = body.get("every") if isinstance(body, dict) else None
            if every not in ("daily", "weekly") or not isinstance(body.get("on"), bool):
                return web.json_response({"error": 'send {"every": "daily" or "weekly", '
                                                   '"on": true or false}'}, status=400)
            async with connection() as conn:
                if body["on"]:
                    await conn.execute("INSERT INTO lb_subscriptions (name, every) VALUES "
                                       "(%s, %s) ON CONFLICT DO NOTHING", (user, every))
                else:
                    await conn.execute("DELETE FROM lb_subscriptions WHERE name = %s AND "
                                       "every = %s", (user, every))
        async with connection() as conn:
            cur = await conn.execute("SELECT every FROM lb_subscriptions WHERE name = %s",
                                     (user,))
            subs = [r[0] for r in await cur.fetchall()]
            cur = await conn.execute(
                "SELECT every, first_day, last_day, state, attempts, last_error, sent_at "
                "FROM lb_report_sends WHERE name = %s ORDER BY first_day DESC LIMIT 20", (user,))
            sends = [{"every": e, "from": f.isoformat(), "to": t.isoformat(), "state": s,
                      "attempts": a, "last_error": err,
                      "sent_at": at.isoformat() if at else None}
                     for e, f, t, s, a, err, at in await cur.fetchall()]
        return web.json_response({"subscribed": subs, "sends": sends})

    async def index(request):
        return web.FileResponse(STATIC / "index.html")

    def shared(name: str):
        async def handler(request):
            return web.FileResponse(STORE_STATIC / name)
        return handler

    app = web.Application(middlewares=[auth], client_max_size=max_bytes)
    app.on_response_prepare.append(security_headers)
    app.add_routes([web.post("/api/v1/records", api_records),
                    web.post("/api/v1/status", api_status), web.get("/healthz", healthz),
                    web.get("/login", login_page), web.post("/login", login),
                    web.get("/logout", logout), web.get("/", index),
                    web.get("/api/me", api_me), web.get("/api/league", api_league),
                    web.get("/api/trend", api_trend), web.get("/api/store/{store}", api_store),
                    web.get("/api/fleet", api_fleet),
                    web.get("/api/subscriptions", api_subscriptions),
                    web.post("/api/subscriptions", api_subscriptions),
                    # The store dashboard's look, language picker and log-in script.
                    *[web.get(f"/static/{name}", shared(name))
                      for name in ("style.css", "lang.js", "login.js")],
                    web.static("/static/", STATIC)])
    if cfg.phone_base_url:
        app.add_routes(phone.routes(cfg, pool, count))
    return app

