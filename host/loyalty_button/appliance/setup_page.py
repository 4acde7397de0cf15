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
import os
import socket
import tempfile
from pathlib import Path

from aiohttp import web

from ..langpick import best_language
from ..service import config as host_config, sdnotify
from ..service.conn_cap import ConnectionCap
from . import firstrun, layout, store_backup

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
           "other": "Русский",
           "restore_title": "Moving a store here? Restore it from its backup",
           "restore_intro": "A store backup (a .lbstore file, made on the old host's "
                            "dashboard under Store backup) brings the records, settings, "
                            "catalogue, managers' logins, the POS key and token and the panels' logins: the tills "
                            "and panels carry on untouched once this host has the old one's "
                            "address on the store LAN.",
           "restore_submit": "Restore", "new_title": "Or set up a new store",
           "restored": "Store {store} is restored",
           "restored_what": "{records} records, panels: {panels}, dashboard users: {users} "
                            "(the backup was made {made}).",
           "dial": "The panels dial <b>{host}</b>: this host must have that address on the "
                   "store LAN.",
           "dial_differs": "You reached this host at {here}. If that is its address on the "
                           "store LAN, give it {host} instead (docs/install.md, \"Moving a "
                           "store\"), or the panels will not find it.",
           "not_carried": "Not in the backup: {items}.",
           "restored_login": "In a few seconds the dashboard opens at <a href=\"{url}\">{url}"
                             "</a>: log in as before.",
           "kind_passphrase": "The passphrase is not the one this backup was made with.",
           "kind_not_backup": "This file is not a Loyalty Button store backup (a .lbstore "
                              "file from the dashboard's Backup).",
           "kind_damaged": "The backup is damaged or incomplete; copy it again from where it "
                           "was made.",
           "kind_newer": "The backup was made by a newer Loyalty Button: install that version "
                         "on this host first.",
           "kind_configured": "This host is set up already.",
           "kind_settings": "The backup's settings do not work on this host.",
           "kind_io": "The restore failed on this host.",
           "kind_no_file": "Choose the backup file.",
           "kind_too_big": "The file is larger than any store backup can be.",
           "nothing_written": "Nothing was changed on this host."},
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
           "other": "English",
           "restore_title": "Переносите магазин? Восстановите его из резервной копии",
           "restore_intro": "Резервная копия магазина (файл .lbstore, сделанный в панели "
                            "отчётов старого компьютера, раздел «Резервная копия "
                            "магазина») переносит записи, настройки, каталог вопросов, входы "
                            "управляющих, ключ и токен POS и входы панелей: кассы и панели "
                            "продолжат работу без перенастройки, когда у этого компьютера "
                            "будет адрес старого в сети магазина.",
           "restore_submit": "Восстановить", "new_title": "Или настройте новый магазин",
           "restored": "Магазин {store} восстановлен",
           "restored_what": "Записей: {records}, панели: {panels}, пользователи панели "
                            "отчётов: {users} (копия сделана {made}).",
           "dial": "Панели подключаются к <b>{host}</b>: у этого компьютера должен быть этот "
                   "адрес в сети магазина.",
           "dial_differs": "Вы открыли этот компьютер по адресу {here}. Если это его адрес в "
                           "сети магазина, назначьте ему {host} (docs/install.md, «Moving a "
                           "store»), иначе панели его не найдут.",
           "not_carried": "Не вошло в копию: {items}.",
           "restored_login": "Через несколько секунд откроется панель отчётов: <a "
                             "href=\"{url}\">{url}</a>; входите как раньше.",
           "kind_passphrase": "Пароль не тот, с которым сделана эта копия.",
           "kind_not_backup": "Этот файл не резервная копия магазина Loyalty Button (файл "
                              ".lbstore из раздела «Резервная копия магазина» панели отчётов).",
           "kind_damaged": "Копия повреждена или неполна; скопируйте её заново оттуда, где "
                           "она сделана.",
           "kind_newer": "Копия сделана более новой версией Loyalty Button: сначала "
                         "установите её на этот компьютер.",
           "kind_configured": "Этот компьютер уже настроен.",
           "kind_settings": "Настройки из копии не подходят этому компьютеру.",
           "kind_io": "Восстановление на этом компьютере не удалось.",
           "kind_no_file": "Выберите файл копии.",
           "kind_too_big": "Файл больше, чем может быть копия магазина.",
           "nothing_written": "На компьютере ничего не изменено."},
}
# The restore form's fields, as _FIELDS.
_RESTORE_FIELDS = [
    ("backup", "file", {"en": ("Store backup", "the .lbstore file"),
                        "ru": ("Резервная копия магазина", "файл .lbstore")}),
    ("passphrase", "password", {"en": ("Backup passphrase", "chosen when the backup was made"),
                                "ru": ("Пароль копии", "заданный, когда копию делали")}),
]
# The largest upload taken: a year of a busy store's records is some
# hundreds of MB; this is far above it and still fits a Pi's card.
MAX_UPLOAD = 4 << 30
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
    return best_language(accept_language, _WORDS, "ru", asked)


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


