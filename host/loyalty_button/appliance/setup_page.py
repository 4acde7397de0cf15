"""The set-up page a fresh store host serves (on the dashboard's port)
until the store is configured: a retailer opens http://<host>:8088/ from
any phone or laptop on the store LAN and answers a handful of questions;
no terminal. As in Home Assistant's onboarding, the first person on the
LAN to answer sets the store up; after that the page is gone and the
dashboard, with its logins, takes the port.

What it writes is firstrun.configure's; Mosquitto's files are root's, so
the page asks for `broker apply` through a request file that a systemd
path unit watches (packaging/debian/loyalty-button-broker.path)."""

from __future__ import annotations

import asyncio
import html
import ipaddress
import logging
from pathlib import Path

from aiohttp import web

from ..service import sdnotify
from . import firstrun, layout

log = logging.getLogger(__name__)

_FIELDS = [  # name, label, input type, hint
    ("store", "Store id", "text", "lower-case, e.g. msk-12"),
    ("timezone", "Time zone", "text", "e.g. Europe/Moscow"),
    ("tills", "Tills", "text", "as the POS numbers them: 1, 2, 3"),
    ("admin", "Manager's user name", "text", "for the dashboard"),
    ("admin_password", "Manager's password", "password", "at least 8 characters"),
    ("wifi_ssid", "Wi-Fi name for the panels", "text", ""),
    ("wifi_password", "Wi-Fi password", "password", "empty for an open network"),
    ("broker_host", "This host's address on the store LAN", "text", "what the panels dial"),
]


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<title>Loyalty Button — {html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="stylesheet" href="/static/style.css"></head>'
            f'<body class="login"><main id="setup">{body}</main></body></html>')


def form_html(values: dict, problems: list[str]) -> str:
    rows = []
    for name, label, kind, hint in _FIELDS:
        value = "" if kind == "password" else html.escape(values.get(name, ""), quote=True)
        rows.append(f'<label>{label} <input name="{name}" id="{name}" type="{kind}" '
                    f'value="{value}"><small>{html.escape(hint)}</small></label>')
    boards = "".join(f'<option{" selected" if values.get("board") == b else ""}>{b}</option>'
                     for b in ("cyd", "s3_8048"))
    langs = "".join(f'<option{" selected" if values.get("lang", "ru") == lang else ""}>'
                    f'{lang}</option>' for lang in ("ru", "en"))
    errors = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
    if problems:
        # Passwords are never sent back in a page: say which to type again.
        again = [label for name, label, kind, _ in _FIELDS if kind == "password"]
        errors += (f'<li id="retype">Type again: {html.escape(", ".join(again))} '
                   f'(passwords are not sent back; everything else is kept).</li>')
    return _page("set up the store", f"""
<h1>Set up this store</h1>
<p>Loyalty Button is installed. Answer these once; the dashboard opens afterwards.</p>
<ul class="error" id="problems">{errors}</ul>
<form method="post" action="/setup">
{''.join(rows)}
<label>Panels' board <select name="board" id="board">{boards}</select></label>
<label>Panels' language <select name="lang" id="lang">{langs}</select></label>
<button type="submit" id="submit">Set up</button>
</form>""")


def done_html(a: firstrun.Answers, shown: dict) -> str:
    return _page("store set up", f"""
<h1>Store {html.escape(a.store)} is set up</h1>
<p><b>Write these down now and give them to your POS integrator.
They are not shown again.</b></p>
<table>
<tr><th>POS key (UDP receipts)</th><td><code id="pos_key">{shown['pos_key']}</code></td></tr>
<tr><th>POS token (HTTP receipts)</th><td><code id="pos_token">{shown['pos_token']}</code></td></tr>
</table>
<p>Tills {html.escape(', '.join(a.tills))} each have a panel registered; flash them with
<code>loyalty-button panels flash</code> (docs/installer.md).</p>
<p>In a few seconds the dashboard takes this address:
<a href="/">log in</a> as <b>{html.escape(a.admin)}</b>.</p>""")


