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

# name, input type, then per language: label, hint.
_FIELDS = [
    ("store", "text", {"en": ("Store id", "lower-case, e.g. msk-12"),
                       "ru": ("Код магазина", "строчные латинские буквы, например msk-12")}),
    ("timezone", "text", {"en": ("Time zone", "e.g. Europe/Moscow"),
                          "ru": ("Часовой пояс", "например Europe/Moscow")}),
    ("tills", "text", {"en": ("Tills", "as the POS numbers them: 1, 2, 3"),
                       "ru": ("Кассы", "с номерами, как у кассовой программы: 1, 2, 3")}),
    ("admin", "text", {"en": ("Manager's user name", "for the dashboard"),
                       "ru": ("Имя управляющего", "для входа в панель отчётов")}),
    ("admin_password", "password", {"en": ("Manager's password", "at least 8 characters"),
                                    "ru": ("Пароль управляющего", "не короче 8 символов")}),
    ("wifi_ssid", "text", {"en": ("Wi-Fi name for the panels", "the network the panels join"),
                           "ru": ("Сеть Wi-Fi для панелей", "к которой подключаются панели")}),
    ("wifi_password", "password", {"en": ("Wi-Fi password", "empty for an open network"),
                                   "ru": ("Пароль Wi-Fi", "пусто для открытой сети")}),
    ("broker_host", "text", {"en": ("This host's address on the store LAN",
                                    "what the panels dial, e.g. 192.168.10.2"),
                             "ru": ("Адрес этого компьютера в сети магазина",
                                    "его набирают панели, например 192.168.10.2")}),
]
_WORDS = {
    "en": {"title": "Set up this store", "intro": "Loyalty Button is installed. Answer these "
           "once; the dashboard opens afterwards.", "board": "Panels' board",
           "lang": "Panels' language", "submit": "Set up",
           "retype": "Type again: {fields} (passwords are not sent back; everything else is "
                     "kept).",
           "fix": "Correct the fields marked below.",
           "done": "Store {store} is set up",
           "write_down": "Write these down now and give them to your POS integrator. They "
                         "are not shown again.",
           "key": "POS key (UDP receipts)", "token": "POS token (HTTP receipts)",
           "copy": "Copy", "copied": "Copied",
           "tills_note": "Tills {tills} each have a panel registered; flash them with "
                         "<code>loyalty-button panels flash</code> (docs/installer.md).",
           "login": "In a few seconds the dashboard takes this address: "
                    "<a href=\"/\">log in</a> as <b>{admin}</b>.",
           "other": "Русский"},
    "ru": {"title": "Настройка магазина", "intro": "Loyalty Button установлен. Ответьте на "
           "эти вопросы один раз; затем откроется панель отчётов.", "board": "Плата панелей",
           "lang": "Язык панелей", "submit": "Настроить",
           "retype": "Введите ещё раз: {fields} (пароли не возвращаются в страницу; остальное "
                     "сохранено).",
           "fix": "Исправьте отмеченные ниже поля.",
           "done": "Магазин {store} настроен",
           "write_down": "Запишите их сейчас и передайте интегратору кассовой программы. "
                         "Больше они не показываются.",
           "key": "Ключ POS (чеки по UDP)", "token": "Токен POS (чеки по HTTP)",
           "copy": "Копировать", "copied": "Скопировано",
           "tills_note": "Для касс {tills} зарегистрировано по панели; прошейте их командой "
                         "<code>loyalty-button panels flash</code> (docs/installer.md).",
           "login": "Через несколько секунд по этому адресу откроется панель отчётов: "
                    "<a href=\"/\">войдите</a> как <b>{admin}</b>.",
           "other": "English"},
}
# The copy buttons: the clipboard where the browser allows it (https or
# localhost), else the text selected for the phone's own copy.
_COPY_JS = """<script>
document.querySelectorAll('button[data-copy]').forEach(function (b) {
  b.addEventListener('click', function () {
    var el = document.getElementById(b.dataset.copy), done = function () {
      b.textContent = b.dataset.done; };
    var r = document.createRange(); r.selectNodeContents(el);
    var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(el.textContent).then(done, function () {});
    } else if (document.execCommand && document.execCommand('copy')) { done(); }
  });
});
</script>"""


def page_lang(accept_language: str, asked: str | None = None) -> str:
    """ru or en: `?lang=` when given, else the browser's first of the two
    (Accept-Language, by its q weights), else ru (the product's home)."""
    if asked in _WORDS:
        return asked
    best, best_q = None, -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip().lower()[:2]
        if lang in _WORDS and q > best_q:
            best, best_q = lang, q
    return best or "ru"


def _page(title: str, body: str, lang: str, switch: bool = True) -> str:
    """switch: the link to the other language (not on the page of secrets:
    leaving it would lose them)."""
    other = "en" if lang == "ru" else "ru"
    link = (f'<a id="other-lang" href="/?lang={other}">{_WORDS[lang]["other"]}</a>'
            if switch else "")
    return (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            f'<title>Loyalty Button — {html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="stylesheet" href="/static/style.css"></head>'
            f'<body class="login"><main id="setup">{link}{body}</main></body></html>')