def _field_row(name: str, kind: str, words: tuple[str, str], value: str,
               problems: list[str]) -> str:
    """A label above the field, its hint under it, its problems under that."""
    label, hint = words
    value = "" if kind in ("password", "file") else html.escape(value, quote=True)
    errs = "".join(f"<span>{html.escape(p)}</span>" for p in problems)
    extra = ' accept=".lbstore"' if kind == "file" else ""
    return (f'<div class="field{" bad" if errs else ""}">'
            f'<label for="{name}">{html.escape(label)}</label>'
            f'<input name="{name}" id="{name}" type="{kind}" value="{value}"{extra}>'
            f'<small>{html.escape(hint)}</small>'
            f'<p class="error" id="err-{name}">{errs}</p></div>')


def _restore_form(lang: str, problems: list[str]) -> str:
    """Restore from a backup: the page's first choice (a new Pi for a store
    that exists is the commoner case once a chain runs the product)."""
    w = _WORDS[lang]
    rows = "".join(_field_row(name, kind, words[lang], "", problems if name == "backup" else [])
                   for name, kind, words in _RESTORE_FIELDS)
    return f"""<section id="restore"><h2>{w['restore_title']}</h2>
<p>{w['restore_intro']}</p>
<form method="post" action="/restore?lang={lang}" enctype="multipart/form-data">
{rows}
<button type="submit" id="restore-submit">{w['restore_submit']}</button>
</form></section>"""


