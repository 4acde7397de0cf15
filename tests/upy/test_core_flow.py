# The question flow state machine; runs under MicroPython and CPython.
from lbpanel.flow import QuestionFlow

import support


class Harness:
    def __init__(self, **settings):
        self.ui = support.RecordingUI()
        self.answers = []
        self.counters = support.Counters()
        self.flow = QuestionFlow(self.ui, self.answers.append, support.settings(**settings),
                                 support.FixedIdentity(), self.counters)


def test_answer_then_thanks_then_adverts():
    h = Harness()
    h.flow.on_question(support.question("r1"), 1000)
    assert h.flow.state == "question"
    assert h.flow.on_touch(9, 3500)
    assert h.flow.state == "thanks"
    (a,) = h.answers
    assert (a["session"], a["outcome"], a["value"], a["answer_ms"]) == ("r1", "answered", 9, 2500)
    h.flow.tick(3500 + 2999)
    assert h.flow.state == "thanks"
    h.flow.tick(3500 + 3000)
    assert h.flow.state == "adverts"
    assert h.ui.screens() == ["question", "thanks", "adverts"]


def test_timeout_is_an_answer_of_its_own():
    h = Harness()
    h.flow.on_question(support.question("r1", timeout_s=5), 0)
    h.flow.tick(4999)
    assert h.answers == [] and h.ui.remaining_ms == 1
    h.flow.tick(5000)
    (a,) = h.answers
    assert a["outcome"] == "timeout" and a["value"] is None and "answer_ms" not in a
    assert h.flow.state == "adverts"


def test_new_question_supersedes_unanswered_one():
    h = Harness()
    h.flow.on_question(support.question("r1"), 0)
    h.flow.on_question(support.question("r2"), 2000)
    (a,) = h.answers
    assert (a["session"], a["outcome"], a["value"]) == ("r1", "superseded", None)
    assert h.flow.state == "question" and h.flow.question["session"] == "r2"
    h.flow.on_touch(4, 3000)
    assert [x["outcome"] for x in h.answers] == ["superseded", "answered"]
    assert h.counters.get("question_superseded") == 1


def test_rating_is_kept_when_superseded_during_the_why_step():
    h = Harness()
    why = {"text": "Why?", "reasons": [{"id": "queue", "text": "Queue"}]}
    h.flow.on_question(support.question("r1", why=why), 0)
    h.flow.on_touch(3, 1000)
    assert h.flow.state == "why"
    h.flow.on_question(support.question("r2"), 2000)
    assert (h.answers[0]["outcome"], h.answers[0]["value"]) == ("answered", 3)


def test_why_follow_up_collects_known_reasons_only():
    h = Harness()
    why = {"text": "Why?", "reasons": [{"id": "queue", "text": "Queue"}, {"id": "staff", "text": "Staff"}]}
    h.flow.on_question(support.question("r1", why=why), 0)
    h.flow.on_touch(2, 1000)
    h.flow.on_reasons(["queue", "bogus"], 4000)
    (a,) = h.answers
    assert (a["value"], a["reasons"], a["answer_ms"]) == (2, ["queue"], 1000)
    assert h.counters.get("touch_invalid") == 1


def test_duplicate_delivery_of_a_question_is_ignored():
    h = Harness()
    q = support.question("r1")
    assert h.flow.on_question(q, 0)
    assert not h.flow.on_question(q, 100)
    h.flow.on_touch(8, 1000)
    assert not h.flow.on_question(q, 1200)  # late redelivery after answering
    assert len(h.answers) == 1 and h.counters.get("question_duplicate") == 2


def test_touches_right_after_the_question_appears_are_ignored():
    h = Harness(question_guard_ms=300)
    h.flow.on_question(support.question("r1"), 1000)
    assert not h.flow.on_touch(1, 1200)
    assert h.flow.on_touch(6, 1300)
    assert h.answers[0]["value"] == 6 and h.counters.get("touch_guarded") == 1


def test_one_counted_answer_per_question():
    h = Harness()
    h.flow.on_question(support.question("r1"), 0)
    h.flow.on_touch(9, 1000)
    for value in (1, 2, 3):
        assert not h.flow.on_touch(value, 1100)
    assert len(h.answers) == 1 and h.counters.get("touch_ignored") == 3


def test_out_of_range_touch_is_not_an_answer():
    h = Harness()
    h.flow.on_question(support.question("r1", kind="csat"), 0)
    assert not h.flow.on_touch(9, 1000)
    assert h.flow.on_touch(5, 1100)
    assert h.answers[0]["value"] == 5


def test_declined_is_recorded_and_thanked():
    h = Harness()
    h.flow.on_question(support.question("r1"), 0)
    h.flow.on_decline(900)
    assert h.answers[0]["outcome"] == "declined" and h.flow.state == "thanks"