def form_html(values: dict, problems: list[str], lang: str = "ru",
              by_field: dict[str, list[str]] | None = None) -> str:
    """The form; `problems`: ones of no field (shown on top), `by_field`:
    field -> its problems, shown under that field."""
    w, by_field = _WORDS[lang], by_field or {}
    rows = []
    for name, kind, words in _FIELDS:
        label, hint = words[lang]
        value = "" if kind == "password" else html.escape(values.get(name, ""), quote=True)
        errs = "".join(f"<span>{html.escape(p)}</span>" for p in by_field.get(name, []))
        rows.append(f'<div class="field{" bad" if errs else ""}">'
                    f'<label for="{name}">{html.escape(label)}</label>'
                    f'<input name="{name}" id="{name}" type="{kind}" value="{value}">'
                    f'<small>{html.escape(hint)}</small>'
                    f'<p class="error" id="err-{name}">{errs}</p></div>')
    boards = "".join(f'<option{" selected" if values.get("board") == b else ""}>{b}</option>'
                     for b in ("cyd", "s3_8048"))
    langs = "".join(f'<option{" selected" if values.get("lang", lang) == code else ""}>'
                    f'{code}</option>' for code in ("ru", "en"))
    top = list(problems)
    if by_field:
        top.insert(0, w["fix"])
    if problems or by_field:
        again = [words[lang][0] for name, kind, words in _FIELDS if kind == "password"]
        top.append(w["retype"].format(fields=", ".join(again)))
    errors = "".join(f"<li>{html.escape(p)}</li>" for p in top)
    return _page(w["title"], f"""
<h1>{w['title']}</h1>
<p>{w['intro']}</p>
<ul class="error" id="problems">{errors}</ul>
<form method="post" action="/setup?lang={lang}">
{''.join(rows)}
<div class="field"><label for="board">{w['board']}</label>
<select name="board" id="board">{boards}</select></div>
<div class="field"><label for="lang">{w['lang']}</label>
<select name="lang" id="lang">{langs}</select></div>
<button type="submit" id="submit">{w['submit']}</button>
</form>""", lang)


def done_html(a: firstrun.Answers, shown: dict, lang: str = "ru") -> str:
    w = _WORDS[lang]
    secrets = "".join(
        f'<div class="secret"><h2>{w[what]}</h2><code id="{key}">{shown[key]}</code>'
        f'<button type="button" data-copy="{key}" data-done="{w["copied"]}" id="copy-{key}">'
        f'{w["copy"]}</button></div>' for what, key in (("key", "pos_key"),
                                                         ("token", "pos_token")))
    return _page(w["done"].format(store=a.store), f"""
<h1>{html.escape(w['done'].format(store=a.store))}</h1>
<p><b>{w['write_down']}</b></p>
{secrets}
<p>{w['tills_note'].format(tills=html.escape(', '.join(a.tills)))}</p>
<p>{w['login'].format(admin=html.escape(a.admin))}</p>{_COPY_JS}""", lang, switch=False)


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

    def lang_of(request: web.Request) -> str:
        return page_lang(request.headers.get("Accept-Language", ""),
                         request.query.get("lang"))

    async def index(request: web.Request) -> web.Response:
        if done.is_set():
            raise web.HTTPFound("/")
        return web.Response(text=form_html({"broker_host": lan_address(request.host),
                                            "timezone": "Europe/Moscow"}, [], lang_of(request)),
                            content_type="text/html")

    async def setup(request: web.Request) -> web.Response:
        lang = lang_of(request)
        form = await request.post()
        values = {k: str(form.get(k, "")).strip() for k, *_ in _FIELDS}
        values.update(board=str(form.get("board", "cyd")), lang=str(form.get("lang", "ru")))
        answers = firstrun.Answers(
            values["store"], values["timezone"],
            [t.strip() for t in values["tills"].replace(" ", ",").split(",") if t.strip()],
            values["admin"], str(form.get("admin_password", "")), values["wifi_ssid"],
            str(form.get("wifi_password", "")), values["broker_host"],
            board=values["board"], lang=values["lang"])
        by_field: dict[str, list[str]] = {}
        found = firstrun.field_problems(answers)
        for name, en, ru in found:
            by_field.setdefault(name, []).append(ru if lang == "ru" else en)
        async with lock:  # two browsers at once: one set-up
            try:
                if by_field:
                    raise firstrun.FirstRunError([])
                shown = await asyncio.get_running_loop().run_in_executor(
                    None, firstrun.configure, answers, etc, var, broker_files)
            except firstrun.FirstRunError as e:
                log.warning("set-up refused: %s",  # the log is in English
                            "; ".join(e.problems or [en for _, en, _ in found]))
                return web.Response(text=form_html(values, e.problems, lang, by_field),
                                    status=400, content_type="text/html")
        log.info("store %s set up from %s", answers.store, request.remote)
        request_apply()
        done.set()
        return web.Response(text=done_html(answers, shown, lang), content_type="text/html")

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
