"""The question catalogue: questions (texts in several languages), the rules
that pick one from a receipt, and the till -> panel map. One YAML file,
validated as a whole: every problem is listed with where it is, and nothing
of a bad file is used (the concentrator keeps the last good catalogue).

docs/catalogue.md describes the file for the people who write it."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lbpanel import boards, protocol
from lbpanel.chrome import CHROME, chrome

from ..settings import Checker, SettingsError, clock_span, in_span, load_yaml
from . import text_fit

log = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Reasons a receipt gets no question; they are stored in the record.
NO_RULE = "no_rule"
SAMPLED_OUT = "sampled_out"
QUIET_PERIOD = "quiet_period"
# The longest session id the protocol allows: the size check of every
# question is made with it, so no real receipt can push a message over.
_LONGEST_SESSION = "x" * protocol.MAX_ID

_TOP_KEYS = {"languages", "default_lang", "quiet_days", "tills", "questions", "rules",
             "phone_survey"}
_QUESTION_KEYS = {"kind", "timeout_s", "text", "labels", "options", "why", "qr"}
_QR_KEYS = {"site", "place", "url", "text", "to"}
# Review sites: where a shopper writes a review of the store, from the
# store's id on that site (its "place"): the link its QR opens. Check a
# store's link once by scanning the panel's QR.
REVIEW_SITES = {
    "yandex_maps": "https://yandex.ru/maps/org/{place}/reviews/",
    "2gis": "https://2gis.ru/firm/{place}/tab/reviews",
    "google_maps": "https://search.google.com/local/writereview?placeid={place}",
}

# The shopper's phone (docs/phone-survey.md): a free-text question exists
# only there; a survey asks 1-3 questions of these kinds.
COMMENT = "comment"
PHONE_KINDS = ("nps", "csat", "choice", COMMENT)
MAX_PHONE_QUESTIONS = 3
MAX_COMMENT = 1000
_PHONE_KEYS = {"ask", "after", "to", "expiry_h", "text", "review"}

_RULE_KEYS = {"name", "ask", "when", "sample", "quiet_days"}
_WHEN_KEYS = {"member", "tills", "hours", "days", "items_min", "items_max",
              "total_min", "total_max"}


class CatalogueError(SettingsError):
    """A question catalogue that cannot be used."""


@dataclass(frozen=True)
class Till:
    panel: str
    lang: str | None


@dataclass
class Rule:
    name: str
    ask: str
    member: bool | None = None
    tills: frozenset | None = None
    hours: list[tuple[int, int]] | None = None  # minutes since midnight, [start, end)
    days: frozenset | None = None
    items_min: int | None = None
    items_max: int | None = None
    total_min: float | None = None
    total_max: float | None = None
    sample: float = 1.0
    quiet_days: float = 0

    def matches(self, receipt: dict, local: dt.datetime) -> bool:
        member = receipt.get("loyalty_id") is not None
        if self.member is not None and member != self.member:
            return False
        if self.tills is not None and receipt["till"] not in self.tills:
            return False
        if self.days is not None and DAYS[local.weekday()] not in self.days:
            return False
        if self.hours is not None:
            minute = local.hour * 60 + local.minute
            if not any(in_span(minute, span) for span in self.hours):
                return False
        if not _in_range(receipt.get("items"), self.items_min, self.items_max):
            return False
        if not _in_range(receipt.get("total"), self.total_min, self.total_max):
            return False
        return True


def _in_range(value, lo, hi) -> bool:
    if lo is None and hi is None:
        return True
    if value is None:
        return False  # a rule about basket size does not match an unknown basket
    return (lo is None or value >= lo) and (hi is None or value <= hi)


@dataclass
class Decision:
    """What to do with one receipt: ask `qid` in `lang`, or not (`reason`)."""
    qid: str | None
    lang: str | None
    rule: str | None
    reason: str | None = None
    quiet_days: float = 0


@dataclass
class Catalogue:
    languages: list[str]
    default_lang: str
    tills: dict[str, Till]
    rules: list[Rule]
    # (qid, lang) -> the question fields of a panel message, checked
    questions: dict[tuple[str, str], dict] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    # The phone survey, or None: {"ask": [qid], "after": set of qids or
    # None (every question), "to", "expiry_h", "qr_text": {lang: text},
    # "review": {"url", "text": {lang}} or None}
    phone: dict | None = None
    # qid -> {lang: fields} of the free-text questions (phone only)
    comments: dict[str, dict] = field(default_factory=dict)
    source: str = ""
    digest: str = ""

    def panels(self) -> set[str]:
        return {t.panel for t in self.tills.values()}

    def language(self, receipt: dict) -> str:
        """The shopper's language if the POS knows it and we have it, else
        the till's, else the store's."""
        lang = receipt.get("lang")
        if lang in self.languages:
            return lang
        till = self.tills.get(receipt["till"])
        return self.till_language(till) if till else self.default_lang

    def till_language(self, till: Till) -> str:
        """A till's language: its own, else the store's (also its panel's
        screens', service/panel_config.py)."""
        return till.lang or self.default_lang

    def decide(self, receipt: dict, session: str, local: dt.datetime,
               last_asked: float | None, now: float) -> Decision:
        """First matching rule wins; its sampling and quiet period decide
        whether this shopper is asked. `last_asked` is when this loyalty id
        was last asked (Unix seconds), if ever."""
        lang = self.language(receipt)
        for rule in self.rules:
            if not rule.matches(receipt, local):
                continue
            if rule.sample < 1.0 and _sample_point(session) >= rule.sample:
                return Decision(None, lang, rule.name, SAMPLED_OUT)
            if (rule.quiet_days and last_asked is not None
                    and now - last_asked < rule.quiet_days * 86400):
                return Decision(None, lang, rule.name, QUIET_PERIOD)
            return Decision(rule.ask, lang, rule.name, quiet_days=rule.quiet_days)
        return Decision(None, lang, None, NO_RULE)

    def question_fields(self, qid: str, lang: str) -> dict:
        return self.questions[(qid, lang)]

    def names(self) -> dict:
        """What people call the questions, their options and the "why?"
        reasons, per language, for reports that would otherwise show ids:
        {"questions": {qid: {lang: text}}, "options": {"qid:oid": {lang:
        text}}, "reasons": {rid: {lang: text}}}."""
        out = {"questions": {}, "options": {}, "reasons": {}}
        for (qid, lang), f in self.questions.items():
            out["questions"].setdefault(qid, {})[lang] = f["text"]
            for o in f.get("options") or ():
                out["options"].setdefault(f"{qid}:{o['id']}", {})[lang] = o["text"]
            for r in (f.get("why") or {}).get("reasons") or ():
                out["reasons"].setdefault(r["id"], {})[lang] = r["text"]
        return out

    def phone_after(self, qid: str) -> bool:
        """Does the shopper asked `qid` get the phone survey's link?"""
        return self.phone is not None and (self.phone["after"] is None
                                           or qid in self.phone["after"])

    def phone_survey(self) -> dict | None:
        """What the central service needs to show the survey page (sent with
        the store's status, forward/central.py): the questions' texts in
        every language, the review invitation, the languages."""
        if self.phone is None:
            return None
        questions = []
        for qid in self.phone["ask"]:
            per = self.comments.get(qid) or {lang: self.questions[(qid, lang)]
                                             for lang in self.languages}
            first = per[self.languages[0]]
            q = {"qid": qid, "kind": first["kind"],
                 "text": {lang: f["text"] for lang, f in per.items()}}
            if first.get("labels"):
                q["labels"] = {end: {lang: f["labels"][end] for lang, f in per.items()}
                               for end in first["labels"]}
            if first.get("options"):
                q["options"] = [{"id": o["id"], "text": {lang: f["options"][i]["text"]
                                                         for lang, f in per.items()}}
                                for i, o in enumerate(first["options"])]
            questions.append(q)
        return {"languages": self.languages, "default_lang": self.default_lang,
                "expiry_h": self.phone["expiry_h"], "questions": questions,
                "review": self.phone["review"]}

    def max_quiet_days(self) -> float:
        return max([r.quiet_days for r in self.rules] + [0])


def _sample_point(session: str) -> float:
    """A fixed point in [0, 1) per session: the same receipt sent twice is
    sampled the same way, and a run can be reproduced."""
    return int.from_bytes(hashlib.sha256(session.encode()).digest()[:8], "big") / 2**64


# --- loading -----------------------------------------------------------------

def _texts(check: Checker, where: str, node, languages: list[str]) -> dict[str, str]:
    """A text in every language: {ru: ..., en: ...}."""
    if isinstance(node, str) and len(languages) == 1:
        node = {languages[0]: node}
    if not isinstance(node, dict):
        check.fail(where, f"must give the text per language ({', '.join(languages)})")
        return {}
    out = {}
    for lang in languages:
        text = node.get(lang)
        if not isinstance(text, str) or not 0 < len(text.strip()) <= protocol.MAX_TEXT:
            check.fail(f"{where}.{lang}", f"needs a text of 1-{protocol.MAX_TEXT} characters")
            continue
        missing = boards.covers(boards.TEXT_RANGES, text)
        if missing:
            # The panel would draw '?' for each: say so here, not at the till.
            check.fail(f"{where}.{lang}", "the panels' fonts cannot draw "
                       + ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing)
                       + ": the shopper would see '?'; the fonts have Latin, Cyrillic and "
                         "common punctuation, no emoji or other scripts")
        else:
            out[lang] = text
    for lang in node:
        if lang not in languages:
            check.fail(f"{where}.{lang}", f"language not in languages ({', '.join(languages)})")
    return out


