"""The shopper's phone survey page (docs/phone-survey.md), served by the
central service because shoppers' phones are on mobile data, not on the
store's network. The store host signs a link per receipt (phone_link.py);
here the link is checked, a short survey shown (plain HTML, no script, no
request to anyone else), one response taken per link, and the answer
joined to the receipt's record; the store fetches it with its status.

What a flood costs is bounded before any work: per address, then the
token's own check (no database for a malformed or forged-number link),
then per store, then a few database calls at once per worker."""

from __future__ import annotations

import asyncio
import base64
import html
import ipaddress
import json
import logging
import secrets
import time
import unicodedata
from collections import OrderedDict
from urllib.parse import parse_qs

from aiohttp import web

from .. import phone_link, ratelimit
from ..langpick import best_language

log = logging.getLogger(__name__)

MAX_FORM = 8192
MAX_COMMENT = 1000
_RESPONSE_CHARS = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read aloud, typed
_STORE_CACHE_S = 30.0
_STORE_CACHE_MAX = 10_000
_ANSWERED_MAX = 100_000

WORDS = {
    "en": {"title": "A few questions", "intro": "About your purchase today. It takes a minute.",
           "nps_ends": "0 — {low}, 10 — {high}", "nps_low": "not at all likely",
           "nps_high": "extremely likely", "csat_ends": "1 — {low}, 5 — {high}",
           "csat_low": "very bad", "csat_high": "excellent", "comment_hint":
           "Optional. At most {n} characters. Please leave out names and phone numbers.",
           "send": "Send", "need_one": "Please answer at least one question.",
           "too_long": "The comment is longer than {n} characters.",
           "thanks": "Thank you!", "thanks_body": "Your answer is in. It goes to the store's "
           "team as it is.", "response": "Your response number: {id}. Quote it to the store "
           "to have your answer deleted.", "review": "Would you tell others about the store?",
           "forged": "This link is not valid", "forged_body": "Please scan the code on the "
           "screen or the receipt again.", "expired": "This survey has closed",
           "expired_body": "The link was valid for a few days after the purchase. Thank you "
           "for wanting to answer.", "used": "This survey is already answered",
           "used_body": "One answer per purchase. Thank you!", "busy": "Too many requests",
           "busy_body": "Please try again in a minute.", "away": "The survey is not "
           "available", "away_body": "Please try again later.", "other": "Русский"},
    "ru": {"title": "Несколько вопросов", "intro": "О вашей сегодняшней покупке. Это займёт "
           "минуту.", "nps_ends": "0 — {low}, 10 — {high}", "nps_low": "точно нет",
           "nps_high": "обязательно", "csat_ends": "1 — {low}, 5 — {high}",
           "csat_low": "очень плохо", "csat_high": "отлично", "comment_hint":
           "Необязательно. Не больше {n} знаков. Пожалуйста, без имён и телефонов.",
           "send": "Отправить", "need_one": "Ответьте, пожалуйста, хотя бы на один вопрос.",
           "too_long": "Комментарий длиннее {n} знаков.",
           "thanks": "Спасибо!", "thanks_body": "Ваш ответ получен и передан команде "
           "магазина как есть.", "response": "Номер вашего ответа: {id}. Назовите его "
           "магазину, чтобы ответ удалили.", "review": "Расскажете о магазине другим?",
           "forged": "Ссылка недействительна", "forged_body": "Отсканируйте, пожалуйста, код "
           "на экране или на чеке ещё раз.", "expired": "Опрос закрыт", "expired_body":
           "Ссылка действовала несколько дней после покупки. Спасибо, что хотели ответить.",
           "used": "На этот опрос уже ответили", "used_body": "Один ответ на одну покупку. "
           "Спасибо!", "busy": "Слишком много запросов", "busy_body": "Попробуйте, "
           "пожалуйста, через минуту.", "away": "Опрос недоступен", "away_body":
           "Попробуйте, пожалуйста, позже."},
}
LANGS = tuple(WORDS)
LANG_NAMES = {"ru": "Русский", "en": "English"}

