"""Scheduled reports (docs/central.md, "Reports by e-mail"): a user who
subscribed gets, after each day or week, an e-mail of their stores: the
headline figures in the body, a PDF (reportlab) and an XLSX (openpyxl)
attached. The figures are the dashboard API's (queries.py), for the same
user and days.

Each (user, kind, first day) is one row of lb_report_sends, made once
whichever worker sees it first; a worker claims a due row for a while
before sending, so two workers never send the same report, and a failed
send is tried again later (the dashboard shows it)."""

from __future__ import annotations

import asyncio
import html
import io
import logging
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from .. import smtp
from . import queries

log = logging.getLogger(__name__)

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")  # Debian's fonts-dejavu-core: Cyrillic
CLAIM_MIN = 15            # a claimed send belongs to its worker this long
MAX_ATTEMPTS = 20
SHOWN_STORES = 10         # worst and best in the e-mail body; all in the attachments

WORDS = {
    "en": {"daily": "Daily report", "weekly": "Weekly report", "stores": "stores",
           "nps": "NPS", "ci": "95% interval", "answers": "answers", "receipts": "receipts",
           "response": "response rate", "before": "the period before", "csat": "CSAT",
           "rank": "#", "store": "Store", "region": "Region", "score": "Ranked by",
           "worst": "Lowest ranked stores", "all": "All stores (attached)",
           "shrink": "Ranked by NPS pulled toward the average for stores with few answers",
           "days": "Days", "day": "Day", "reasons": "Reasons", "reason": "Reason",
           "group": "Group", "count": "Count", "open": "Open the dashboard",
           "phone": "On the phone"},
    "ru": {"daily": "Ежедневный отчёт", "weekly": "Еженедельный отчёт", "stores": "магазинов",
           "nps": "NPS", "ci": "95% интервал", "answers": "ответов", "receipts": "чеков",
           "response": "доля ответов", "before": "период до этого", "csat": "CSAT",
           "rank": "№", "store": "Магазин", "region": "Регион", "score": "Рейтинг",
           "worst": "Магазины внизу рейтинга", "all": "Все магазины (во вложении)",
           "shrink": "Рейтинг: NPS, подтянутый к среднему у магазинов с малым числом ответов",
           "days": "Дни", "day": "День", "reasons": "Причины", "reason": "Причина",
           "group": "Группа", "count": "Число", "open": "Открыть панель",
           "phone": "В телефоне"},
}


class ReportError(Exception):
    """A report that cannot be made on this host (a missing font)."""


def due_period(every: str, today: date) -> tuple[date, date]:
    """The last whole period before `today`: yesterday, or last Monday-Sunday."""
    if every == "daily":
        d = today - timedelta(days=1)
        return d, d
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(days=7), monday - timedelta(days=1)


async def content(conn, user: str, period: tuple[date, date]) -> dict:
    """Everything a report shows, from the dashboard's queries."""
    days = (period[1] - period[0]).days + 1
    before = (period[0] - timedelta(days=days), period[0] - timedelta(days=1))
    league = await queries.league(conn, user, period)
    return {"period": period, "league": league,
            "summary": await queries.summary(conn, user, period),
            "previous": await queries.summary(conn, user, before),
            "trend": await queries.trend(conn, user, period),
            "reasons": await queries.reasons(conn, user, period),
            "phone": await queries.phone(conn, user, period)}


def _fmt(v, suffix: str = "") -> str:
    return "–" if v is None else f"{v}{suffix}"


def headline(c: dict, w: dict) -> list[tuple[str, str]]:
    s, p = c["summary"], c["previous"]
    nps = s["nps"]
    ci = ("" if nps["ci95_low"] is None
          else f" ({w['ci']} {nps['ci95_low']} … {nps['ci95_high']})")
    return [(w["nps"], f"{_fmt(nps['nps'])}{ci}"),
            (w["answers"], str(nps["n"])),
            (w["response"], _fmt(s["response"]["rate_pct"], " %")),
            (w["csat"], _fmt(s["csat"]["mean"])),
            (w["receipts"], str(s["receipts"])),
            (f"{w['nps']}, {w['before']}", _fmt(p["nps"]["nps"]))] + (
        # The shoppers' phone survey (docs/phone-survey.md), when it has answers.
        [(w["phone"], f"{w['nps']} {_fmt(c['phone']['nps']['nps'])} "
                      f"({w['answers']}: {c['phone']['answers']})")]
        if c.get("phone") and c["phone"]["answers"] else [])