def _choices(check: Checker, where: str, node, languages: list[str], lo: int, hi: int):
    """{id: {lang: text}} in order -> [(id, {lang: text})]."""
    node = check.mapping(where, node)
    if node and not lo <= len(node) <= hi:
        check.fail(where, f"needs {lo}-{hi} entries, has {len(node)}")
    out = []
    for cid, texts in node.items():
        if check.ident(f"{where}.{cid}", cid):
            out.append((cid, _texts(check, f"{where}.{cid}", texts, languages)))
    return out


def _question(check: Checker, qid: str, node, languages: list[str]) -> dict[str, dict]:
    """-> {lang: question fields} for one catalogue question."""
    where = f"questions.{qid}"
    before = len(check.problems)
    node = check.mapping(where, node)
    check.keys(where, node, _QUESTION_KEYS)
    kind = node.get("kind")
    if kind not in protocol.KINDS:
        check.fail(f"{where}.kind", f"must be one of {', '.join(protocol.KINDS)}, got {kind!r}")
        return {}
    timeout = check.number(f"{where}.timeout_s", node.get("timeout_s", 20),
                           *protocol.TIMEOUT_RANGE, integer=True)
    text = _texts(check, f"{where}.text", node.get("text"), languages)
    options = []
    if kind == "choice":
        options = _choices(check, f"{where}.options", node.get("options"), languages,
                                2, protocol.MAX_OPTIONS)
    elif "options" in node:
        check.fail(f"{where}.options", "only a 'choice' question has options")
    labels = {}
    if "labels" in node:
        lab = check.mapping(f"{where}.labels", node["labels"])
        check.keys(f"{where}.labels", lab, {"low", "high"})
        for end in ("low", "high"):
            if end in lab:
                labels[end] = _texts(check, f"{where}.labels.{end}", lab[end], languages)
    why = None
    if "why" in node:
        if kind == "choice":
            check.fail(f"{where}.why", "a 'choice' question has no 'why?' follow-up")
        else:
            w = check.mapping(f"{where}.why", node["why"])
            check.keys(f"{where}.why", w, {"text", "reasons"})
            why = (_texts(check, f"{where}.why.text", w.get("text"), languages),
                   _choices(check, f"{where}.why.reasons", w.get("reasons"), languages,
                                 1, protocol.MAX_REASONS))
    qr = _qr(check, f"{where}.qr", node["qr"], languages) if "qr" in node else None
    if len(check.problems) > before:
        return {}
    out = {}
    for lang in languages:
        fields = {"qid": qid, "kind": kind, "lang": lang, "text": text[lang],
                  "timeout_s": timeout}
        if qr:
            fields["qr"] = {"url": qr["url"], "text": qr["text"][lang], "to": qr["to"]}
        if options:
            fields["options"] = [{"id": oid, "text": t[lang]} for oid, t in options]
        if labels:
            fields["labels"] = {end: t[lang] for end, t in labels.items()}
        if why:
            fields["why"] = {"text": why[0][lang],
                             "reasons": [{"id": rid, "text": t[lang]} for rid, t in why[1]]}
        # The panel's own check, with the longest possible envelope: what
        # passes here can always be sent.
        probe = protocol.envelope("question", "x" * protocol.MAX_ID, 1 << 40,
                                  "x" * protocol.MAX_ID, "x" * protocol.MAX_ID)
        probe.update(fields, session=_LONGEST_SESSION)
        try:
            protocol.encode(probe)
        except protocol.ProtocolError as e:
            check.fail(f"{where} ({lang})", e.message)
            continue
        out[lang] = fields
    return out