# The whole look, inline (one response, no other request). Targets are at
# least 44 px (WCAG 2.2 2.5.8 asks 24; 44 is 2.5.5's AAA size); the radio
# stays a real input, visually under its number, so keyboards and screen
# readers use the native control.
_CSS = """*{box-sizing:border-box}body{margin:0;font:17px/1.45 system-ui,sans-serif;color:#1b1b1b;
background:#f6f6f4}main{max-width:34rem;margin:0 auto;padding:16px}h1{font-size:1.45rem;
margin:.2em 0}p{margin:.4em 0 1em}fieldset{border:0;margin:0 0 22px;padding:0}legend{
font-weight:600;padding:0;margin-bottom:8px}.ends{display:block;font-weight:400;color:#4a4a4a;
font-size:.92rem}.scale{display:grid;gap:6px;grid-template-columns:repeat(6,minmax(44px,1fr))}
.s5{grid-template-columns:repeat(5,minmax(44px,1fr))}.opts{display:grid;gap:6px}label.b{
position:relative;display:block}label.b input{position:absolute;opacity:0;inset:0;margin:0}
label.b span{display:flex;align-items:center;justify-content:center;min-height:48px;
padding:6px 10px;border:2px solid #8a8a8a;border-radius:10px;background:#fff}.opts label.b span{
justify-content:flex-start}label.b input:checked+span{background:#1d5fd1;border-color:#1d5fd1;
color:#fff;font-weight:600}label.b input:focus-visible+span{outline:3px solid #f1a100;
outline-offset:2px}textarea{width:100%;min-height:7em;font:inherit;padding:10px;
border:2px solid #8a8a8a;border-radius:10px}.hint{font-size:.92rem;color:#4a4a4a}button,
a.btn{display:block;width:100%;min-height:52px;font:inherit;font-weight:600;border:0;
border-radius:10px;background:#1d5fd1;color:#fff;text-align:center;padding:13px;
text-decoration:none}.err{color:#a00000;font-weight:600}.id{font:600 1.3rem ui-monospace,
monospace;letter-spacing:.08em}.lang{float:right;font-size:.92rem;color:#1d5fd1;
padding:12px 0 12px 12px}"""
CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")


class FormError(ValueError):
    pass


def pick_lang(accept: str, languages: list, default: str, asked: str | None = None) -> str:
    """The shopper's language: the one asked for, else the browser's first
    that the survey has (and this page has words for), else the store's."""
    have = [lang for lang in languages if lang in WORDS] or ["en"]
    return best_language(accept, have, default if default in have else have[0], asked)


def _t(texts, lang: str) -> str:
    """A catalogue text in `lang`, else in any language it has."""
    if isinstance(texts, dict):
        return str(texts.get(lang) or next(iter(texts.values()), ""))
    return str(texts or "")


def _page(lang: str, title: str, body: str, switch: str = "") -> str:
    return (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta name="referrer" content="no-referrer"><title>{html.escape(title)}</title>'
            f'<style>{_CSS}</style></head><body><main>{switch}{body}</main></body></html>')


def _buttons(name: str, values, chosen, cls: str) -> str:
    out = []
    for v in values:
        on = " checked" if str(v) == chosen else ""
        out.append(f'<label class="b"><input type="radio" name="{name}" value="{v}"{on}>'
                   f'<span>{v}</span></label>')
    return f'<div class="{cls}">{"".join(out)}</div>'


