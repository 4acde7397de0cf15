# The panel's question flow, as a state machine with no I/O of its own:
#
#   adverts --question--> question --rating--> [why] --> thanks --> adverts
#                            |  \--timeout / declined / superseded--^
#
# Time comes in as a ticks_ms value on every call and the UI is an object
# passed in, so the same code runs on the ESP32, under the MicroPython unix
# port and under CPython. Every question ends in exactly one answer record,
# whatever happens: no answer is an answer ("timeout"), a shopper's "no
# thanks" is "declined", and a question replaced by a newer one is
# "superseded". The records go to `on_answer` (the app puts them in the
# outbox).
#
# A pick is not final at once: it settles for `touch.settle_ms`, so a child
# mashing buttons gives one answer (the first pick) flagged with the number
# of presses ("burst"), not many answers.
from lbpanel import protocol
from lbpanel.clock import ticks_add, ticks_diff

ADVERTS = "adverts"
QUESTION = "question"
WHY = "why"
THANKS = "thanks"

# The follow-up "why?" gets its own, shorter wait: the rating is already in.
WHY_TIMEOUT_MS = 15000


def invitation(qr, outcome, kind, value):
    """The QR to show on the thank-you screen, by the question's policy:
    'all' offers it to every shopper who reached the thank-you screen,
    whatever they answered (review platforms forbid inviting only the
    happy ones); 'unhappy' offers a follow-up survey to detractors only
    (the host refuses 'unhappy' for review links)."""
    if not qr or outcome not in ("answered", "declined"):
        return None
    to = qr.get("to", "all")
    if to == "all" or (to == "unhappy" and outcome == "answered"
                       and protocol.unhappy(kind, value)):
        return qr
    return None


