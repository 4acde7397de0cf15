"""The question catalogue: what a bad file is told, and which question each
receipt gets (members, tills, time of day, basket, sampling, quiet period)."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest
import yaml

from loyalty_button.service import catalogue as cat
from loyalty_button.service.catalogue import CatalogueError
from loyalty_button.sim.store import EXAMPLES

UTC = dt.timezone.utc
BASE = {
    "languages": ["ru", "en"],
    "tills": {"1": "till-1", "2": {"panel": "till-2", "lang": "en"}},
    "questions": {
        "nps": {"kind": "nps", "text": {"ru": "Порекомендуете?", "en": "Recommend us?"},
                "why": {"text": {"ru": "Почему?", "en": "Why?"},
                        "reasons": {"queue": {"ru": "Очередь", "en": "Queue"}}}},
        "csat": {"kind": "csat", "timeout_s": 10, "text": {"ru": "Как вам?", "en": "How was it?"}},
    },
    "rules": [{"name": "members", "when": {"member": True}, "ask": "nps", "quiet_days": 7},
              {"name": "rest", "ask": "csat"}],
}


def parse(doc) -> cat.Catalogue:
    return cat.parse(yaml.safe_dump(doc, allow_unicode=True))


def problems(doc) -> list[str]:
    with pytest.raises(CatalogueError) as e:
        parse(doc)
    return e.value.problems


def edited(**changes) -> dict:
    doc = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = doc
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[keys[-1]] = value
    return doc


def receipt(**kw) -> dict:
    r = {"till": "1", "receipt": "R1", "loyalty_id": None, "items": None, "total": None,
         "lang": None}
    r.update(kw)
    return r


NOON = dt.datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday


def test_the_shipped_example_catalogue_is_valid():
    c = cat.load(EXAMPLES / "catalogue.yaml")
    assert set(c.kinds) == {"nps-member", "csat-visit", "card-offer", "found-all"}
    assert c.question_fields("nps-member", "ru")["text"].startswith("Порекомендуете")
    assert [o["id"] for o in c.question_fields("found-all", "en")["options"]] == \
        ["all", "most", "little"]


def test_question_fields_are_ready_panel_messages_per_language():
    c = parse(BASE)
    ru, en = c.question_fields("nps", "ru"), c.question_fields("nps", "en")
    assert (ru["text"], en["text"]) == ("Порекомендуете?", "Recommend us?")
    assert ru["why"]["reasons"] == [{"id": "queue", "text": "Очередь"}]
    assert ru["timeout_s"] == 20 and c.question_fields("csat", "en")["timeout_s"] == 10


def test_invalid_yaml_says_where():
    with pytest.raises(CatalogueError) as e:
        cat.parse("languages: [ru\nrules: {", "cat.yaml")
    assert "not valid YAML at line" in e.value.problems[0]
    assert e.value.problems[0].startswith("cat.yaml")


@pytest.mark.parametrize("doc, expect", [
    (edited(questions__nps__text={"ru": "Порекомендуете?"}), "questions.nps.text.en"),
    (edited(questions__nps__kind="stars"), "questions.nps.kind"),
    (edited(questions__nps__timeout_s=1), "questions.nps.timeout_s"),
    (edited(questions__nps__colour="red"), "questions.nps.colour: unknown setting"),
    (edited(rules__0__ask="nope"), "rules[0].ask"),
    (edited(rules__0__when={"member": "yes"}), "rules[0].when.member"),
    (edited(rules__0__when={"tills": ["9"]}), "till '9' is not in tills"),
    (edited(rules__0__when={"hours": ["25:00-26:00"]}), "rules[0].when.hours"),
    (edited(rules__0__when={"days": ["monday"]}), "rules[0].when.days"),
    (edited(rules__0__when={"memebr": True}), "rules[0].when.memebr: unknown setting"),
    (edited(rules__0__sample=1.5), "rules[0].sample"),
    (edited(tills={"1": "till-1", "2": "till-1"}), "already the panel of till"),
    (edited(tills={"1": "till 1"}), "tills.1.panel"),
    (edited(default_lang="de"), "default_lang"),
    (edited(questions__csat__options={"a": {"ru": "a", "en": "a"}}), "only a 'choice'"),
    (edited(questions__csat={"kind": "choice", "text": {"ru": "?", "en": "?"},
                             "options": {"a": {"ru": "a", "en": "a"}}}), "needs 2-6 entries"),
    (edited(questions__nps__text={"ru": "Я" * 190, "en": "x"},
            questions__nps__why={"text": {"ru": "Я" * 190, "en": "y"},
                                 "reasons": {f"r{i}": {"ru": "Я" * 100, "en": "z"}
                                             for i in range(8)}}), "bytes, limit 1024"),
    (edited(rules=[]), "list at least one rule"),
    # wrong shapes where an id belongs, and a lone surrogate: each a
    # problem with its place, never a TypeError out of the loader
    (edited(rules__0__ask=["nps"]), "rules[0].ask"),
    (edited(rules__0__ask={"nps": 1}), "rules[0].ask"),
    (edited(tills={"1": {"panel": ["till-1"]}}), "tills.1.panel"),
    (edited(tills={"1": {"panel": {"a": 1}}}), "tills.1.panel"),
    # libyaml refuses the escape itself (with line and column); PyYAML's
    # own loader takes it, and then the checker refuses the text
    (edited(questions__nps__text={"ru": "\udcff", "en": "x"}), "Unicode"),
])
def test_each_mistake_is_named_with_its_place(doc, expect):
    found = problems(doc)
    assert any(expect in p for p in found), found


def test_all_mistakes_are_listed_at_once():
    doc = edited(questions__nps__kind="stars", rules__1__ask="missing", default_lang="de")
    assert len(problems(doc)) >= 3


def test_members_and_non_members_get_different_questions():
    c = parse(BASE)
    member = c.decide(receipt(loyalty_id="77"), "s1-R1", NOON, None, 0)
    other = c.decide(receipt(), "s1-R1", NOON, None, 0)
    assert (member.qid, member.rule) == ("nps", "members")
    assert (other.qid, other.rule) == ("csat", "rest")


def test_language_comes_from_receipt_then_till_then_default():
    c = parse(BASE)
    assert c.language(receipt()) == "ru"
    assert c.language(receipt(till="2")) == "en"
    assert c.language(receipt(till="2", lang="ru")) == "ru"
    assert c.language(receipt(lang="de")) == "ru"  # not offered: the till's/store's


def test_till_hours_days_and_basket_conditions():
    doc = edited(rules=[
        {"name": "till2-evening", "ask": "nps",
         "when": {"tills": ["2"], "hours": ["18:00-22:00"], "days": ["mon", "tue"]}},
        {"name": "night", "ask": "nps", "when": {"hours": "22:00-06:00"}},
        {"name": "big", "ask": "nps", "when": {"items_min": 10, "total_min": 1000}},
        {"name": "rest", "ask": "csat"}])
    c = parse(doc)

    def rule(at, **kw):
        return c.decide(receipt(**kw), "s1-X", at, None, 0).rule
    evening = NOON.replace(hour=19)
    assert rule(evening, till="2") == "till2-evening"
    assert rule(evening, till="1") == "rest"
    assert rule(evening + dt.timedelta(days=3), till="2") == "rest"  # a Thursday
    assert rule(NOON.replace(hour=23), till="1") == "night"
    assert rule(NOON.replace(hour=5, minute=59), till="1") == "night"
    assert rule(NOON.replace(hour=6), till="1") == "rest"
    assert rule(NOON, items=12, total=1500.0) == "big"
    assert rule(NOON, items=12, total=999.0) == "rest"
    assert rule(NOON, items=None, total=None) == "rest"  # unknown basket: no match


def test_no_matching_rule_is_a_reason():
    c = parse(edited(rules=[{"ask": "nps", "when": {"member": True}}]))
    d = c.decide(receipt(), "s1-R1", NOON, None, 0)
    assert (d.qid, d.reason) == (None, cat.NO_RULE)


def test_sampling_is_stable_per_session_and_close_to_its_rate():
    c = parse(edited(rules=[{"name": "some", "ask": "csat", "sample": 0.25}]))
    picks = [c.decide(receipt(), f"s1-R{i}", NOON, None, 0) for i in range(4000)]
    asked = sum(1 for d in picks if d.qid)
    assert 0.22 < asked / 4000 < 0.28
    assert all(d.reason == cat.SAMPLED_OUT for d in picks if not d.qid)
    again = [c.decide(receipt(), f"s1-R{i}", NOON, None, 0).qid for i in range(100)]
    assert again == [d.qid for d in picks[:100]]


def test_quiet_period_per_loyalty_id():
    c = parse(BASE)
    day = 86400
    now = 100 * day
    asked_6_days_ago = c.decide(receipt(loyalty_id="77"), "s1-R1", NOON, now - 6 * day, now)
    asked_8_days_ago = c.decide(receipt(loyalty_id="77"), "s1-R1", NOON, now - 8 * day, now)
    assert (asked_6_days_ago.qid, asked_6_days_ago.reason) == (None, cat.QUIET_PERIOD)
    assert asked_8_days_ago.qid == "nps"
    assert c.max_quiet_days() == 7


def test_load_reports_an_unreadable_file(tmp_path: Path):
    with pytest.raises(CatalogueError) as e:
        cat.load(tmp_path / "missing.yaml")
    assert "cannot read" in e.value.problems[0]


def test_the_concentrator_forgets_quiet_periods_that_are_over(tmp_path: Path):
    # The map of last-asked times keeps only ids that a rule could still
    # leave in peace (BASE's longest quiet period is 7 days).
    from loyalty_button.service.config import parse as parse_settings
    from loyalty_button.service.host import StoreHost
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(BASE, allow_unicode=True))
    host = StoreHost(parse_settings({"store": "s1", "catalogue": "c.yaml",
                                     "database": "r.db"}, tmp_path))
    conc = host.concentrator
    day = 86400
    conc.quiet = {"old": 100 * day - 8 * day, "recent": 100 * day - 6 * day}
    conc._forget_quiet(100 * day)
    assert list(conc.quiet) == ["recent"]
    host.records.stop()


def test_a_file_caught_mid_save_is_read_once_it_holds_still(tmp_path):
    """The poll finds the catalogue half written (an editor saving it): it
    waits a poll for the file to hold still instead of refusing half a file
    and counting a rejection for nothing. SIGHUP (force) reads at once."""
    from collections import Counter
    text = (EXAMPLES / "catalogue.yaml").read_text()
    path = tmp_path / "catalogue.yaml"
    path.write_text(text)
    counters = Counter()
    watched = cat.CatalogueFile(path, counters)
    good = watched.current.digest
    edited = text.replace("How was your visit", "How was your visit today", 1)
    assert edited != text
    path.write_text(edited[: len(edited) // 3])   # the save has begun
    assert watched.reload() is False
    path.write_text(edited)                       # and ends before the next poll
    assert watched.reload() is False              # changed again: wait once more
    assert watched.reload() is True
    assert watched.current.digest != good
    assert counters["catalogue_rejected"] == 0 and counters["catalogue_reloaded"] == 1
    # A bad file that holds still is refused (once), and a forced reload reads at once.
    path.write_text("questions: {")
    assert watched.reload() is False and counters["catalogue_rejected"] == 0
    assert watched.reload() is False and counters["catalogue_rejected"] == 1
    assert watched.reload() is False and counters["catalogue_rejected"] == 1
    path.write_text(text)
    assert watched.reload(force=True) is True and watched.current.digest == good


def test_a_question_offers_a_review_or_a_survey_qr_on_the_thank_you_screen():
    c = parse(edited(questions__nps__qr={"site": "yandex_maps", "place": 1049713486}))
    assert c.question_fields("nps", "ru")["qr"] == {
        "url": "https://yandex.ru/maps/org/1049713486/reviews/",
        "text": "Отсканируйте, чтобы оставить отзыв", "to": "all"}  # the panel's own words
    assert c.question_fields("nps", "en")["qr"]["text"] == "Scan to leave a review"
    c = parse(edited(questions__nps__qr={"site": "google_maps", "place": "ChIJN1t_tDeuEmsRUsoyG83frY4"}))
    assert c.question_fields("nps", "en")["qr"]["url"] == \
        "https://search.google.com/local/writereview?placeid=ChIJN1t_tDeuEmsRUsoyG83frY4"
    c = parse(edited(questions__csat__qr={
        "url": "https://shop.example/survey", "to": "unhappy",
        "text": {"ru": "Расскажите, что исправить", "en": "Tell us what to fix"}}))
    assert c.question_fields("csat", "en")["qr"] == {
        "url": "https://shop.example/survey", "text": "Tell us what to fix", "to": "unhappy"}
    # What is refused, and where.
    p = problems(edited(questions__nps__qr={"site": "2gis", "place": "70000001", "to": "unhappy"}))
    assert any("questions.nps.qr.to: review sites forbid inviting only some shoppers" in x
               for x in p), p
    p = problems(edited(questions__nps__qr={"site": "vk", "place": "1"}))
    assert any("questions.nps.qr.site: must be one of yandex_maps, 2gis, google_maps" in x
               for x in p), p
    p = problems(edited(questions__nps__qr={"site": "2gis", "place": "a/../b"}))
    assert any("questions.nps.qr.place" in x for x in p), p
    p = problems(edited(questions__nps__qr={"url": "ftp://x", "site": "2gis"}))
    assert any("needs either site:" in x for x in p), p
    p = problems(edited(questions__nps__qr={"url": "javascript:alert(1)"}))
    assert any("questions.nps.qr.url: must be an http(s) address" in x for x in p), p
    p = problems(edited(languages=["ru", "en", "kk"], questions__nps__qr={"url": "https://x.kz"}))
    assert any("questions.nps.qr.text: needs the line beside the code in kk" in x for x in p), p


def test_text_a_panel_cannot_show_is_refused_or_warned_with_its_place(tmp_path, caplog):
    """An emoji (or CJK) has no glyph in the panels' fonts: refused, with the
    place and the character. A question too long for a board's screen (the
    issue's 137 characters) loads with a warning per board that cuts it,
    measured with the panels' own fonts in the panel's own layout."""
    import logging
    from collections import Counter
    from loyalty_button.service import text_fit
    from loyalty_button.panels import fonts
    # Typographic quotes and apostrophes, as a word processor writes them, are drawn.
    ok = parse(edited(questions__nps__text={"ru": "Вам „понравилось“?",
                                            "en": "We’d love a “yes”"}))
    assert ok.question_fields("nps", "en")["text"] == "We’d love a “yes”"
    p = problems(edited(questions__nps__text={"ru": "Порекомендуете? 🍣", "en": "Recommend us?"}))
    assert any("questions.nps.text.ru: the panels' fonts cannot draw '🍣' (U+1F363)" in x
               for x in p), p
    p = problems(edited(questions__nps__why__reasons__queue={"ru": "Очередь", "en": "寿司"}))
    assert any("questions.nps.why.reasons.queue.en: the panels' fonts cannot draw '寿' (U+5BFF)"
               in x for x in p), p
    long_ru = ("Скажите, пожалуйста, насколько вероятно, что вы порекомендуете наш "
               "магазин своим друзьям, коллегам и знакомым после сегодняшней покупки?")
    assert len(long_ru) > 130
    doc = edited(questions__nps__text={"ru": long_ru, "en": "Recommend us?"})
    got = text_fit.warnings(parse(doc).questions, [fonts.fonts_dir()])
    assert any(w.startswith("questions.nps.text (ru): needs") and "on the cyd screen" in w
               and "shorten it" in w for w in got), got
    assert not any("(en)" in w for w in got), got
    # Loaded by the host: kept, warned in the log and in its status.
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    with caplog.at_level(logging.WARNING, logger="loyalty_button.service.catalogue"):
        f = cat.CatalogueFile(path, Counter(), font_dirs=[fonts.fonts_dir()])
    assert f.status()["warnings"] == got and f.current.question_fields("nps", "ru")
    assert any("questions.nps.text (ru)" in r.getMessage() for r in caplog.records)
    # With no panel fonts on the machine the texts are not measured, and
    # nothing fails.
    assert text_fit.warnings(parse(doc).questions, [tmp_path / "nothing-here"]) == []