def _comment(check: Checker, qid: str, node, languages: list[str]) -> dict[str, dict]:
    """A free-text question: asked on the phone only, a text per language."""
    where = f"questions.{qid}"
    before = len(check.problems)
    node = check.mapping(where, node)
    check.keys(where, node, {"kind", "text"})
    text = _texts(check, f"{where}.text", node.get("text"), languages)
    if len(check.problems) > before:
        return {}
    return {lang: {"qid": qid, "kind": COMMENT, "lang": lang, "text": text[lang]}
            for lang in languages}


def _phone(check: Checker, node, kinds: dict[str, str], languages: list[str]) -> dict | None:
    """phone_survey: which questions the phone asks, after which panel
    questions (and answers: to all, or the unhappy) the link is offered,
    how long it lasts, and the review invitation of its thank-you page."""
    where = "phone_survey"
    node = check.mapping(where, node)
    check.keys(where, node, _PHONE_KEYS)
    before = len(check.problems)
    ask = node.get("ask")
    if not isinstance(ask, list) or not 1 <= len(ask) <= MAX_PHONE_QUESTIONS:
        check.fail(f"{where}.ask", f"list 1-{MAX_PHONE_QUESTIONS} question ids to ask on the "
                                   f"phone (a short survey is answered)")
        ask = []
    for qid in ask:
        if qid not in kinds:
            check.fail(f"{where}.ask", f"names no question in questions: {qid!r}")
        elif kinds[qid] not in PHONE_KINDS:
            check.fail(f"{where}.ask", f"{qid!r} is a {kinds[qid]} question; the phone asks "
                                       f"{', '.join(PHONE_KINDS)}")
    if len(set(map(str, ask))) != len(ask):
        check.fail(f"{where}.ask", "names a question twice")
    after = node.get("after", "all")
    if after == "all":
        after = None
    elif not isinstance(after, list) or not after:
        check.fail(f"{where}.after", "list the panel questions whose shoppers get the link, "
                                     "or all")
        after = None
    else:
        for qid in after:
            if kinds.get(qid) in (None, COMMENT):
                check.fail(f"{where}.after", f"names no panel question: {qid!r}")
        after = frozenset(after)
    to = node.get("to", "all")
    if to not in protocol.QR_TO:
        check.fail(f"{where}.to", f"must be one of {', '.join(protocol.QR_TO)}, got {to!r}")
    expiry = check.number(f"{where}.expiry_h", node.get("expiry_h", 72), 1, 24 * 90, True)
    if "text" in node:
        text = _texts(check, f"{where}.text", node["text"], languages)
    else:
        text = {lang: chrome(lang, "scan") for lang in languages}
    review = None
    if "review" in node:
        r = _qr(check, f"{where}.review", node["review"], languages)
        if r:
            if r["to"] != "all":
                check.fail(f"{where}.review.to", "the review invitation is shown to everyone "
                                                 "(review sites forbid gating)")
            review = {"url": r["url"], "text": r["text"]}
    if len(check.problems) > before:
        return None
    return {"ask": [str(q) for q in ask], "after": after, "to": to, "expiry_h": expiry,
            "qr_text": text, "review": review}