def form_page(survey: dict, lang: str, action: str, values: dict | None = None,
              error: str | None = None, other: str | None = None) -> str:
    w = WORDS[lang]
    values = values or {}
    parts = [f"<h1>{w['title']}</h1><p>{w['intro']}</p>"]
    if error:
        parts.append(f'<p class="err" role="alert">{html.escape(error)}</p>')
    parts.append(f'<form method="post" action="{action}">'
                 f'<input type="hidden" name="lang" value="{lang}">')
    for i, q in enumerate(survey["questions"]):
        name, kind = f"q{i}", q["kind"]
        text = html.escape(_t(q["text"], lang))
        labels = q.get("labels") or {}
        if kind in ("nps", "csat"):
            low = _t(labels["low"], lang) if "low" in labels else w[f"{kind}_low"]
            high = _t(labels["high"], lang) if "high" in labels else w[f"{kind}_high"]
            ends = html.escape(w[f"{kind}_ends"].format(low=low, high=high))
            scale = range(0, 11) if kind == "nps" else range(1, 6)
            cls = "scale" if kind == "nps" else "scale s5"
            parts.append(f'<fieldset><legend>{text}<span class="ends">{ends}</span></legend>'
                         f'{_buttons(name, scale, values.get(name), cls)}</fieldset>')
        elif kind == "choice":
            opts = "".join(
                f'<label class="b"><input type="radio" name="{name}" '
                f'value="{html.escape(o["id"])}"'
                f'{" checked" if values.get(name) == o["id"] else ""}>'
                f'<span>{html.escape(_t(o["text"], lang))}</span></label>'
                for o in q.get("options") or ())
            parts.append(f'<fieldset><legend>{text}</legend><div class="opts">{opts}</div>'
                         f'</fieldset>')
        else:  # comment
            hint = w["comment_hint"].format(n=MAX_COMMENT)
            parts.append(f'<p><label for="{name}"><b>{text}</b></label></p>'
                         f'<p class="hint" id="{name}h">{html.escape(hint)}</p>'
                         f'<textarea id="{name}" name="{name}" maxlength="{MAX_COMMENT}" '
                         f'aria-describedby="{name}h">{html.escape(values.get(name, ""))}'
                         f'</textarea><p></p>')
    parts.append(f'<button type="submit">{w["send"]}</button></form>')
    return _page(lang, w["title"], "".join(parts), _switch(other, action))


def _switch(other: str | None, action: str) -> str:
    """A link to the page in the survey's other language."""
    if not other:
        return ""
    return (f'<a class="lang" lang="{other}" hreflang="{other}" href="{action}?lang={other}">'
            f'{LANG_NAMES.get(other, other)}</a>')


def message_page(lang: str, kind: str) -> str:
    w = WORDS[lang]
    return _page(lang, w[kind], f"<h1>{w[kind]}</h1><p>{w[kind + '_body']}</p>")


def thanks_page(lang: str, response: str, review: dict | None) -> str:
    w = WORDS[lang]
    body = [f"<h1>{w['thanks']}</h1><p>{w['thanks_body']}</p>",
            "<p>" + html.escape(w["response"]).format(
                id=f'<span class="id">{html.escape(response)}</span>') + "</p>"]
    if review:
        # Shown to everyone who answered, whatever they answered: review
        # sites forbid inviting only the happy.
        body.append(f"<p>{w['review']}</p><a class=\"btn\" rel=\"noreferrer\" "
                    f"href=\"{html.escape(review['url'])}\">"
                    f"{html.escape(_t(review.get('text'), lang))}</a>")
    return _page(lang, w["thanks"], "".join(body))


def read_answers(survey: dict, form: dict, lang: str) -> dict:
    """The form's answers, checked against the survey -> the record's phone
    doc {answers, nps, csat, comment, lang}. Raises FormError (said to the
    shopper) or ValueError (a form no page of ours makes)."""
    answers = {}
    doc = {"lang": lang}
    for i, q in enumerate(survey["questions"]):
        raw = (form.get(f"q{i}") or [""])[0]
        kind, qid = q["kind"], q["qid"]
        if raw == "":
            continue
        if kind in ("nps", "csat"):
            lo, hi = (0, 10) if kind == "nps" else (1, 5)
            if not raw.isdigit() or not lo <= int(raw) <= hi:
                raise ValueError(f"{qid}: not a score")
            answers[qid] = int(raw)
            doc.setdefault(kind, int(raw))  # the first of its kind heads the totals
        elif kind == "choice":
            if raw not in {o["id"] for o in q.get("options") or ()}:
                raise ValueError(f"{qid}: not an option")
            answers[qid] = raw
        else:
            text = "".join(c for c in raw if c in "\n\t" or unicodedata.category(c)[0] != "C")
            text = text.replace("\r\n", "\n").strip()
            if len(text) > MAX_COMMENT:
                raise FormError(WORDS[lang]["too_long"].format(n=MAX_COMMENT))
            if text:
                answers[qid] = text
                doc.setdefault("comment", text)
    if not answers:
        raise FormError(WORDS[lang]["need_one"])
    doc["answers"] = answers
    return doc


