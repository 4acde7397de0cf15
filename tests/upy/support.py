# Test doubles for the panel core's injected parts, usable under MicroPython
# and CPython. They record calls; they decide nothing.
import os
import sys

from lbpanel import protocol
from lbpanel.telemetry import Counters

STORE = "s1"
PANEL = "p1"


class RecordingUI:
    def __init__(self):
        self.calls = []
        self.remaining_ms = None
        self.picked = None

    def _rec(self, *call):
        self.calls.append(call)

    def show_adverts(self):
        self._rec("adverts")

    def show_question(self, q, timeout_ms):
        self._rec("question", q["session"], timeout_ms)

    def show_pick(self, value):
        self.picked = value

    def show_why(self, q, timeout_ms):
        self._rec("why", q["session"], timeout_ms)

    def countdown(self, remaining_ms):
        self.remaining_ms = remaining_ms

    def show_thanks(self, answer, invite=None, lang=None):
        self._rec("thanks", answer["session"], answer["outcome"])
        self.invite = invite

    def show_problem(self, problem, text):
        self._rec("problem", problem, text)

    def screens(self):
        return [c[0] for c in self.calls]


class FixedIdentity:
    store = STORE
    panel = PANEL

    def __init__(self):
        self.n = 0

    def new_id(self):
        self.n += 1
        return "id%d" % self.n

    def unix_time(self):
        return 1795000000


def settings(**over):
    s = {"question_guard_ms": 300, "thanks_s": 3, "thanks_qr_s": 12,
         "touch.settle_ms": 0, "touch.burst_presses": 4}
    s.update(over)
    return s


def question(session="r1", kind="nps", timeout_s=20, **extra):
    msg = protocol.envelope("question", "q-" + session, 1795000000, STORE, PANEL)
    msg["session"] = session
    msg["qid"] = "nps-main"
    msg["kind"] = kind
    msg["lang"] = "en"
    msg["text"] = "How likely are you to recommend us?"
    msg["timeout_s"] = timeout_s
    for k in extra:
        msg[k] = extra[k]
    return protocol.validate(msg)


def answer(session="r1", value=9, answer_id="a1"):
    msg = protocol.envelope("answer", answer_id, 1795000000, STORE, PANEL)
    msg["session"] = session
    msg["qid"] = "nps-main"
    msg["kind"] = "nps"
    msg["outcome"] = "answered"
    msg["value"] = value
    msg["answer_ms"] = 1200
    return msg


def fresh_dir(name):
    """An empty folder under $LB_TMP (or /tmp), made anew for each test."""
    base = os.getenv("LB_TMP") or "/tmp"
    path = base + "/lbtest-" + sys.implementation.name + "-" + name
    try:
        for f in os.listdir(path):
            os.remove(path + "/" + f)
        os.rmdir(path)
    except OSError:
        pass
    os.mkdir(path)
    return path
