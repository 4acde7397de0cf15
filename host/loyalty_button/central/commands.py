"""`loyalty-button central ...`: run the service, set it up, and manage its
stores (tokens) and users (docs/central.md)."""

from __future__ import annotations


import asyncio
import getpass
import json
import logging
import secrets
import sys
from pathlib import Path

from ..service.users import hash_password
from . import config as central_config, ingest, schema

log = logging.getLogger(__name__)


def _password(args, what: str) -> str:
    if getattr(args, "password_stdin", False):
        pw = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        pw = getpass.getpass(f"{what}: ")
    else:
        raise SystemExit(f"give the password on stdin with --password-stdin ({what})")
    if len(pw) < 8:
        raise SystemExit("a password needs at least 8 characters")
    return pw


def _connect(cfg):
    import psycopg
    conn = psycopg.connect(cfg.dsn, autocommit=True, connect_timeout=10)
    schema.migrate(conn)
    return conn


def issue_token(conn, store: str) -> str:
    """A new token for the store (the old one stops working at once); only
    its hash is kept, so it is shown once."""
    token = "lbs_" + secrets.token_urlsafe(32)
    cur = conn.execute("UPDATE lb_stores SET token_hash = %s, token_hint = %s, token_issued = "
                       "now(), revoked = false WHERE store = %s",
                       (ingest.token_hash(token), token[:8], store))
    if cur.rowcount != 1:
        raise SystemExit(f"no store {store!r} (add it first: central store add {store})")
    return token


def add_user(conn, name: str, password: str, role: str, scope: str = "",
             email: str | None = None, lang: str = "ru") -> None:
    if role not in schema.ROLES:
        raise ValueError(f"role: one of {', '.join(schema.ROLES)}")
    if role == "store" and conn.execute("SELECT 1 FROM lb_stores WHERE store = %s",
                                        (scope,)).fetchone() is None:
        raise ValueError(f"a store manager's --scope is a store id; there is no store {scope!r}")
    if role == "region" and not scope:
        raise ValueError("a region's user needs --scope REGION")
    if role == "chain":
        scope = ""
    conn.execute("INSERT INTO lb_users (name, pwhash, role, scope, email, lang) VALUES "
                 "(%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET pwhash = "
                 "EXCLUDED.pwhash, role = EXCLUDED.role, scope = EXCLUDED.scope, email = "
                 "EXCLUDED.email, lang = EXCLUDED.lang",
                 (name, hash_password(password), role, scope, email, lang))