def client_address(remote: str | None, forwarded: str | None, trusted: list) -> str:
    """The shopper's address: the peer's, or behind balancers we trust, the
    last address in X-Forwarded-For that is not one of them (what a client
    writes there itself comes first and is not believed)."""
    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr.strip())
        except ValueError:
            return False
        return any(ip in net for net in trusted)
    addr = remote or "?"
    if not trusted or not is_trusted(addr) or not forwarded:
        return addr
    for hop in reversed(forwarded[:1000].split(",")):
        hop = hop.strip()
        if not is_trusted(hop):
            return hop or addr
    return addr


def new_response_id() -> str:
    raw = "".join(secrets.choice(_RESPONSE_CHARS) for _ in range(8))
    return raw[:4] + "-" + raw[4:]


def survey_ok(doc) -> bool:
    """A store's survey as its status brings it: shaped as the page needs."""
    if doc is None:
        return True
    try:
        qs = doc["questions"]
        if not isinstance(doc["languages"], list) or not 1 <= len(qs) <= 3:
            return False
        for q in qs:
            if q["kind"] not in ("nps", "csat", "choice", "comment") or \
                    not isinstance(q["qid"], str) or not isinstance(q["text"], dict):
                return False
            if q["kind"] == "choice" and not all(isinstance(o["id"], str)
                                                 for o in q["options"]):
                return False
        review = doc.get("review")
        return review is None or (isinstance(review["url"], str)
                                  and review["url"].startswith(("https://", "http://")))
    except (KeyError, TypeError):
        return False


# --- the central side of the store's status ----------------------------------------

async def status_reply(conn, cfg, store: str, number: int, doc) -> dict | None:
    """Keep the store's survey; give it the grant and the answers and
    deletions since its cursor."""
    if not cfg.phone_base_url:
        return None
    phone = doc.get("phone") if isinstance(doc, dict) else None
    phone = phone if isinstance(phone, dict) else {}
    survey = phone.get("survey")
    if survey_ok(survey):
        await conn.execute("UPDATE lb_stores SET phone_survey = %s::jsonb WHERE store = %s "
                           "AND phone_survey IS DISTINCT FROM %s::jsonb",
                           (json.dumps(survey), store, json.dumps(survey)))
    else:
        log.warning("status of store %s: its phone survey is not usable; the last one stays",
                    store)
    since = phone.get("since")
    since = since if isinstance(since, int) and since >= 0 else 0
    cur = await conn.execute("SELECT seq, ref, doc FROM lb_phone_answers WHERE store = %s AND "
                             "seq > %s ORDER BY seq LIMIT 200", (store, since))
    key = phone_link.store_key(cfg.phone_secret, store)
    return {"grant": {"number": number, "generation": 0, "base": cfg.phone_base_url.upper(),
                      "key": base64.b64encode(key).decode()},
            "answers": [{"seq": s, "ref": r, "answer": d} for s, r, d in await cur.fetchall()]}


# --- deletion -------------------------------------------------------------------------

