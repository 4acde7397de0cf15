"""Lightweight panels for the host-only figure of `tools/bench`: every till's
panel and POS in one CPython process on one asyncio loop, speaking raw MQTT
3.1.1 (the firmware's own packet builders, lbpanel.mqtt, and its message
builders, lbpanel.protocol and lbpanel.telemetry) with no UI, no outbox
file, no interpreter per panel and no client library: each panel costs the
machine as little as a panel can, so the figure shows the concentrator's
ceiling, not the simulator's. (The firmware's full asyncio client cost
about 350 us of CPU per transaction here, as much as a third of the
concentrator.)

Each till rings up a sale (a signed UDP receipt), its panel answers the
question the moment it arrives, and when the host acknowledges the answer
(it is committed) the till rings up the next sale: a closed loop.

    python -m loyalty_button.bench.light_panels CONFIG.json

CONFIG: {"store", "broker_port", "udp_port", "pos_key" (hex), "tills",
"seconds"}. Prints "ready" once every panel is online, waits for "go" on
stdin, runs, then prints one JSON line: {"sent": [receipt numbers]}."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
import time

from lbpanel import protocol, telemetry
from lbpanel.app import Identity
from lbpanel.mqtt import connect_packet, publish_packet

from ..sim.store import Pos, panel_of

_CONNACK, _PUBLISH, _PUBACK, _SUBACK = 2, 3, 4, 9


def _subscribe_packet(pid: int, topics: list[str]) -> bytes:
    body = struct.pack("!H", pid) + b"".join(
        struct.pack("!H", len(t)) + t.encode() + b"\x01" for t in topics)
    return bytes([0x82, len(body)]) + body  # a few short topics: one length byte


def _header(buf: bytearray) -> tuple[int, int] | None:
    """(header size, body length) of the packet at the start of `buf`, or
    None while its header is incomplete."""
    length, shift = 0, 0
    for i in range(1, min(len(buf), 5)):
        length |= (buf[i] & 0x7F) << shift
        shift += 7
        if not buf[i] & 0x80:
            return i + 1, length
    return None


def _puback(pid: int) -> bytes:
    return b"\x40\x02" + struct.pack("!H", pid)


class LightPanel(asyncio.Protocol):
    def __init__(self, store: str, till: str, pos: Pos, sent: list):
        self.identity = Identity(store, panel_of(till))
        self.till = till
        self.pos = pos
        self.sent = sent
        self.running = False
        self.seq = 0
        self.pid = 0
        self.online = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.topics = {leaf: protocol.panel_topic(store, self.identity.panel, leaf)
                       for leaf in ("status", "question", "ack", "answer")}
        self.status_pid = None

    def _next_pid(self) -> int:
        self.pid = self.pid % 65535 + 1
        return self.pid

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        will = (self.topics["status"],
                protocol.encode(telemetry.offline_message(self.identity)), 1, True)
        transport.write(connect_packet(self.identity.panel, 60, will=will))

    def connection_lost(self, exc) -> None:
        if not self.online.done():
            self.online.set_exception(ConnectionError(f"{self.till}: broker closed ({exc})"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out = []
        while True:
            head = _header(buf)
            if head is None or len(buf) < head[0] + head[1]:
                break  # the rest of the packet has not arrived yet
            i, length = head
            first, body = buf[0], bytes(buf[i:i + length])
            del buf[:i + length]
            self._packet(first, body, out)
        if out:
            self.transport.write(b"".join(out))  # one write per read

    def _packet(self, first: int, body: bytes, out: list) -> None:
        kind = first >> 4
        if kind == _PUBLISH:
            tlen = struct.unpack_from("!H", body)[0]
            topic = body[2:2 + tlen].decode()
            at = 2 + tlen
            if (first >> 1) & 3:
                out.append(_puback(struct.unpack_from("!H", body, at)[0]))
                at += 2
            if topic == self.topics["question"]:
                out.append(self._answer(protocol.loads(body[at:])))
            elif topic == self.topics["ack"]:
                self.ring()  # committed: the next shopper
        elif kind == _CONNACK:
            if body[1] != 0:
                raise ConnectionError(f"{self.till}: broker refused the login ({body[1]})")
            out.append(_subscribe_packet(self._next_pid(),
                                         [self.topics["question"], self.topics["ack"]]))
        elif kind == _SUBACK:
            self.status_pid = self._next_pid()
            status = telemetry.status_message(self.identity, 0, 0, telemetry.Counters())
            out.append(publish_packet(self.topics["status"], protocol.encode(status), 1, True,
                                      self.status_pid))
        elif kind == _PUBACK and struct.unpack_from("!H", body)[0] == self.status_pid:
            self.status_pid = None
            if not self.online.done():
                self.online.set_result(True)

    def _answer(self, question: dict) -> bytes:
        msg = protocol.envelope("answer", protocol.new_id(), int(time.time()),
                                self.identity.store, self.identity.panel)
        msg.update(session=question["session"], qid=question["qid"], kind=question["kind"],
                   outcome="answered", value=9, answer_ms=500, shown_ms=600)
        return publish_packet(self.topics["answer"], protocol.encode(msg), 1, False,
                              self._next_pid())

    def ring(self) -> None:
        if not self.running:
            return
        self.seq += 1
        number = f"H-{self.till}-{self.seq}"
        self.sent.append(number)
        self.pos.send_udp(self.pos.receipt(self.till, number))


async def main(cfg: dict) -> None:
    loop = asyncio.get_running_loop()
    pos = Pos(cfg["store"], cfg["udp_port"], None, bytes.fromhex(cfg["pos_key"]))
    sent: list[str] = []
    panels = [LightPanel(cfg["store"], t, pos, sent) for t in cfg["tills"]]
    for p in panels:
        await loop.create_connection(lambda p=p: p, "127.0.0.1", cfg["broker_port"])
    await asyncio.wait_for(asyncio.gather(*(p.online for p in panels)), 30)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
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
