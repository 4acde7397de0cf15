"""The host's broker link (mqtt_loop): paho driven by asyncio, with the
StreamClient's buffered reads and writes, against a real Mosquitto."""

from __future__ import annotations

import asyncio
import threading

import paho.mqtt.client as mqtt

from loyalty_button.mqtt_loop import MqttLoop, StreamClient

N = 2000


def _watcher(port: int, topic: str) -> tuple[mqtt.Client, list, threading.Event]:
    """A plain paho client on its own thread, subscribed to `topic`."""
    got: list[bytes] = []
    subscribed = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="watcher")
    c.on_message = lambda cl, u, m: got.append(m.payload)
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_connect = lambda cl, *a: cl.subscribe(topic, 1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert subscribed.wait(10)
    return c, got, subscribed


async def _until(cond, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def _stream_loop(port: int, client_id: str, will: bool = False) -> MqttLoop:
    client = StreamClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(100)
    if will:
        client.will_set("t/will", b"gone", 1)
    return MqttLoop(client, "127.0.0.1", port)


def test_many_packets_in_one_read_all_arrive_in_order(broker):
    """A burst of small QoS 1 messages lands in few recv() calls; every
    whole packet in the buffer is handled, none waits for the next packet."""
    async def run():
        link = _stream_loop(broker.port, "stream-rx")
        got: list[bytes] = []
        link.client.on_message = lambda c, u, m: got.append(m.payload)
        link.start()
        await asyncio.wait_for(link.up.wait(), 10)
        link.client.subscribe("t/in", 1)
        await asyncio.sleep(0.3)
        sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sender")
        sender.max_inflight_messages_set(1000)
        sender.connect("127.0.0.1", broker.port)
        sender.loop_start()
        for i in range(N):
            sender.publish("t/in", str(i).encode(), qos=1)
        await _until(lambda: len(got) >= N)
        # and the last one is not held back: nothing more arrives, nothing is missing
        await asyncio.sleep(0.2)
        sender.loop_stop()
        sender.disconnect()
        await link.stop()
        return got
    got = asyncio.run(run())
    assert got == [str(i).encode() for i in range(N)]


def test_a_turn_of_publishes_leaves_and_is_acknowledged(broker):
    """Publishes queued in one loop turn leave in order, and paho sees every
    PUBACK (nothing stays in flight)."""
    watcher, got, _ = _watcher(broker.port, "t/out")

    async def run():
        link = _stream_loop(broker.port, "stream-tx")
        acked: list[int] = []
        link.client.on_publish = lambda c, u, mid, rc, p: acked.append(mid)
        link.start()
        await asyncio.wait_for(link.up.wait(), 10)
        for i in range(N):
            assert link.client.publish("t/out", str(i).encode(), qos=1).rc == 0
        await _until(lambda: len(acked) >= N and len(got) >= N)
        await link.stop()
        return acked
    try:
        acked = asyncio.run(run())
    finally:
        watcher.loop_stop()
        watcher.disconnect()
    assert sorted(acked) == sorted(set(acked)) and len(acked) == N
    assert got == [str(i).encode() for i in range(N)]


def test_clean_stop_sends_disconnect_so_no_will(broker):
    """paho closes the socket right after writing DISCONNECT; the buffered
    DISCONNECT must still reach the broker, or it publishes the will."""
    watcher, got, _ = _watcher(broker.port, "t/will")

    async def run(clean: bool):
        link = _stream_loop(broker.port, "stream-will", will=True)
        link.start()
        await asyncio.wait_for(link.up.wait(), 10)
        if clean:
            await link.stop()
        else:
            # A lost link (the socket shut under paho): the broker publishes the will.
            link.client.socket().shutdown(2)
            await asyncio.sleep(0.3)
            link._stopping = True
            await link.stop()
        await asyncio.sleep(0.5)
    try:
        asyncio.run(run(clean=True))
        assert got == []
        asyncio.run(run(clean=False))
        assert got == [b"gone"]
    finally:
        watcher.loop_stop()
        watcher.disconnect()