def delete(conn, response: str, by: str, note: str | None = None) -> dict:
    """Delete a phone answer by its response id, everywhere: its row keeps
    no answer, the record loses it (and the totals with it, by trigger),
    the store is told with its next status, and a row says who deleted
    which response when. (conn: a psycopg connection.)"""
    response = response.strip().upper()
    if len(response) == 8 and "-" not in response:
        response = response[:4] + "-" + response[4:]
    with conn.transaction():
        row = conn.execute("SELECT store, ref, answered_at, deleted_at FROM lb_phone_answers "
                           "WHERE response = %s FOR UPDATE", (response,)).fetchone()
        if row is None:
            raise LookupError(f"no phone answer has the response id {response}")
        store, ref, answered, deleted = row
        if deleted is not None:
            raise LookupError(f"response {response} was deleted on {deleted:%Y-%m-%d %H:%M}")
        conn.execute("UPDATE lb_phone_answers SET doc = NULL, deleted_at = now(), "
                     "seq = nextval('lb_phone_seq') WHERE response = %s", (response,))
        conn.execute("UPDATE lb_records SET phone = NULL WHERE store = %s AND phone_ref = %s",
                     (store, ref))
        conn.execute("INSERT INTO lb_phone_deletions (response, store, ref, answered_at, "
                     "by_whom, note) VALUES (%s, %s, %s, %s, %s, %s)",
                     (response, store, ref, answered, by, note))
    log.info("phone answer %s of store %s deleted by %s", response, store, by)
    return {"response": response, "store": store}


# --- the pages ------------------------------------------------------------------------