def _columns(w: dict) -> list[tuple[str, str]]:
    return [("rank", w["rank"]), ("name", w["store"]), ("region", w["region"]),
            ("score", w["score"]), ("nps", w["nps"]), ("n", w["answers"]),
            ("response_pct", w["response"] + ", %")]


def html_body(c: dict, w: dict, title: str, url: str | None) -> str:
    e = html.escape
    rows = "".join(f"<tr><th align=left>{e(k)}</th><td>{e(v)}</td></tr>"
                   for k, v in headline(c, w))
    cols = _columns(w)
    stores = c["league"]["stores"][:SHOWN_STORES]
    table = ("<table border=1 cellpadding=4 cellspacing=0><tr>"
             + "".join(f"<th>{e(h)}</th>" for _, h in cols) + "</tr>"
             + "".join("<tr>" + "".join(f"<td>{e(_fmt(s[k]))}</td>" for k, _ in cols)
                       + "</tr>" for s in stores) + "</table>")
    link = f'<p><a href="{e(url)}">{e(w["open"])}</a></p>' if url else ""
    return (f"<html><body style='font-family:sans-serif'><h2>{e(title)}</h2>"
            f"<table cellpadding=4>{rows}</table><h3>{e(w['worst'])}</h3>"
            f"<p><small>{e(w['shrink'])}: {e(c['league']['formula'])}, "
            f"W = {c['league']['weight']}</small></p>{table}<p>{e(w['all'])}</p>{link}"
            f"</body></html>")


def pdf(c: dict, w: dict, title: str) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
    if not (FONT_DIR / "DejaVuSans.ttf").exists():
        raise ReportError(f"no {FONT_DIR / 'DejaVuSans.ttf'} for the PDF's Cyrillic: "
                          f"apt-get install fonts-dejavu-core")
    if "DejaVu" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("DejaVu", str(FONT_DIR / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont("DejaVu-Bold", str(FONT_DIR / "DejaVuSans-Bold.ttf")))
    styles = getSampleStyleSheet()
    for st in styles.byName.values():
        st.fontName = "DejaVu-Bold" if st.name.startswith(("Heading", "Title")) else "DejaVu"
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, title=title)
    grid = TableStyle([("FONT", (0, 0), (-1, -1), "DejaVu", 9),
                       ("FONT", (0, 0), (-1, 0), "DejaVu-Bold", 9),
                       ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                       ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke)])
    cols = _columns(w)
    story = [Paragraph(html.escape(title), styles["Title"]),
             Table([list(r) for r in headline(c, w)], style=grid), Spacer(1, 12),
             Paragraph(html.escape(f"{w['shrink']}: {c['league']['formula']}, "
                                   f"W = {c['league']['weight']}"), styles["Normal"]),
             Spacer(1, 6),
             Table([[h for _, h in cols]] + [[_fmt(s[k]) for k, _ in cols]
                                             for s in c["league"]["stores"]],
                   style=grid, repeatRows=1)]
    doc.build(story)
    return out.getvalue()


def xlsx(c: dict, w: dict, title: str) -> bytes:
    from openpyxl import Workbook
    book = Workbook()
    sheet = book.active
    sheet.title = w["store"][:31]
    cols = _columns(w) + [("store", "id"), ("ci95_low", "NPS 95% −"), ("ci95_high", "NPS 95% +"),
                          ("csat_mean", w["csat"]), ("asked", "asked"),
                          ("answered", "answered")]
    sheet.append([title])
    sheet.append([h for _, h in cols])
    for s in c["league"]["stores"]:
        sheet.append([s[k] for k, _ in cols])
    days = book.create_sheet(w["days"][:31])
    dcols = [("day", w["day"]), ("nps", w["nps"]), ("ci95_low", "NPS 95% −"),
             ("ci95_high", "NPS 95% +"), ("n", w["answers"]), ("response_pct", w["response"])]
    days.append([h for _, h in dcols])
    for d in c["trend"]:
        days.append([date.fromisoformat(d["day"]) if k == "day" else d[k] for k, _ in dcols])
    why = book.create_sheet(w["reasons"][:31])
    why.append([w["group"], w["reason"], w["count"]])
    for grp, reasons in c["reasons"].items():
        for reason, n in reasons.items():
            why.append([grp, reason, n])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def message(cfg, to: str, lang: str, every: str, c: dict) -> EmailMessage:
    w = WORDS.get(lang, WORDS["en"])
    first, last = c["period"]
    span = first.isoformat() if first == last else f"{first.isoformat()} – {last.isoformat()}"
    title = f"{w[every]}: {span}"
    msg = EmailMessage()
    msg["From"] = cfg.smtp_from
    msg["To"] = to
    msg["Subject"] = f"Loyalty Button · {title}"
    msg.set_content("\n".join(f"{k}: {v}" for k, v in headline(c, w)))
    msg.add_alternative(html_body(c, w, title, cfg.public_url), subtype="html")
    stem = f"report-{every}-{first.isoformat()}"
    msg.add_attachment(pdf(c, w, title), maintype="application", subtype="pdf",
                       filename=f"{stem}.pdf")
    msg.add_attachment(xlsx(c, w, title), maintype="application",
                       subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                       filename=f"{stem}.xlsx")
    return msg