def _qr(check: Checker, where: str, node, languages: list[str]) -> dict | None:
    """The thank-you screen's QR: a review site and the store's place on it,
    or a link of the retailer's own; its line of text; and to whom it is
    offered ("all", the default; "unhappy" only for a link of one's own:
    review sites forbid inviting only the happy, or only the unhappy)."""
    node = check.mapping(where, node)
    check.keys(where, node, _QR_KEYS)
    before = len(check.problems)
    site, url = node.get("site"), node.get("url")
    if (site is None) == (url is None):
        check.fail(where, "needs either site: (with place:) or url:")
        return None
    if site is not None:
        if site not in REVIEW_SITES:
            check.fail(f"{where}.site", f"must be one of {', '.join(REVIEW_SITES)}, got {site!r}")
            return None
        place = node.get("place")
        if isinstance(place, int):
            place = str(place)
        if not isinstance(place, str) or not place or \
                any(c not in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
                    for c in place):
            check.fail(f"{where}.place", "needs the store's id on the site (letters, digits, "
                                         "'-' and '_'), e.g. the number in its page's address")
            return None
        url = REVIEW_SITES[site].format(place=place)
    elif "place" in node:
        check.fail(f"{where}.place", "goes with site:, not with url:")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or \
            len(url) > protocol.MAX_URL:
        check.fail(f"{where}.url", f"must be an http(s) address of at most {protocol.MAX_URL} "
                                   f"characters")
    to = node.get("to", "all")
    if to not in protocol.QR_TO:
        check.fail(f"{where}.to", f"must be one of {', '.join(protocol.QR_TO)}, got {to!r}")
    elif to == "unhappy" and site is not None:
        check.fail(f"{where}.to", "review sites forbid inviting only some shoppers (the happy, "
                                  "or the unhappy): use to: all, or a url: of your own survey")
    if "text" in node:
        text = _texts(check, f"{where}.text", node["text"], languages)
    else:
        # The panel's own words for it (chrome.py), in the languages it has.
        missing = [lang for lang in languages if lang not in CHROME]
        if missing:
            check.fail(f"{where}.text", f"needs the line beside the code in "
                                        f"{', '.join(missing)} (there is no default in it)")
        key = "review" if site else "scan"
        text = {lang: chrome(lang, key) for lang in languages}
    if len(check.problems) > before:
        return None
    return {"url": url, "text": text, "to": to}


