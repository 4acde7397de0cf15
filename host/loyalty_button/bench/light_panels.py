"""Lightweight panels for the host-only figure of `tools/bench`: every till's
panel and POS in one CPython process on one asyncio loop, with the panel
firmware's own MQTT client (lbpanel.mqtt) and message builders (lbpanel.
protocol, lbpanel.telemetry) but no UI, no outbox file and no interpreter
per panel. Each till rings up a sale (a signed UDP receipt), its panel
answers the question the moment it arrives, and when the host acknowledges
the answer (it is committed) the till rings up the next sale: a closed
loop that measures the concentrator, not the simulator.

    python -m loyalty_button.bench.light_panels CONFIG.json

CONFIG: {"store", "broker_port", "udp_port", "pos_key" (hex), "tills",
"seconds"}. Prints "ready" once every panel is online, waits for "go" on
stdin, runs, then prints one JSON line: {"sent": [receipt numbers]}."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from lbpanel import protocol, telemetry
from lbpanel.app import Identity
from lbpanel.mqtt import Client

from ..sim.store import Pos, panel_of


class LightPanel:
    def __init__(self, store: str, till: str, port: int, pos: Pos, sent: list):
        self.identity = Identity(store, panel_of(till))
        self.till = till
        self.pos = pos
        self.sent = sent
        self.running = False
        self.seq = 0
        self.topic = lambda leaf: protocol.panel_topic(store, self.identity.panel, leaf)
        will = (self.topic("status"), protocol.encode(telemetry.offline_message(self.identity)),
                1, True)
        self.client = Client(self.identity.panel, "127.0.0.1", port, keepalive=60, will=will,
                             on_message=self.on_message)

    async def start(self) -> None:
        await self.client.connect()
        await self.client.subscribe([(self.topic("question"), 1), (self.topic("ack"), 1)])
        status = telemetry.status_message(self.identity, 0, 0, telemetry.Counters())
        await self.client.publish(self.topic("status"), protocol.encode(status), 1, True)

    def ring(self) -> None:
        if not self.running:
            return
        self.seq += 1
        number = f"H-{self.till}-{self.seq}"
        self.sent.append(number)
        self.pos.send_udp(self.pos.receipt(self.till, number))

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        msg = protocol.loads(payload)
        if topic.endswith("/question"):
            asyncio.get_running_loop().create_task(self.answer(msg))
        elif topic.endswith("/ack"):
            self.ring()  # committed: the next shopper

    async def answer(self, question: dict) -> None:
        msg = protocol.envelope("answer", protocol.new_id(), int(time.time()),
                                self.identity.store, self.identity.panel)
        msg.update(session=question["session"], qid=question["qid"], kind=question["kind"],
                   outcome="answered", value=9, answer_ms=500, shown_ms=600)
        await self.client.publish(self.topic("answer"), protocol.encode(msg), 1)


async def main(cfg: dict) -> None:
    pos = Pos(cfg["store"], cfg["udp_port"], None, bytes.fromhex(cfg["pos_key"]))
    sent: list[str] = []
    panels = [LightPanel(cfg["store"], t, cfg["broker_port"], pos, sent) for t in cfg["tills"]]
    for p in panels:
        await p.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for p in panels:
        p.running = True
        p.ring()
    await asyncio.sleep(cfg["seconds"])
    for p in panels:
        p.running = False
    await asyncio.sleep(2)  # the last answers and acks
    print(json.dumps({"sent": sent}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(open(sys.argv[1]).read())))