def lan_address(host_header: str) -> str:
    """The address the browser reached this host by, as the panels' default:
    a phone on the store LAN used the host's LAN address. A browser on the
    host itself (127.0.0.1, localhost) says nothing about it: no default."""
    host = host_header.rsplit(":", 1)[0].strip("[]") if not host_header.startswith("[") \
        else host_header[1:].split("]")[0]
    if host.lower() in ("localhost", "localhost.localdomain", ""):
        return ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return ""
    except ValueError:
        pass  # a host name: the panels can dial it if the LAN resolves it
    return host


def make_app(etc: Path, var: Path, done: asyncio.Event, request_apply,
             broker_files: dict | None = None) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    lock = asyncio.Lock()

    async def index(request: web.Request) -> web.Response:
        if done.is_set():
            raise web.HTTPFound("/")
        return web.Response(text=form_html({"broker_host": lan_address(request.host),
                                            "timezone": "Europe/Moscow"}, []),
                            content_type="text/html")

    async def setup(request: web.Request) -> web.Response:
        form = await request.post()
        values = {k: str(form.get(k, "")).strip() for k, *_ in _FIELDS}
        values.update(board=str(form.get("board", "cyd")), lang=str(form.get("lang", "ru")))
        answers = firstrun.Answers(
            values["store"], values["timezone"],
            [t.strip() for t in values["tills"].replace(" ", ",").split(",") if t.strip()],
            values["admin"], str(form.get("admin_password", "")), values["wifi_ssid"],
            str(form.get("wifi_password", "")), values["broker_host"],
            board=values["board"], lang=values["lang"])
        async with lock:  # two browsers at once: one set-up
            try:
                shown = await asyncio.get_running_loop().run_in_executor(
                    None, firstrun.configure, answers, etc, var, broker_files)
            except firstrun.FirstRunError as e:
                log.warning("set-up refused: %s", "; ".join(e.problems))
                return web.Response(text=form_html(values, e.problems), status=400,
                                    content_type="text/html")
        log.info("store %s set up from %s", answers.store, request.remote)
        request_apply()
        done.set()
        return web.Response(text=done_html(answers, shown), content_type="text/html")

    async def elsewhere(request: web.Request) -> web.Response:
        raise web.HTTPFound("/")

    async def style(request: web.Request) -> web.FileResponse:
        return web.FileResponse(Path(__file__).resolve().parent.parent / "service"
                                / "dashboard_static" / "style.css")

    app.router.add_get("/static/style.css", style)
    app.router.add_get("/", index)
    app.router.add_post("/setup", setup)
    app.router.add_route("*", "/{tail:.*}", elsewhere)
    return app


def touch_request(var: Path = layout.VAR) -> None:
    """Ask root's path unit for `loyalty-button broker apply`."""
    try:
        (Path(var) / layout.APPLY_REQUEST.name).write_text("set-up\n")
    except OSError as e:
        log.error("could not ask for the broker's set-up (%s): run 'loyalty-button broker "
                  "apply --config %s' as root", e, layout.CONFIG)


async def serve_until_set_up(port: int, bind: str = "0.0.0.0", etc: Path = layout.ETC,
                             var: Path = layout.VAR, request_apply=None,
                             broker_files: dict | None = None) -> None:
    """broker_files: where Mosquitto's files go (firstrun.configure's
    `mosquitto`), by default the appliance's."""
    done = asyncio.Event()
    app = make_app(Path(etc), Path(var), done,
                   request_apply or (lambda: touch_request(var)), broker_files)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, bind, port).start()
    log.warning("this store is not set up: open http://<this host>:%d/ on the store LAN "
                "(or run 'loyalty-button setup')", port)
    watchdog = sdnotify.ready(f"waiting for the set-up on port {port}")
    await done.wait()
    watchdog.cancel()
    await asyncio.sleep(0.5)  # the page with the POS secrets goes out first
    await runner.cleanup()