def form_html(values: dict, problems: list[str], lang: str = "ru",
              by_field: dict[str, list[str]] | None = None,
              restore_problems: list[str] | None = None) -> str:
    """Both forms: restore from a backup first, then the set-up's;
    `problems`: the set-up's of no field (shown on top), `by_field`: field
    -> its problems, shown under that field; `restore_problems`: under the
    restore form's file."""
    w, by_field = _WORDS[lang], by_field or {}
    rows = [_field_row(name, kind, words[lang], values.get(name, ""), by_field.get(name, []))
            for name, kind, words in _FIELDS]
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
{_restore_form(lang, restore_problems or [])}
<section id="new"><h2>{w['new_title']}</h2>
<ul class="error" id="problems">{errors}</ul>
<form method="post" action="/setup?lang={lang}">
{''.join(rows)}
<div class="field"><label for="board">{w['board']}</label>
<select name="board" id="board">{boards}</select></div>
<div class="field"><label for="lang">{w['lang']}</label>
<select name="lang" id="lang">{langs}</select></div>
<button type="submit" id="submit">{w['submit']}</button>
</form></section>""", lang)


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


def restored_html(summary, dashboard_url: str, here: str, lang: str = "ru") -> str:
    """After a restore: what came back, the address the panels dial (and
    whether the browser reached this host by another), where to log in."""
    w = _WORDS[lang]
    none = "—"
    lines = [w["restored_what"].format(
        records=summary.records, panels=html.escape(", ".join(summary.panels) or none),
        users=html.escape(", ".join(summary.users) or none), made=html.escape(summary.made))]
    if summary.broker_host:
        lines.append(w["dial"].format(host=html.escape(summary.broker_host)))
        if here and here != summary.broker_host:
            differs = w["dial_differs"].format(here=html.escape(here),
                                               host=html.escape(summary.broker_host))
            lines.append(f'<span class="warn" id="dial-differs">{differs}</span>')
    if summary.not_carried:
        lines.append(w["not_carried"].format(items=html.escape("; ".join(summary.not_carried))))
    lines.append(w["restored_login"].format(url=html.escape(dashboard_url, quote=True)))
    title = w["restored"].format(store=summary.store)
    return _page(title, f"<h1>{html.escape(title)}</h1>" +
                 "".join(f"<p>{line}</p>" for line in lines), lang, switch=False)


def _hostname(host_header: str) -> str:
    """The Host header without its port (an IPv6 address without brackets)."""
    if host_header.startswith("["):
        return host_header[1:].split("]")[0]
    return host_header.rsplit(":", 1)[0]


def lan_address(host_header: str) -> str:
    """The address the browser reached this host by, as the panels' default:
    a phone on the store LAN used the host's LAN address. A browser on the
    host itself (127.0.0.1, localhost) says nothing about it: no default."""
    host = _hostname(host_header)
    if host.lower() in ("localhost", "localhost.localdomain", ""):
        return ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return ""
    except ValueError:
        pass  # a host name: the panels can dial it if the LAN resolves it
    return host


def own_names() -> set[str]:
    """The names this host may be reached by besides an IP address: its
    host name as the store LAN's usual resolvers give it (mDNS's .local,
    routers' .lan and .home), its fully qualified name, localhost."""
    name = socket.gethostname().lower()
    return {"localhost", "localhost.localdomain", name, socket.getfqdn().lower(),
            *(f"{name}.{suffix}" for suffix in ("local", "lan", "home", "localdomain"))}


def _reached_as_itself(host_header: str) -> bool:
    """Whether a request names this host (an IP address or one of its own
    names). A page loaded from another name that resolves here (DNS
    rebinding) names that other one, and is refused."""
    host = _hostname(host_header).lower()
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host in own_names()


def read_form(form, lang: str) -> tuple[dict, firstrun.Answers, list, dict[str, list[str]]]:
    """The set-up form as sent: the values to show again, the answers, their
    problems, and those by field in the page's language. Whatever a browser
    (or anyone) sends, this refuses in words and never raises (tools/fuzz)."""
    def text(name: str, default: str = "") -> str:
        # What cannot be UTF-8 (lone surrogates) cannot be a setting either:
        # replaced, so the checks below refuse it in words.
        return str(form.get(name, default)).encode("utf-8", "replace").decode("utf-8")
    values = {k: text(k).strip() for k, *_ in _FIELDS}
    values.update(board=text("board", "cyd"), lang=text("lang", "ru"))
    answers = firstrun.Answers(
        values["store"], values["timezone"],
        [t.strip() for t in values["tills"].replace(" ", ",").split(",") if t.strip()],
        values["admin"], text("admin_password"), values["wifi_ssid"],
        text("wifi_password"), values["broker_host"],
        board=values["board"], lang=values["lang"])
    by_field: dict[str, list[str]] = {}
    found = firstrun.field_problems(answers)
    for name, en, ru in found:
        by_field.setdefault(name, []).append(ru if lang == "ru" else en)
    return values, answers, found, by_field