def _rule(check: Checker, i: int, node, qids: set[str], tills: dict, default_quiet) -> Rule | None:
    where = f"rules[{i}]"
    node = check.mapping(where, node)
    check.keys(where, node, _RULE_KEYS)
    name = node.get("name", f"rule-{i + 1}")
    ask = node.get("ask")
    if not isinstance(ask, str) or ask not in qids:
        check.fail(f"{where}.ask", f"names no question in questions: {ask!r}")
    rule = Rule(name=str(name), ask=ask)
    rule.sample = check.number(f"{where}.sample", node.get("sample", 1.0), 0.0, 1.0) or 0.0
    rule.quiet_days = check.number(f"{where}.quiet_days", node.get("quiet_days", default_quiet),
                                   0, 3650) or 0
    when = check.mapping(f"{where}.when", node.get("when", {}) or {})
    check.keys(f"{where}.when", when, _WHEN_KEYS)
    if "member" in when:
        if not isinstance(when["member"], bool):
            check.fail(f"{where}.when.member", "must be true or false")
        rule.member = when["member"]
    if "tills" in when:
        ts = when["tills"]
        if not isinstance(ts, list) or not ts:
            check.fail(f"{where}.when.tills", "must be a list of till ids")
        else:
            for t in ts:
                if str(t) not in tills:
                    check.fail(f"{where}.when.tills", f"till {t!r} is not in tills")
            rule.tills = frozenset(str(t) for t in ts)
    if "days" in when:
        ds = when["days"]
        if not isinstance(ds, list) or not ds or any(d not in DAYS for d in ds):
            check.fail(f"{where}.when.days", f"must be a list of {', '.join(DAYS)}")
        else:
            rule.days = frozenset(ds)
    if "hours" in when:
        hs = when["hours"]
        hs = [hs] if isinstance(hs, str) else hs
        if not isinstance(hs, list) or not hs:
            check.fail(f"{where}.when.hours", "must be a list of spans like '08:00-12:00'")
        else:
            rule.hours = []
            for h in hs:
                span = clock_span(h)
                if span is None:
                    check.fail(f"{where}.when.hours", f"must be a span like '08:00-12:30' "
                                                      f"(local time), got {h!r}")
                else:
                    rule.hours.append(span)
    for key in ("items_min", "items_max"):
        if key in when:
            setattr(rule, key, check.number(f"{where}.when.{key}", when[key], 0, 100000, True))
    for key in ("total_min", "total_max"):
        if key in when:
            setattr(rule, key, check.number(f"{where}.when.{key}", when[key], 0, 1e9))
    return rule