def cli(args) -> int:
    try:
        cfg = central_config.load(args.config)
    except central_config.CentralConfigError as e:
        print(f"cannot use {args.config}: {len(e.problems)} problem(s):", file=sys.stderr)
        for problem in e.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    if args.action == "serve":
        from . import service
        if args.log_level is None:
            logging.getLogger().setLevel(cfg.log_level)
        asyncio.run(service.serve(cfg, ready_file=args.ready_file, reports=not args.no_reports))
        return 0
    try:
        conn = _connect(cfg)
    except Exception as e:
        print(f"cannot reach the database: {str(e).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    with conn:
        try:
            return _act(args, cfg, conn)
        except ValueError as e:
            print(str(e), file=sys.stderr)
            return 2


def _act(args, cfg, conn) -> int:
    a = args.action
    if a == "setup":
        add_user(conn, args.admin, _password(args, f"password for {args.admin}"), "chain",
                 email=args.email, lang=args.lang)
        print(f"central database ready; chain admin {args.admin} can log in")
        return 0
    if a == "store":
        if args.store_action == "add":
            conn.execute("INSERT INTO lb_stores (store, name, region) VALUES (%s, %s, %s) "
                         "ON CONFLICT (store) DO UPDATE SET name = EXCLUDED.name, region = "
                         "EXCLUDED.region", (args.store, args.name or args.store,
                                             args.region or ""))
        if args.store_action in ("add", "token"):
            token = issue_token(conn, args.store)
            if args.token_file:
                Path(args.token_file).write_text(token + "\n")
                Path(args.token_file).chmod(0o600)
                print(f"store {args.store}: token written to {args.token_file}")
            else:
                print(token)
            return 0
        if args.store_action == "revoke":
            cur = conn.execute("UPDATE lb_stores SET revoked = true WHERE store = %s",
                               (args.store,))
            if cur.rowcount != 1:
                raise ValueError(f"no store {args.store!r}")
            print(f"store {args.store}: token revoked; its batches are refused from now on")
            return 0
        rows = conn.execute("SELECT store, name, region, revoked, token_hint, last_batch, records "
                            "FROM lb_stores ORDER BY store").fetchall()
        print(json.dumps([{"store": s, "name": n, "region": r, "revoked": rv, "token": h and
                           h + "…", "last_batch": lb and lb.isoformat(), "records": rec}
                          for s, n, r, rv, h, lb, rec in rows], ensure_ascii=False, indent=1))
        return 0
    if a == "user":
        if args.user_action == "add":
            add_user(conn, args.name, _password(args, f"password for {args.name}"), args.role,
                     args.scope or "", args.email, args.lang)
            print(f"user {args.name} ({args.role}{' ' + args.scope if args.scope else ''})")
            return 0
        if args.user_action == "remove":
            cur = conn.execute("DELETE FROM lb_users WHERE name = %s", (args.name,))
            if cur.rowcount != 1:
                raise ValueError(f"no user {args.name!r}")
            print(f"user {args.name} removed; their sessions ended")
            return 0
        rows = conn.execute("SELECT name, role, scope, email, lang FROM lb_users ORDER BY name")
        print(json.dumps([dict(zip(("name", "role", "scope", "email", "lang"), r))
                          for r in rows.fetchall()], ensure_ascii=False, indent=1))
        return 0
    if a == "bi-role":
        schema.grant_bi(conn, args.role, _password(args, f"password for {args.role}"))
        print(f"role {args.role} reads the views of schema bi only")
        return 0
    if a == "phone":
        # docs/phone-survey.md: a shopper quotes the response id shown on
        # the survey's thank-you page.
        from . import phone
        try:
            done = phone.delete(conn, args.response, args.by, args.note)
        except LookupError as e:
            raise SystemExit(str(e)) from None
        print(f"phone answer {done['response']} of store {done['store']} deleted here; the "
              f"store removes it from its record with its next status, and its "
              f"destinations get the record again without it")
        return 0
    if a == "send-reports":
        from psycopg_pool import AsyncConnectionPool

        async def once():
            async with AsyncConnectionPool(cfg.dsn, min_size=1, max_size=2,
                                           kwargs={"autocommit": True}) as pool:
                from . import mail
                return await mail.send_due(cfg, pool)
        print(json.dumps(asyncio.run(once())))
        return 0
    raise AssertionError(a)


def add_parser(sub) -> None:
    p = sub.add_parser("central", help="the chain's central service (docs/central.md)")
    p.add_argument("--config", required=True, help="central.yaml")
    csub = p.add_subparsers(dest="action", required=True)
    s = csub.add_parser("serve", help="run one worker of the service")
    s.add_argument("--ready-file", help="write the pid here once listening")
    s.add_argument("--no-reports", action="store_true",
                   help="do not send scheduled reports from this worker")
    s = csub.add_parser("setup", help="create or migrate the database; the first chain admin")
    s.add_argument("--admin", required=True)
    s.add_argument("--email")
    s.add_argument("--lang", choices=("ru", "en"), default="ru")
    s.add_argument("--password-stdin", action="store_true")
    s = csub.add_parser("store", help="the stores that report here and their tokens")
    ssub = s.add_subparsers(dest="store_action", required=True)
    t = ssub.add_parser("add", help="add (or rename) a store and issue its token")
    t.add_argument("store")
    t.add_argument("--name")
    t.add_argument("--region")
    t.add_argument("--token-file", help="write the token here (0600) instead of printing it")
    t = ssub.add_parser("token", help="issue a new token (the old one stops working)")
    t.add_argument("store")
    t.add_argument("--token-file")
    t = ssub.add_parser("revoke", help="stop a store's token")
    t.add_argument("store")
    ssub.add_parser("list")
    s = csub.add_parser("user", help="who can log in to the chain dashboard")
    usub = s.add_subparsers(dest="user_action", required=True)
    u = usub.add_parser("add", help="add a user (or change one)")
    u.add_argument("name")
    u.add_argument("--role", choices=schema.ROLES, required=True)
    u.add_argument("--scope", help="the region (role region) or the store id (role store)")
    u.add_argument("--email", help="where their scheduled reports go")
    u.add_argument("--lang", choices=("ru", "en"), default="ru")
    u.add_argument("--password-stdin", action="store_true")
    u = usub.add_parser("remove")
    u.add_argument("name")
    usub.add_parser("list")
    s = csub.add_parser("bi-role", help="a PostgreSQL login that reads only the bi views")
    s.add_argument("role")
    s.add_argument("--password-stdin", action="store_true")
    csub.add_parser("send-reports", help="send the scheduled reports that are due, once")
    s = csub.add_parser("phone", help="the shoppers' phone survey answers")
    psub = s.add_subparsers(dest="phone_action", required=True)
    d = psub.add_parser("delete", help="delete an answer everywhere by its response id")
    d.add_argument("response", help="the id the shopper quotes, e.g. K7Q2-M9XD")
    d.add_argument("--by", required=True, help="who deletes it (kept with the deletion)")
    d.add_argument("--note", help="why (e.g. the shopper's request of date)")
    p.set_defaults(func=cli)



