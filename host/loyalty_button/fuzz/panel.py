# The panel's parsers fuzzed on the interpreter the panel ships on:
#   micropython panel.py CASES SEED   -> one JSON line of results
# (MICROPYPATH must hold the firmware; loyalty_button.fuzz.run does it).
# What the host may send a panel is mutated from valid samples and read
# the way the panel reads it: protocol.decode for each inbound message,
# and the MQTT packet reader over a byte stream. Refusing is fine
# (ProtocolError); any other exception is a crash.
import json
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0] if "/" in __file__ else ".")

import asyncio  # noqa: E402

from lbpanel import mqtt, protocol  # noqa: E402
from mutate import Rng, mutate_bytes  # noqa: E402
from streams import Sink, Stream  # noqa: E402

STORE, PANEL = "s1", "till-1"


def samples():
    def env(kind):
        return protocol.envelope(kind, "c000000000000001", 1795334470, STORE, PANEL)
    q = env("question")
    q.update(session="s1-R-1", qid="nps", kind="nps", text="Recommend us?", lang="en",
             timeout_s=20, why={"text": "Why?", "reasons": [{"id": "staff", "text": "Staff"}]},
             qr={"url": "https://example.com/t", "to": "unhappy"})
    c = env("question")
    c.update(session="s1-R-2", qid="pick", kind="choice", text="Which?", lang="en",
             timeout_s=20, options=[{"id": "a", "text": "A"}, {"id": "b", "text": "B"}])
    cfg = env("config")
    cfg["settings"] = {"timeout_s": 30, "thanks_s": 3}
    cmd = env("cmd")
    cmd["cmd"] = "ping"
    ads = env("adverts")
    ads.update(url="http://192.168.1.10:8080/adverts/cyd/",
               items=[{"id": "spring", "sha256": "ab" * 32, "size": 1000, "duration_s": 8,
                       "w": 320, "h": 240}])
    ack = protocol.ack_message(STORE, PANEL, "a0000000000000a1", 1795334470)
    out = []
    for msg in (q, c, cfg, cmd, ads, ack):
        out.append((msg["type"], protocol.encode(msg)))
    return out


class Crashes:
    def __init__(self):
        self.n = 0
        self.examples = []

    def add(self, what, data, e):
        self.n += 1
        if len(self.examples) < 3:
            self.examples.append({"error": "%s: %s" % (type(e).__name__, e),
                                  "input": repr(data)[:300], "where": what})


def read_message(leaf, payload):
    msg = protocol.decode(payload, leaf)
    protocol.check_addressed(msg, STORE, PANEL)
    return msg


def fuzz_messages(rng, cases, crashes):
    base = samples()
    pool = [p for _, p in base]
    for _ in range(cases):
        leaf, payload = rng.pick(base)
        data = mutate_bytes(rng, payload, pool)
        try:
            read_message(leaf, data)
        except protocol.ProtocolError:
            pass
        except Exception as e:
            crashes.add("protocol.decode(%s)" % leaf, data, e)


def packets():
    base = samples()
    topic = protocol.panel_topic(STORE, PANEL, "question")
    out = [mqtt.publish_packet(topic, base[0][1], 1, False, 7),
           mqtt.publish_packet(protocol.panel_topic(STORE, PANEL, "ack"), base[5][1], 0, False, 0),
           b"\x40\x02\x00\x07", b"\x90\x03\x00\x01\x01", b"\xd0\x00"]
    return out


def fuzz_reader(rng, cases, crashes):
    pool = packets()
    leaves = {}
    for leaf in protocol.PANEL_LEAVES:
        leaves[protocol.panel_topic(STORE, PANEL, leaf)] = leaf

    def on_message(topic, payload, retained):
        try:
            read_message(leaves.get(topic, "question"), payload)
        except protocol.ProtocolError:
            pass
        except Exception as e:
            crashes.add("mqtt on_message", payload, e)

    async def one(data):
        client = mqtt.Client("fuzz", "127.0.0.1", on_message=on_message,
                             max_packet=protocol.MAX_PAYLOAD + 256)
        client._reader = mqtt._Buffered(Stream(data))
        client._writer = Sink()
        client.up = True
        await client._read_loop()
        if client.up:
            raise RuntimeError("the reader returned with the link still up")

    for _ in range(cases):
        stream = b"".join([rng.pick(pool) for _ in range(1 + rng.below(3))])
        data = mutate_bytes(rng, stream, pool)
        try:
            asyncio.run(one(data))
        except Exception as e:
            crashes.add("mqtt reader", data, e)


def main():
    cases = int(sys.argv[1])
    seed = int(sys.argv[2])
    results = {}
    for name, fn in (("panel_message_upy", fuzz_messages), ("mqtt_reader_upy", fuzz_reader)):
        crashes = Crashes()
        fn(Rng(seed), cases, crashes)
        results[name] = {"cases": cases, "crashes": crashes.n, "examples": crashes.examples}
    print(json.dumps(results))


main()