class QuestionFlow:
    def __init__(self, ui, on_answer, settings, identity, counters):
        self.ui = ui
        self.on_answer = on_answer
        self.settings = settings
        # identity: object with store, panel, new_id() and unix_time()
        self.identity = identity
        self.counters = counters
        self.state = ADVERTS
        self.question = None
        self.shown_at = 0
        self.deadline = 0
        self.rating = None
        self.rated_ms = None
        self.last_session = None
        self.thanks_until = 0
        self.pending = None
        self.pending_at = 0
        self.presses = 0
        self.advert = None
        # Which advert was on screen when a question arrives (proof of
        # play): a callable returning an advert id or None.
        self.advert_on_screen = None

    # --- events -------------------------------------------------------------

    def on_question(self, msg, now):
        """A validated question addressed to this panel."""
        session = msg["session"]
        if self.question is not None and session == self.question["session"] \
                or session == self.last_session:
            # QoS 1 may deliver the same question twice; one session, one answer.
            self.counters.add("question_duplicate")
            return False
        if self.state in (QUESTION, WHY):
            # A newer receipt at this till means the shopper we were asking
            # has gone: close their question honestly, then ask the new one.
            if self.pending is not None:
                self.rating = self.pending
                self.rated_ms = ticks_diff(self.pending_at, self.shown_at)
                self.pending = None
            self._finish("superseded" if self.rating is None else "answered", now)
            self.counters.add("question_superseded")
        # Only an idle screen shows an advert; a question that replaces
        # another, or the thank-you screen, had none on screen.
        self.advert = None
        if self.state == ADVERTS and self.advert_on_screen is not None:
            self.advert = self.advert_on_screen()
        self.question = msg
        self.state = QUESTION
        self.rating = None
        self.rated_ms = None
        self.pending = None
        self.presses = 0
        self.shown_at = now
        self.deadline = ticks_add(now, msg["timeout_s"] * 1000)
        self.ui.show_question(msg, msg["timeout_s"] * 1000)
        return True

    def on_touch(self, value, now):
        """The shopper picked `value` (a score, 'yes'/'no', or an option id)."""
        if self.state != QUESTION:
            self.counters.add("touch_ignored")
            return False
        self.presses += 1
        if ticks_diff(now, self.shown_at) < self.settings["question_guard_ms"]:
            self.counters.add("touch_guarded")
            return False
        q = self.question
        option_ids = None
        if q["kind"] == "choice":
            option_ids = [o["id"] for o in q["options"]]
        err = protocol.check_value(q["kind"], value, option_ids)
        if err:
            self.counters.add("touch_invalid")
            return False
        if self.pending is not None:
            # A second pick while the first settles: one shopper, one answer.
            self.counters.add("touch_extra")
            return False
        self.pending = value
        self.pending_at = now
        if self.settings["touch.settle_ms"] == 0:
            self._commit(now)
        else:
            # What was taken, on screen while it settles (a mis-tap is seen).
            self.ui.show_pick(value)
        return True

    def on_stray_press(self, now):
        """A press on the question screen that hit no answer."""
        if self.state in (QUESTION, WHY):
            self.presses += 1

    def _commit(self, now):
        q = self.question
        self.rating = self.pending
        self.rated_ms = ticks_diff(self.pending_at, self.shown_at)
        self.pending = None
        if q.get("why"):
            self.state = WHY
            self.deadline = ticks_add(now, WHY_TIMEOUT_MS)
            self.ui.show_why(q, WHY_TIMEOUT_MS)
        else:
            self._finish("answered", now)

    def on_reasons(self, reasons, now):
        """The shopper finished the follow-up; `reasons` may be empty."""
        if self.state != WHY:
            self.counters.add("touch_ignored")
            return False
        allowed = [r["id"] for r in self.question["why"]["reasons"]]
        picked = [r for r in reasons if r in allowed]
        if len(picked) != len(reasons):
            self.counters.add("touch_invalid")
        self._finish("answered", now, picked)
        return True

    def on_decline(self, now):
        """The shopper pressed "no thanks"."""
        if self.state == QUESTION and self.pending is not None:
            self.presses += 1  # a pick already stands; this is mashing
            return False
        if self.state == QUESTION:
            self._finish("declined", now)
            return True
        if self.state == WHY:
            self._finish("answered", now)
            return True
        self.counters.add("touch_ignored")
        return False

    def tick(self, now):
        """Called often (every 100 ms or so): timeouts and screen changes."""
        if self.pending is not None and (
                ticks_diff(now, self.pending_at) >= self.settings["touch.settle_ms"]
                or ticks_diff(now, self.deadline) >= 0):
            self._commit(now)
            return
        if self.state in (QUESTION, WHY):
            if ticks_diff(now, self.deadline) >= 0:
                self._finish("timeout" if self.rating is None else "answered", now)
            else:
                self.ui.countdown(ticks_diff(self.deadline, now))
        elif self.state == THANKS and ticks_diff(now, self.thanks_until) >= 0:
            self.state = ADVERTS
            self.ui.show_adverts()

    def remaining_ms(self, now):
        if self.state in (QUESTION, WHY):
            return max(0, ticks_diff(self.deadline, now))
        return 0

    # --- internals ----------------------------------------------------------

    def _finish(self, outcome, now, reasons=None):
        q = self.question
        ident = self.identity
        answer = protocol.envelope("answer", ident.new_id(), ident.unix_time(),
                                   ident.store, ident.panel)
        answer["session"] = q["session"]
        answer["qid"] = q["qid"]
        answer["kind"] = q["kind"]
        answer["outcome"] = outcome
        answer["value"] = self.rating if outcome == "answered" else None
        if outcome == "answered":
            answer["answer_ms"] = self.rated_ms
        if reasons:
            answer["reasons"] = reasons
        answer["shown_ms"] = ticks_diff(now, self.shown_at)
        if self.advert is not None:
            answer["advert"] = self.advert
        if self.presses >= self.settings["touch.burst_presses"]:
            # Many presses for one question: a child, or someone testing.
            # One answer, flagged, so reports can leave it out.
            answer["burst"] = self.presses
            self.counters.add("answer_burst")
        self.counters.add("outcome_" + outcome)
        self.last_session = q["session"]
        self.question = None
        self.rating = None
        if outcome in ("answered", "declined"):
            self.state = THANKS
            self.thanks_until = ticks_add(now, self.settings["thanks_s"] * 1000)
            invite = invitation(q.get("qr"), outcome, q["kind"], answer["value"])
            if invite is not None:
                # A QR needs time to be scanned.
                self.thanks_until = ticks_add(now, self.settings["thanks_qr_s"] * 1000)
            self.ui.show_thanks(answer, invite, q.get("lang"))
        else:
            self.state = ADVERTS
            self.ui.show_adverts()
        self.on_answer(answer)
        return answer