def test_question_during_thanks_is_shown_at_once():
    h = Harness()
    h.flow.on_question(support.question("r1"), 0)
    h.flow.on_touch(10, 500)
    h.flow.on_question(support.question("r2"), 600)
    assert h.flow.state == "question" and len(h.answers) == 1


def test_every_answer_is_a_valid_protocol_message():
    from lbpanel import protocol
    h = Harness()
    h.flow.on_question(support.question("r1"), 0)
    h.flow.on_touch(7, 1000)
    h.flow.on_question(support.question("r2"), 5000)
    h.flow.tick(5000 + 20000)
    for a in h.answers:
        protocol.validate(a)


def test_a_pick_settles_and_mashing_is_one_flagged_answer():
    h = Harness(**{"touch.settle_ms": 400})
    h.flow.on_question(support.question("r1"), 0)
    assert not h.flow.on_touch(2, 100)        # guard: the previous hand
    assert h.flow.on_touch(7, 1000)           # the pick
    h.flow.on_stray_press(1050)               # a press between buttons
    assert not h.flow.on_touch(10, 1100)      # mashing while it settles
    assert not h.flow.on_touch(0, 1200)
    assert h.ui.picked == 7                   # the pick is on screen, not the mashing
    h.flow.tick(1399)
    assert h.answers == []                    # still settling
    h.flow.tick(1400)
    (a,) = h.answers
    assert (a["value"], a["answer_ms"], a["burst"]) == (7, 1000, 5)
    assert h.counters.get("touch_extra") == 2 and h.counters.get("answer_burst") == 1


def test_with_no_settle_window_a_pick_counts_at_once_and_is_not_marked():
    h = Harness()
    h.flow.on_question(support.question("r1"), 0)
    assert h.flow.on_touch(9, 1000)
    assert h.answers[0]["value"] == 9 and h.ui.picked is None


def test_a_calm_answer_is_not_flagged():
    h = Harness(**{"touch.settle_ms": 400})
    h.flow.on_question(support.question("r1"), 0)
    h.flow.on_touch(9, 2000)
    h.flow.tick(2400)
    (a,) = h.answers
    assert a["value"] == 9 and "burst" not in a


def test_a_settling_pick_is_kept_when_the_question_times_out_or_is_superseded():
    h = Harness(**{"touch.settle_ms": 400})
    h.flow.on_question(support.question("r1", timeout_s=5), 0)
    h.flow.on_touch(8, 4900)
    h.flow.tick(5000)
    assert (h.answers[0]["outcome"], h.answers[0]["value"]) == ("answered", 8)
    h.flow.on_question(support.question("r2"), 9000)
    h.flow.on_touch(3, 10000)
    h.flow.on_question(support.question("r3"), 10100)
    assert (h.answers[1]["session"], h.answers[1]["value"]) == ("r2", 3)


def test_qr_invitation_policy():
    from lbpanel.flow import invitation
    review = {"url": "https://example.com/review", "to": "all"}
    survey = {"url": "https://example.com/survey", "to": "unhappy"}
    # "all": every shopper who reaches the thank-you screen, happy or not.
    for kind, value in (("nps", 10), ("nps", 0), ("csat", 1), ("yesno", "yes")):
        assert invitation(review, "answered", kind, value) is review
    assert invitation(review, "declined", "nps", None) is review
    assert invitation(review, "timeout", "nps", None) is None
    # "unhappy": a follow-up survey for detractors only.
    assert invitation(survey, "answered", "nps", 6) is survey
    assert invitation(survey, "answered", "nps", 7) is None
    assert invitation(survey, "answered", "csat", 2) is survey
    assert invitation(survey, "answered", "yesno", "no") is survey
    assert invitation(survey, "declined", "nps", None) is None
    assert invitation(None, "answered", "nps", 9) is None


def test_thanks_screen_gets_the_qr_and_stays_longer():
    h = Harness()
    qr = {"url": "https://example.com/review", "text": "Review us", "to": "all"}
    h.flow.on_question(support.question("r1", qr=qr), 0)
    h.flow.on_touch(9, 1000)
    assert h.ui.invite is qr
    h.flow.tick(1000 + 3000)
    assert h.flow.state == "thanks"           # thanks_qr_s (12 s), not thanks_s
    h.flow.tick(1000 + 12000)
    assert h.flow.state == "adverts"


def test_answer_names_the_advert_on_screen_when_the_question_came():
    h = Harness()
    shown = ["spring"]
    h.flow.advert_on_screen = lambda: shown[0]
    h.flow.on_question(support.question("r1"), 0)
    shown[0] = "summer"                       # the playlist moves on meanwhile
    h.flow.on_touch(9, 1000)
    assert h.answers[0]["advert"] == "spring"
    shown[0] = None
    h.flow.tick(10000)
    h.flow.on_question(support.question("r2"), 20000)
    h.flow.on_touch(5, 21000)
    assert "advert" not in h.answers[1]
