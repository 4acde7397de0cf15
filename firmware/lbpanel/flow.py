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
from lbpanel import protocol
from lbpanel.clock import ticks_add, ticks_diff

ADVERTS = "adverts"
QUESTION = "question"
WHY = "why"
THANKS = "thanks"

# The follow-up "why?" gets its own, shorter wait: the rating is already in.
WHY_TIMEOUT_MS = 15000


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
            self._finish("superseded" if self.rating is None else "answered", now)
            self.counters.add("question_superseded")
        self.question = msg
        self.state = QUESTION
        self.rating = None
        self.rated_ms = None
        self.shown_at = now
        self.deadline = ticks_add(now, msg["timeout_s"] * 1000)
        self.ui.show_question(msg, msg["timeout_s"] * 1000)
        return True

    def on_touch(self, value, now):
        """The shopper picked `value` (a score, 'yes'/'no', or an option id)."""
        if self.state != QUESTION:
            self.counters.add("touch_ignored")
            return False
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
        self.rating = value
        self.rated_ms = ticks_diff(now, self.shown_at)
        if q.get("why"):
            self.state = WHY
            self.deadline = ticks_add(now, WHY_TIMEOUT_MS)
            self.ui.show_why(q, WHY_TIMEOUT_MS)
        else:
            self._finish("answered", now)
        return True

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
        self.counters.add("outcome_" + outcome)
        self.last_session = q["session"]
        self.question = None
        self.rating = None
        if outcome in ("answered", "declined"):
            self.state = THANKS
            self.thanks_until = ticks_add(now, self.settings["thanks_s"] * 1000)
            self.ui.show_thanks(answer)
        else:
            self.state = ADVERTS
            self.ui.show_adverts()
        self.on_answer(answer)
        return answer
