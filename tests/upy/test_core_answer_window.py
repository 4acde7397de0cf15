# The answers' send window: the host's ack may arrive before the broker's
# PUBACK; runs under MicroPython and CPython.
import asyncio

from lbpanel import app, protocol
from lbpanel.outbox import Outbox

import support


class AckingClient:
    """A broker link whose host acknowledges each answer before the
    broker's PUBACK is seen (as under the LVGL loop, where the reader task
    runs before the flusher resumes)."""

    def __init__(self, panel):
        self.panel = panel
        self.up = True
        self.sent = []

    async def publish(self, topic, data, qos):
        answer_id = protocol.decode(data)["id"]
        self.sent.append(answer_id)
        self.panel._on_ack(answer_id)
        await asyncio.sleep(0)


class SendPath(app.PanelApp):
    def __init__(self):
        pass  # only the send path is exercised: its parts are set below


def test_an_ack_that_overtakes_the_puback_frees_the_window():
    panel = SendPath()
    panel.counters = support.Counters()
    panel.outbox = Outbox(support.fresh_dir("window"), 20, panel.counters)
    panel.topics = {"answer": "lb/v1/s/panel/p1/answer"}
    panel._in_flight = {}
    panel._outbox_ready = asyncio.Event()
    panel.client = AckingClient(panel)
    n = app._WINDOW + 3
    for i in range(n):
        panel.outbox.add(support.answer("r%d" % i, answer_id="a%d" % i))

    async def run():
        task = asyncio.create_task(panel._flusher())
        panel._outbox_ready.set()
        for _ in range(20):
            await asyncio.sleep(0)
        task.cancel()
    asyncio.run(run())
    # Every answer went out at once: no acked answer kept a place in flight.
    assert panel.client.sent == ["a%d" % i for i in range(n)], panel.client.sent
    assert panel._in_flight == {} and panel.outbox.depth() == 0
    assert panel.counters.get("answers_acked") == n