async def plan(conn, today: date) -> int:
    """A send row for every subscription's last whole period not yet planned."""
    made = 0
    for every in ("daily", "weekly"):
        first, last = due_period(every, today)
        cur = await conn.execute(
            "INSERT INTO lb_report_sends (name, every, first_day, last_day) SELECT name, every, "
            "%s, %s FROM lb_subscriptions WHERE every = %s ON CONFLICT DO NOTHING",
            (first, last, every))
        made += cur.rowcount
    return made


async def send_due(cfg, pool, today: date | None = None, read_pool=None) -> dict:
    """Plan, claim and send what is due now; {'sent': n, 'failed': n}. The
    figures are read from `read_pool` (a replica) when given."""
    today = today or datetime.now(cfg.tz).date()
    done = {"sent": 0, "failed": 0}
    async with pool.connection() as conn:
        await plan(conn, today)
        cur = await conn.execute(
            "UPDATE lb_report_sends AS s SET attempts = s.attempts + 1, "
            "next_try = now() + make_interval(mins => %s) FROM lb_users AS u "
            "WHERE u.name = s.name AND (s.name, s.every, s.first_day) IN ("
            "SELECT name, every, first_day FROM lb_report_sends WHERE state <> 'sent' AND "
            "next_try <= now() AND attempts < %s ORDER BY next_try LIMIT 10 "
            "FOR UPDATE SKIP LOCKED) "
            "RETURNING s.name, s.every, s.first_day, s.last_day, s.attempts, u.email, u.lang",
            (CLAIM_MIN, MAX_ATTEMPTS))
        claimed = await cur.fetchall()
    for name, every, first, last, attempts, email, lang in claimed:
        error = None
        try:
            if not email:
                raise smtp.MailError(f"user {name} has no e-mail address (loyalty-button "
                                     f"central user add {name} --email ...)")
            if not cfg.smtp_host:
                raise smtp.MailError("no mail server: set smtp.host in central.yaml")
            async with (read_pool or pool).connection() as conn:
                c = await content(conn, name, (first, last))
            msg = await asyncio.get_running_loop().run_in_executor(
                None, message, cfg, email, lang, every, c)
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: smtp.send(msg, cfg.smtp_host, cfg.smtp_port, 30.0,
                                        cfg.smtp_starttls, cfg.smtp_user, cfg.smtp_password))
        except (smtp.MailError, ReportError) as e:
            error = str(e)
        except Exception as e:  # a bug in one report must not stop the others
            log.exception("report %s %s %s", name, every, first)
            error = f"{type(e).__name__}: {e}"
        async with pool.connection() as conn:
            if error is None:
                await conn.execute("UPDATE lb_report_sends SET state = 'sent', sent_at = now(), "
                                   "last_error = NULL WHERE name = %s AND every = %s AND "
                                   "first_day = %s", (name, every, first))
                done["sent"] += 1
                log.info("report %s %s from %s sent to %s", every, name, first, email)
            else:
                # Tried again after 1, 2, 4... minutes, at most an hour apart.
                wait = min(60, 2 ** (attempts - 1))
                await conn.execute("UPDATE lb_report_sends SET state = 'failed', last_error = "
                                   "%s, next_try = now() + make_interval(mins => %s) WHERE "
                                   "name = %s AND every = %s AND first_day = %s",
                                   (error[:500], wait, name, every, first))
                done["failed"] += 1
                log.warning("report %s %s from %s not sent (attempt %d): %s", every, name,
                            first, attempts, error)
    return done


async def scheduler(cfg, pool, read_pool=None) -> None:
    while True:
        try:
            await send_due(cfg, pool, read_pool=read_pool)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the database away: try at the next turn
            log.warning("reports: %s", e)
        await asyncio.sleep(cfg.reports_every_s)
