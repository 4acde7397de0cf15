"""The store's dashboard (docs/reports.md, "Dashboard"): a web page served by the
concentrator, working with no internet (every asset ships in
dashboard_static/), behind a login whose users are set at install.

Everything it shows comes from reports.py (the same numbers as the CLI),
the concentrator's status (panel fleet, forwarding) and the outboxes
(dead letters, re-send)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from aiohttp import web

from . import health, reports
from .conn_cap import ConnectionCap
from .users import add_user, check_password, hash_password, read_users, remove_user  # noqa: F401
from .. import sealed
from ..forward.outbox import OutboxDB
from ..settings import warn_if_loose
from .records import memory_db
from .report_jobs import Computing, ReportJobs

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "dashboard_static"
COOKIE = "lb_session"


# --- users: users.py; here too, for the dashboard's CLI and its callers ----------

class _KnownUsers:
    """The users file, read again when it changes: a session holds while its
    user is there with the password they logged in with (a user removed, or
    whose password changed, is logged out at their next request)."""

    def __init__(self, path: Path):
        self.path = path
        self._stamp = None
        self._users: dict[str, str] = {}

    def stored(self, name: str) -> str | None:
        """The user's stored password hash, None when there is no such user."""
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp != self._stamp:
                self._users = read_users(self.path)
                self._stamp = stamp
        except OSError:
            return None
        return self._users.get(name)


# --- sessions: a random token the server remembers ----------------------------------

class Sessions:
    """Who is logged in: a random cookie value -> (user, expiry), kept in
    memory. Logging out forgets the token, so a copied cookie dies with it;
    a restart signs everyone out, which is fine."""

    def __init__(self, hours: int):
        self.ttl = hours * 3600
        self.active: dict[str, tuple[str, float]] = {}

    def make(self, user: str, stored: str | None = None) -> str:
        """stored: the user's password hash at log-in; the session lasts only
        while it is still theirs (see user())."""
        now = time.time()
        for token in [t for t, (_, _, until) in self.active.items() if until <= now]:
            del self.active[token]
        token = secrets.token_urlsafe(32)
        self.active[token] = (user, stored, now + self.ttl)
        return token

    def user(self, cookie: str | None, known: "_KnownUsers | None" = None) -> str | None:
        """The session's user; None when it expired or, with `known`, when the
        user is gone or their password changed since (the session ends)."""
        found = self.active.get(cookie) if isinstance(cookie, str) else None
        if found is None or found[2] <= time.time():
            return None
        if known is not None and known.stored(found[0]) != found[1]:
            self.end(cookie)
            return None
        return found[0]

    def end(self, cookie: str | None) -> None:
        if isinstance(cookie, str):
            self.active.pop(cookie, None)


# --- the app ------------------------------------------------------------------------

_GUESSES_PER_MINUTE = 10   # failed log-ins from one address, then 429 for the rest
# ... and for one user name from all addresses together (many addresses on a
# LAN guessing one manager's password); higher, so that a guesser locks the
# manager out less easily than they guess.
_GUESSES_PER_NAME = 30
# Password checks at once: each scrypt takes 16 MiB and a core's 50 ms;
# guesses sent by the hundred wait here instead of taking the host's memory.
_CHECKS_AT_ONCE = 2


class _Guesses:
    """Failed passwords of the last minute, by key (an address, a name)."""

    def __init__(self):
        self.seen: dict[str, list[float]] = {}

    def full(self, key: str, limit: int, now: float) -> bool:
        recent = [t for t in self.seen.get(key, []) if t > now - 60]
        self.seen[key] = recent
        return len(recent) >= limit

    def note(self, now: float, *keys: str) -> None:
        if len(self.seen) > 10000:  # addresses and names that stopped: forgotten
            for key in [k for k, v in self.seen.items() if not v or v[-1] <= now - 60]:
                del self.seen[key]
        for key in keys:
            self.seen.setdefault(key, []).append(now)

    def allowed(self, peer: str, name: str, now: float) -> tuple[str, str] | None:
        """The keys a password attempt from `peer` for `name` counts under,
        or None when either has guessed too often this minute."""
        keys = (f"address {peer}", f"name {name}")
        if self.full(keys[0], _GUESSES_PER_MINUTE, now) or \
                self.full(keys[1], _GUESSES_PER_NAME, now):
            return None
        return keys

    def forget(self, now: float, *keys: str) -> None:
        for key in keys:
            if now in self.seen.get(key, ()):
                self.seen[key].remove(now)