def parse(text: str, source: str = "<catalogue>") -> Catalogue:
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise CatalogueError([f"{source}: not valid YAML{at}: {problem}"]) from None
    check = Checker()
    doc = check.mapping(source, doc)
    check.unicode("", doc)
    if check.problems:
        raise CatalogueError(check.problems)
    check.keys(source, doc, _TOP_KEYS)

    languages = doc.get("languages")
    if not isinstance(languages, list) or not languages \
            or not all(protocol.valid_id(x) for x in languages):
        check.fail("languages", "must be a list of language codes, e.g. [ru, en]")
        raise CatalogueError(check.problems)
    languages = [str(x) for x in languages]
    default_lang = doc.get("default_lang", languages[0])
    if default_lang not in languages:
        check.fail("default_lang", f"must be one of languages, got {default_lang!r}")

    tills: dict[str, Till] = {}
    for till, spec in check.mapping("tills", doc.get("tills")).items():
        till = str(till)
        where = f"tills.{till}"
        check.ident(where, till)
        if isinstance(spec, str):
            spec = {"panel": spec}
        spec = check.mapping(where, spec)
        check.keys(where, spec, {"panel", "lang"})
        panel, lang = spec.get("panel"), spec.get("lang")
        if lang is not None and lang not in languages:
            check.fail(f"{where}.lang", f"must be one of languages, got {lang!r}")
        if check.ident(f"{where}.panel", panel):
            tills[till] = Till(panel, lang)
    if not tills:
        check.fail("tills", "map at least one till to its panel, e.g. \"1\": till-1")
    by_panel: dict[str, str] = {}
    for till, t in tills.items():
        if t.panel in by_panel:
            check.fail(f"tills.{till}", f"panel {t.panel!r} is already the panel of till "
                                        f"{by_panel[t.panel]!r}; one panel per till")
        by_panel[t.panel] = till

    questions: dict[tuple[str, str], dict] = {}
    kinds: dict[str, str] = {}
    comments: dict[str, dict] = {}
    qnodes = check.mapping("questions", doc.get("questions"))
    if not qnodes:
        check.fail("questions", "define at least one question")
    for qid, node in qnodes.items():
        if not check.ident(f"questions.{qid}", qid):
            continue
        if isinstance(node, dict) and node.get("kind") == COMMENT:
            comments[qid] = _comment(check, qid, node, languages)
            if comments[qid]:
                kinds[qid] = COMMENT
            continue
        for lang, fields in _question(check, qid, node, languages).items():
            questions[(qid, lang)] = fields
            kinds[qid] = fields["kind"]
    phone = _phone(check, doc["phone_survey"], kinds, languages) \
        if "phone_survey" in doc else None

    default_quiet = doc.get("quiet_days", 0)
    rnodes = doc.get("rules")
    rules = []
    if not isinstance(rnodes, list) or not rnodes:
        check.fail("rules", "list at least one rule (the first that matches a receipt wins)")
    else:
        for i, node in enumerate(rnodes):
            rule = _rule(check, i, node, set(qnodes) - set(comments), tills, default_quiet)
            if rule:
                rules.append(rule)
        names = [r.name for r in rules]
        for name in set(names):
            if names.count(name) > 1:
                check.fail("rules", f"two rules are named {name!r}")
    if check.problems:
        raise CatalogueError(check.problems)
    return Catalogue(languages=languages, default_lang=default_lang, tills=tills,
                     rules=rules, questions=questions, kinds=kinds, phone=phone,
                     comments=comments, source=source,
                     digest=hashlib.sha256(text.encode()).hexdigest()[:12])


