# What the panel logic asks of a screen. The LVGL UI (a later module) and
# the headless one below implement the same methods; the logic never knows
# which it drives.
import json
import sys


class HeadlessUI:
    """A screen with no pixels: it remembers what it would show and writes
    one JSON line per screen change, which the simulator and tests read
    (stdout, apart from the log on stderr)."""

    def __init__(self, out=None):
        self.out = out if out is not None else sys.stdout
        self.screen = None
        self.detail = None
        self.remaining_ms = 0
        self.advert = None

    def _show(self, screen, detail):
        self.screen = screen
        self.detail = detail
        line = {"ui": screen}
        line.update(detail)
        try:
            self.out.write(json.dumps(line) + "\n")
        except Exception:
            pass  # a closed console must not stop the panel

    def show_adverts(self):
        self._show("adverts", {"advert": self.advert["id"] if self.advert else None})

    def show_advert(self, item):
        self.advert = item
        self.show_adverts()

    def show_question(self, q, timeout_ms):
        self.remaining_ms = timeout_ms
        detail = {"session": q["session"], "qid": q["qid"], "kind": q["kind"],
                  "text": q["text"], "timeout_ms": timeout_ms}
        if "options" in q:
            detail["options"] = [o["id"] for o in q["options"]]
        self._show("question", detail)

    def show_pick(self, value):
        # The chosen answer marked while it settles: pixels only, no line.
        self.picked = value

    def show_why(self, q, timeout_ms):
        self.remaining_ms = timeout_ms
        self._show("why", {"session": q["session"],
                           "reasons": [r["id"] for r in q["why"]["reasons"]]})

    def countdown(self, remaining_ms):
        # No line per tick: a real screen redraws a number, a log would flood.
        self.remaining_ms = remaining_ms

    def show_thanks(self, answer, invite=None, lang=None):
        detail = {"session": answer["session"], "outcome": answer["outcome"],
                  "value": answer["value"]}
        if invite:
            detail["qr"] = invite["url"]
        self._show("thanks", detail)

    def show_problem(self, problem, text):
        """problem: not_configured, no_network or broker_unreachable."""
        self._show("problem", {"problem": problem, "text": text})

    def show_status(self, info):
        self._show("status", info)