_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def login_page_response(request) -> web.Response:
    """The log-in page (the store's dashboard and the chain's: each serves
    its own i18n.js, which words it in the browser's language)."""
    html = (STATIC / "login.html").read_text(encoding="utf-8")
    return web.Response(text=html.replace(
        "{{error}}", '<span data-i18n="wrong_login">Wrong user name or password.</span>'
        if request.query.get("error") else ""), content_type="text/html")


async def security_headers(request, response):
    """Nothing but the dashboard's own files runs or shows on its pages, and
    no other site frames them; what carries records is not kept in a cache
    (the store's dashboard and the chain's)."""
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # (same-origin, not no-referrer: with no-referrer a browser sends
    # "Origin: null" on our own forms, and foreign() refuses them.)
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")


# Breakdowns that can be cut to a period (their totals are kept per hour).
PERIOD_BREAKDOWNS = ("weekday_hour", "hour", "day", "week", "till")


def make_app(cfg, status=lambda: {}, jobs: ReportJobs | None = None) -> web.Application:
    """cfg: HostConfig; status: the concentrator's status() (fleet, forwarding);
    jobs: where reports run (report_jobs.py; made here when not given)."""
    sessions = Sessions(cfg.dashboard_session_h)
    users_file = cfg.dashboard_users
    failures = _Guesses()
    checking = asyncio.Semaphore(_CHECKS_AT_ONCE)
    # Checked against for a name nobody has: a wrong name costs the same
    # time as a wrong password, so the time does not say which names exist.
    decoy = hash_password(secrets.token_urlsafe(16))

    async def password_ok(stored: str | None, password: str) -> bool:
        async with checking:
            ok = await asyncio.get_running_loop().run_in_executor(
                None, check_password, stored or decoy, password)
        return ok and stored is not None
    jobs = jobs or ReportJobs(cfg.database)

    known = _KnownUsers(Path(cfg.dashboard_users)) if cfg.dashboard_users else None

    @web.middleware
    async def auth(request, handler):
        if request.path in ("/login", "/static/style.css", "/static/i18n.js", "/static/lang.js",
                            "/static/login.js"):
            return await handler(request)
        user = sessions.user(request.cookies.get(COOKIE), known)
        if user is None:
            if request.path.startswith(("/api/", "/export/")):
                return web.json_response({"error": "log in first"}, status=401)
            raise web.HTTPFound("/login")
        return await handler(request)

    async def login_page(request):
        return login_page_response(request)

    async def login(request):
        form = await request.post()
        name, password = str(form.get("user", "")), str(form.get("password", ""))
        peer = request.remote or "?"
        now = time.monotonic()
        keys = failures.allowed(peer, name, now)
        if keys is None:
            raise web.HTTPTooManyRequests(text="too many failed log-ins; wait a minute")
        # The attempt counts before the (slow, threaded) password check, or
        # guesses sent in parallel would all pass this gate while the first
        # is still being checked; a good password gives its slot back.
        failures.note(now, *keys)
        try:
            users = await asyncio.get_running_loop().run_in_executor(None, read_users, users_file)
        except OSError as e:
            log.error("dashboard: cannot read the users file %s: %s", users_file, e)
            raise web.HTTPServiceUnavailable(text="the dashboard's users file is unreadable")
        stored = users.get(name)
        if not await password_ok(stored, password):
            log.warning("dashboard: failed log-in for %r from %s", name, peer)
            raise web.HTTPFound("/login?error=1")
        failures.forget(now, *keys)
        log.info("dashboard: %s logged in from %s", name, peer)
        resp = web.HTTPFound("/")
        resp.set_cookie(COOKIE, sessions.make(name, stored), httponly=True, samesite="Strict",
                        max_age=sessions.ttl)
        raise resp

    async def logout(request):
        sessions.end(request.cookies.get(COOKIE))
        resp = web.HTTPFound("/login")
        resp.del_cookie(COOKIE)
        raise resp

    async def index(request):
        return web.FileResponse(STATIC / "index.html")

    async def report(key: str, fn):
        """fn(conn) from the report thread, or 503 "computing" when it takes long."""
        if not Path(cfg.database).exists():  # no receipt yet: empty reports
            return fn(memory_db([]))
        try:
            return await jobs.get(key, fn)
        except sqlite3.OperationalError as e:
            log.error("dashboard: report %s failed: %s", key, e)
            raise web.HTTPServiceUnavailable(text=f"the report could not be computed: {e}")
        except Computing:
            raise web.HTTPServiceUnavailable(
                text='{"computing": true, "retry_after_s": 2}', content_type="application/json",
                headers={"Retry-After": "2"})

    def _range(request):
        q = request.query
        name = q.get("range", "all")
        try:
            period, previous = reports.date_range(name, cfg.tz, time.time(), q.get("from"),
                                                  q.get("to"))
        except ValueError as e:
            raise web.HTTPBadRequest(text=str(e))
        return name, period, previous

    async def api_summary(request):
        name, period, previous = _range(request)

        def compute(conn):
            out = reports.summary(conn, period)
            out["store"] = cfg.store
            out["records"] = reports.record_count(conn)
            out["range"] = {"name": name, "period": period}
            # The period just before, to compare with (none for all time).
            out["previous"] = reports.summary(conn, previous) if previous else None
            return out
        key = "summary" if period is None else f"summary:{period[0]}:{period[1]}"
        return web.json_response(await report(key, compute))

    async def api_answers(request):
        return web.json_response(await report("answers", reports.answers))

    async def api_phone(request):
        return web.json_response(await report("phone", reports.phone))

    def _by(request) -> str:
        by = request.query.get("by", "till")
        if by not in reports.BREAKDOWNS:
            raise web.HTTPBadRequest(text=f"unknown breakdown {by!r}")
        return by

    async def _breakdown(request) -> tuple[str, list[dict]]:
        """The breakdown the request names, for the page and its CSV. Those
        kept by the hour (time of day, days, weeks, tills) follow the range
        picked; the others are kept for all time."""
        by = _by(request)
        _, period, _ = _range(request) if by in PERIOD_BREAKDOWNS else (None, None, None)
        key = f"breakdown:{by}" + (f":{period[0]}:{period[1]}" if period else "")
        return by, await report(key, lambda conn: reports.breakdown(conn, by, cfg.tz, period))

    async def api_breakdown(request):
        by, rows = await _breakdown(request)
        return web.json_response({"by": by, "rows": rows})

    async def api_status(request):
        st = status()
        counters = st.get("counters") or {}
        dead = []
        if Path(cfg.database).exists():  # none before the first receipt
            db = OutboxDB(cfg.database)
            try:
                dead = db.dead()
            finally:
                db.close()
        return web.json_response({"fleet": st.get("fleet", {}), "panels": st.get("panels", {}),
                                  "tills": st.get("tills", {}),
                                  "forwarding": st.get("forwarding", {}), "dead": dead,
                                  "broker": st.get("broker"), "reports": dict(jobs.counters),
                                  "health": health.problems(st),
                                  "receipts": {"receipts": counters.get("receipts", 0),
                                               "panel_offline": counters.get(
                                                   "outcome_panel_offline", 0)},
                                  "names": (st.get("catalogue") or {}).get("names", {})})

    def foreign(request, what: str) -> bool:
        """A state change must come from our own page: the cookie is
        SameSite=Strict and, when the browser says where a request comes
        from, that must be our own origin."""
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            log.warning("dashboard: %s refused, it came from %s", what, origin)
            return True
        return False

    async def api_resend(request):
        # On top of foreign(): JSON, which a cross-site form cannot send
        # without a preflight.
        if foreign(request, "re-send"):
            return web.json_response({"error": "cross-origin request refused"}, status=403)
        if request.content_type != "application/json":
            return web.json_response({"error": "send Content-Type: application/json"},
                                     status=415)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "send a JSON object"}, status=400)
        dest = str(body.get("dest", ""))
        db = OutboxDB(cfg.database)
        try:
            n = db.resend(dest, body.get("ids") or None)
        finally:
            db.close()
        log.info("dashboard: re-sending %d dead letter(s) to %s", n, dest)
        return web.json_response({"resent": n})

    async def make_backup(request):
        """A store backup (appliance/store_backup.py), sealed with the
        passphrase the manager gives, downloaded. It carries every secret of
        the store: the manager's own password is asked again, and a wrong
        one counts as a failed log-in."""
        from ..appliance import store_backup
        if foreign(request, "a store backup"):
            raise web.HTTPForbidden(text="cross-origin request refused")
        form = await request.post()
        passphrase, user = str(form.get("passphrase", "")), sessions.user(
            request.cookies.get(COOKIE))

        def back(code: str):
            return web.HTTPSeeOther(f"/?backup_error={code}#backup")
        if passphrase != str(form.get("passphrase2", "")):
            raise back("mismatch")
        if sealed.check_passphrase(passphrase):
            raise back("short")
        peer, now = request.remote or "?", time.monotonic()
        keys = failures.allowed(peer, user, now)
        if keys is None:
            raise web.HTTPTooManyRequests(text="too many failed passwords; wait a minute")
        loop = asyncio.get_running_loop()
        stored = (await loop.run_in_executor(None, read_users, users_file)).get(user)
        if not await password_ok(stored, str(form.get("password", ""))):
            failures.note(now, *keys)
            log.warning("dashboard: store backup refused for %s from %s: wrong password",
                        user, peer)
            raise back("password")
        out = Path(tempfile.mkdtemp(dir=Path(cfg.database).parent, prefix=".store-backup-out-"))
        try:
            summary = await loop.run_in_executor(None, store_backup.make, Path(cfg.source),
                                                 passphrase, out)
            log.info("dashboard: %s made a store backup from %s (%d records)", user, peer,
                     summary.records)
            f = open(summary.file, "rb")
        except store_backup.StoreBackupError as e:
            log.error("dashboard: the store backup failed: %s", e)
            raise back("failed")
        finally:
            # Sent from the open file: no copy stays on the host, even when
            # the browser goes away half-way.
            shutil.rmtree(out, ignore_errors=True)
        with f:
            resp = web.StreamResponse(headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f'attachment; filename="{summary.file.name}"',
                "Content-Length": str(os.fstat(f.fileno()).st_size)})
            await resp.prepare(request)
            while chunk := await loop.run_in_executor(None, f.read, 1 << 20):
                await resp.write(chunk)
            await resp.write_eof()
        return resp

    async def export_records(request):
        if not Path(cfg.database).exists():
            raise web.HTTPServiceUnavailable(text="no records yet: the database does not exist")
        # The sqlite3 shell writes the CSV in its own process (reports.
        # export_command): this process only passes the bytes on.
        try:
            cmd = reports.export_command(cfg.database)
        except reports.ExportError as e:
            log.error("dashboard: cannot export: %s", e)
            raise web.HTTPServiceUnavailable(text=str(e))
        # Reads of up to 1 MiB: a year's export is ~300 MB, and each chunk
        # costs this process a loop turn and a socket write.
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE,
                                                    limit=1 << 20)
        resp = web.StreamResponse(headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{cfg.store}-records.csv"'})
        try:
            await resp.prepare(request)
            while chunk := await proc.stdout.read(1 << 20):
                await resp.write(chunk)
        finally:
            if not proc.stdout.at_eof():
                proc.kill()  # the browser went away
            err = await proc.stderr.read()
            if await proc.wait() not in (0, -9):
                log.error("dashboard: the export failed: %s", err.decode(errors="replace"))
        await resp.write_eof()
        return resp

    async def export_breakdown(request):
        by, rows = await _breakdown(request)
        return web.Response(text=reports.to_csv(rows), content_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{cfg.store}-by-{by}.csv"'})

    app = web.Application(middlewares=[auth])
    app.on_response_prepare.append(security_headers)
    app.add_routes([web.get("/login", login_page), web.post("/login", login),
                    web.get("/logout", logout), web.get("/", index),
                    web.get("/api/summary", api_summary), web.get("/api/breakdown", api_breakdown),
                    web.get("/api/answers", api_answers), web.get("/api/phone", api_phone),
                    web.get("/api/status", api_status), web.post("/api/resend", api_resend),
                    web.get("/export/records.csv", export_records),
                    web.post("/backup", make_backup),
                    web.get("/export/breakdown.csv", export_breakdown),
                    web.static("/static", STATIC)])
    app.on_cleanup.append(lambda app: _close(jobs))
    return app


async def _close(jobs: ReportJobs) -> None:
    jobs.close()


# Managers' browsers (a handful of connections each), some behind one address.
MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS = 256, 64


async def start(cfg, status, jobs: ReportJobs | None = None,
                counters=None) -> web.AppRunner:
    warn_if_loose(cfg.dashboard_users, "the dashboard's users file")
    # The same header timeout as the POS listener (pos.runner's reason).
    runner = web.AppRunner(make_app(cfg, status, jobs), access_log=None,
                           keepalive_timeout=cfg.request_timeout_s)
    await runner.setup()
    ConnectionCap("dashboard", MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS,
                  counters).install(runner)
    await web.TCPSite(runner, cfg.dashboard_bind, cfg.dashboard_port).start()
    log.info("dashboard on http://%s:%d/", cfg.dashboard_bind, cfg.dashboard_port)
    return runner


def cli(args) -> int:
    import getpass
    import sys
    if args.action in ("list-users", "remove-user"):
        try:
            if args.action == "list-users":
                for name in sorted(read_users(args.users)):
                    print(name)
                return 0
            remove_user(args.users, args.name)
        except (ValueError, OSError) as e:
            print(f"dashboard {args.action}: {e}", file=sys.stderr)
            return 2
        print(f"{args.name} can no longer log in; an open session ends at its next request")
        return 0
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else \
        getpass.getpass(f"password for {args.name}: ")
    try:
        add_user(args.users, args.name, password)
    except (ValueError, OSError) as e:
        print(f"cannot add the user: {e}", file=sys.stderr)
        return 2
    print(f"{args.name} can log in to the dashboard ({args.users})")
    return 0