def load(path: Path) -> Catalogue:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CatalogueError([f"{path}: cannot read: {e}"]) from None
    return parse(text, str(path))


class CatalogueFile:
    """The catalogue in force, and the file it comes from: picked up again
    when the file changes (polled, or `reload(force=True)` on SIGHUP). A bad
    file is refused as a whole and the last good catalogue stays in force."""

    def __init__(self, path: Path, counters, current: Catalogue | None = None,
                 font_dirs: list[Path] | None = None):
        self.path = Path(path)
        self.counters = counters
        self.current = current or load(self.path)
        self.error: str | None = None
        # Texts the panels will show cut (text_fit), measured with the fonts
        # in font_dirs: said in the log and on the dashboard, not refused.
        self.font_dirs = font_dirs if font_dirs is not None else text_fit.font_dirs(None)
        self.warnings: list[str] = []
        self._measure()
        self._stat = self._read_stat()
        self._failed_stat = None
        self._polled = self._stat

    def _read_stat(self):
        try:
            st = os.stat(self.path)
            return (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            return None

    def reload(self, force: bool = False) -> bool:
        """Load the file again if it changed; True if it was read and good."""
        stat = self._read_stat()
        if not force and stat in (self._stat, self._failed_stat):
            return False
        if not force and stat != self._polled:
            # Changed since the last poll: maybe still being written (an
            # editor or `cp` mid-save). Read it once it has held still for
            # a poll, not half a file that would be refused for nothing.
            self._polled = stat
            return False
        try:
            new = load(self.path)
        except Exception as e:
            if not isinstance(e, CatalogueError):
                # A check this loader lacks must not end hot reload for
                # good: the file is refused like any bad one.
                log.exception("catalogue %s: the loader failed", self.path)
                e = CatalogueError([f"{self.path}: cannot be read ({type(e).__name__}: {e})"])
            self._failed_stat = stat
            self.error = str(e)
            self.counters["catalogue_rejected"] += 1
            log.error("catalogue %s refused, keeping the last good one (%s): %s",
                      self.path, self.current.digest, "; ".join(e.problems))
            return False
        self._stat, self._failed_stat, self.error = stat, None, None
        if new.digest != self.current.digest:
            self.current = new
            self.counters["catalogue_reloaded"] += 1
            log.info("catalogue reloaded: %s (%d questions, %d rules, %d tills)", new.digest,
                     len(new.kinds), len(new.rules), len(new.tills))
            self._measure()
        return True

    def _measure(self) -> None:
        try:
            self.warnings = text_fit.warnings(self.current.questions, self.font_dirs)
        except Exception:  # a check must never cost the catalogue
            log.exception("catalogue: its texts could not be measured")
            self.warnings = []
        for w in self.warnings:
            log.warning("catalogue %s: %s", self.path, w)

    async def watch(self, poll_s: float) -> None:
        while True:
            await asyncio.sleep(poll_s)
            self.reload()

    def status(self) -> dict:
        return {"file": str(self.path), "digest": self.current.digest, "error": self.error,
                "warnings": self.warnings, "names": self.current.names()}