def routes(cfg, pool, count) -> list:
    """GET and POST /s/TOKEN (the link is upper case: /S/ too)."""
    per_address = ratelimit.Buckets(cfg.phone_per_address_per_min / 60,
                                    max(3.0, cfg.phone_per_address_per_min / 4), 16384)
    per_store = ratelimit.Buckets(cfg.phone_per_store_per_s,
                                  max(5.0, 5 * cfg.phone_per_store_per_s))
    # One link is opened by one shopper a few times (the page, a reload, the
    # other language, the answer): more is someone replaying it.
    per_link = ratelimit.Buckets(10 / 60, 10, 16384)
    at_once = asyncio.Semaphore(cfg.phone_at_once)
    stores: dict[int, tuple[float, tuple | None]] = {}
    # Links answered already, as this worker learnt: a replayed link is
    # told so without the database (and without the store's budget).
    answered: OrderedDict[tuple[str, str], None] = OrderedDict()

    def known_answered(key: tuple[str, str]) -> None:
        answered[key] = None
        answered.move_to_end(key)
        while len(answered) > _ANSWERED_MAX:
            answered.popitem(last=False)

    def respond(text: str, status: int = 200, retry_after: int | None = None):
        headers = {"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer",
                   "Cache-Control": "no-store"}
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        return web.Response(text=text, status=status, content_type="text/html",
                            charset="utf-8", headers=headers)

    async def store_of(number: int):
        """(store, survey) of a store number, cached briefly per worker (a
        flood of links naming stores that do not exist is one query each
        per half a minute, not one per request)."""
        now = time.monotonic()
        hit = stores.get(number)
        if hit and now - hit[0] < _STORE_CACHE_S:
            return hit[1]
        async with pool.connection(timeout=3) as conn:
            cur = await conn.execute("SELECT store, phone_survey FROM lb_stores WHERE "
                                     "number = %s AND NOT revoked", (number,))
            row = await cur.fetchone()
        if len(stores) >= _STORE_CACHE_MAX:
            stores.clear()
        stores[number] = (now, tuple(row) if row else None)
        return stores[number][1]

    async def handle(request):
        import psycopg
        import psycopg_pool
        accept = request.headers.get("Accept-Language", "")
        asked = request.query.get("lang")
        lang = pick_lang(accept, list(LANGS), "ru", asked)
        who = client_address(request.remote, request.headers.get("X-Forwarded-For"),
                             cfg.trusted_proxies)
        if not per_address.take(who):
            count("phone_rate_limited")
            return respond(message_page(lang, "busy"), 429, 60)
        try:
            fields = phone_link.parse(request.match_info["token"])
        except phone_link.BadToken:
            count("phone_forged")
            return respond(message_page(lang, "forged"), 404)
        try:
            await asyncio.wait_for(at_once.acquire(), 2.0)
        except asyncio.TimeoutError:
            count("phone_busy")
            return respond(message_page(lang, "busy"), 503, 10)
        try:
            return await _checked(request, fields, accept, asked, lang)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as e:
            count("phone_db_away")
            log.error("phone survey: the database: %s", str(e).strip()[:200])
            return respond(message_page(lang, "away"), 503, 30)
        finally:
            at_once.release()

    async def _checked(request, fields, accept, asked, lang):
        found = await store_of(fields["store_number"])
        if found is None:
            count("phone_forged")
            return respond(message_page(lang, "forged"), 404)
        store, survey = found
        try:
            phone_link.verify(fields, phone_link.store_key(cfg.phone_secret, store), time.time())
        except phone_link.BadToken as e:
            count("phone_" + e.code)
            return respond(message_page(lang, e.code), 404 if e.code == "forged" else 410)
        ref = phone_link.ref_text(fields["ref"])
        if not per_link.take(f"{store}/{ref}"):
            count("phone_rate_limited")
            return respond(message_page(lang, "busy"), 429, 60)
        if (store, ref) in answered:
            count("phone_used")
            return respond(message_page(lang, "used"), 409)
        if not per_store.take(store):
            count("phone_rate_limited")
            return respond(message_page(lang, "busy"), 429, 10)
        if not survey:
            count("phone_no_survey")
            return respond(message_page(lang, "away"), 503, 300)
        lang = pick_lang(accept, survey["languages"], survey.get("default_lang", "ru"), asked)
        action = request.path
        others = [x for x in survey["languages"] if x in WORDS and x != lang]
        other = others[0] if others else None
        async with pool.connection(timeout=3) as conn:
            cur = await conn.execute("SELECT 1 FROM lb_phone_answers WHERE store = %s AND "
                                     "ref = %s", (store, ref))
            if await cur.fetchone():
                known_answered((store, ref))
                count("phone_used")
                return respond(message_page(lang, "used"), 409)
            if request.method == "GET":
                count("phone_pages")
                return respond(form_page(survey, lang, action, other=other))
            if (request.content_length or 0) > MAX_FORM:
                return respond(message_page(lang, "forged"), 413)
            body = await request.content.read(MAX_FORM + 1)
            form = parse_qs(body[:MAX_FORM].decode("utf-8", "replace"), max_num_fields=20)
            lang = pick_lang("", survey["languages"], lang, (form.get("lang") or [""])[0])
            try:
                doc = read_answers(survey, form, lang)
            except FormError as e:
                values = {k: v[0] for k, v in form.items()}
                return respond(form_page(survey, lang, action, values, str(e), other), 400)
            except ValueError:
                count("phone_bad_form")
                return respond(message_page(lang, "forged"), 400)
            return await _store(conn, store, ref, lang, doc, survey)

    async def _store(conn, store, ref, lang, doc, survey):
        import psycopg
        for _ in range(3):  # a response id taken already (1 in 10^11): another
            response = new_response_id()
            doc["response"] = response
            doc["at_ms"] = int(time.time() * 1000)
            try:
                async with conn.transaction():
                    cur = await conn.execute(
                        "INSERT INTO lb_phone_answers (store, ref, response, lang, doc) VALUES "
                        "(%s, %s, %s, %s, %s::jsonb) ON CONFLICT (store, ref) DO NOTHING "
                        "RETURNING response", (store, ref, response, lang, json.dumps(doc)))
                    if await cur.fetchone() is None:
                        known_answered((store, ref))
                        count("phone_used")
                        return respond(message_page(lang, "used"), 409)
                    # The receipt's record, if it is here already (else its
                    # ingest joins the answer when it comes).
                    await conn.execute("UPDATE lb_records SET phone = %s::jsonb WHERE "
                                       "store = %s AND phone_ref = %s",
                                       (json.dumps(doc), store, ref))
                break
            except psycopg.errors.UniqueViolation:
                continue
        known_answered((store, ref))
        count("phone_answers")
        log.info("phone answer %s for store %s", response, store)
        return respond(thanks_page(lang, response, survey.get("review")))

    return [web.get("/s/{token}", handle), web.post("/s/{token}", handle),
            web.get("/S/{token}", handle), web.post("/S/{token}", handle)]