def make_app(etc: Path, var: Path, done: asyncio.Event, request_apply,
             broker_files: dict | None = None) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler):
        """The page that hands out the POS key and token answers only pages
        of its own: no other site's form (Origin), no other name for this
        host (Host, against DNS rebinding). Who is on the store LAN at
        set-up time is trusted, as in Home Assistant's onboarding
        (docs/security.md)."""
        if not _reached_as_itself(request.host):
            log.warning("set-up page: refused a request for host %r from %s", request.host,
                        request.remote)
            return web.Response(status=421, text="Open this page by the host's address, e.g. "
                                                 "http://192.168.10.2:8088/\n")
        origin = request.headers.get("Origin")
        if request.method == "POST" and origin is not None \
                and origin != f"{request.scheme}://{request.host}":
            log.warning("set-up page: refused a form sent from %s (from %s)", origin,
                        request.remote)
            return web.Response(status=403, text="This form can only be sent from the set-up "
                                                 "page itself.\n")
        return await handler(request)
    app = web.Application(client_max_size=64 * 1024, middlewares=[guard])
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
        values, answers, found, by_field = read_form(await request.post(), lang)
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

    async def restore(request: web.Request) -> web.Response:
        lang = lang_of(request)
        w = _WORDS[lang]
        if done.is_set():
            raise web.HTTPFound("/")

        def refused(kind: str, detail: str = "") -> web.Response:
            log.warning("restore refused: %s", detail or kind)  # the log is in English
            words = [w[f"kind_{kind}"]] + ([detail] if detail and kind in (
                "damaged", "settings", "io") else []) + [w["nothing_written"]]
            return web.Response(text=form_html({"timezone": "Europe/Moscow",
                                                "broker_host": lan_address(request.host)},
                                               [], lang, restore_problems=words),
                                status=400, content_type="text/html")
        try:
            parts = await request.multipart()
        except (AssertionError, ValueError, KeyError):
            return refused("no_file", "not a multipart form")
        passphrase, size = "", 0
        try:
            var.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=var, prefix=".store-upload-")
        except OSError as e:
            return refused("io", f"cannot take the upload into {var}: {e.strerror}")
        upload = Path(name)
        loop = asyncio.get_running_loop()
        try:
            with os.fdopen(fd, "wb") as out:
                while (part := await parts.next()) is not None:
                    if part.name == "passphrase":
                        passphrase = (await part.read_chunk(4096)).decode("utf-8", "replace")
                    elif part.name == "backup":
                        while chunk := await part.read_chunk(1 << 20):
                            size += len(chunk)
                            if size > MAX_UPLOAD:
                                return refused("too_big", f"an upload over {MAX_UPLOAD} bytes")
                            await loop.run_in_executor(None, out.write, chunk)
            if size == 0:
                return refused("no_file", "no file sent")
            async with lock:  # a set-up and a restore at once: one of them
                if done.is_set():
                    raise web.HTTPFound("/")
                summary = await loop.run_in_executor(None, store_backup.restore, upload,
                                                     passphrase, etc, var)
                request_apply()
                done.set()
        except store_backup.StoreBackupError as e:
            return refused(e.kind, str(e))
        except OSError as e:  # the upload could not be written: a full card
            return refused("io", f"the upload: {e.strerror}")
        finally:
            upload.unlink(missing_ok=True)
        log.info("store %s restored from a backup uploaded from %s", summary.store,
                 request.remote)
        try:
            port = host_config.load(etc / layout.CONFIG.name).dashboard_port
        except host_config.HostConfigError:
            port = 0
        here = lan_address(request.host)
        host = _hostname(request.host)
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}/" if port else "/"
        return web.Response(text=restored_html(summary, url, here, lang),
                            content_type="text/html")

    async def elsewhere(request: web.Request) -> web.Response:
        raise web.HTTPFound("/")

    async def style(request: web.Request) -> web.FileResponse:
        return web.FileResponse(Path(__file__).resolve().parent.parent / "service"
                                / "dashboard_static" / "style.css")

    app.router.add_get("/static/style.css", style)
    app.router.add_get("/", index)
    app.router.add_post("/setup", setup)
    app.router.add_post("/restore", restore)
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
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=10)
    await runner.setup()
    ConnectionCap("setup_page", 64, 16).install(runner)
    await web.TCPSite(runner, bind, port).start()
    log.warning("this store is not set up: open http://<this host>:%d/ on the store LAN "
                "(or run 'loyalty-button setup')", port)
    watchdog = sdnotify.ready(f"waiting for the set-up on port {port}")
    await done.wait()
    watchdog.cancel()
    await asyncio.sleep(0.5)  # the page with the POS secrets goes out first
    await runner.cleanup()
