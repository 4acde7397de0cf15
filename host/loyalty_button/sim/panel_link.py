"""A stand-in for the store host in tests and benchmarks: the host's side of
the panel protocol over MQTT (paho, on its own thread) with no concentrator
behind it. Publish questions to panels, take in their answers exactly once,
and follow their status; messages are read with the host's own decoder
(service.fleet.panel_message).

Answers arrive at least once (a panel resends until it gets the host's ack,
and after a reboot); they are counted once, by answer id, and each delivery
is acknowledged."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import paho.mqtt.client as mqtt
from lbpanel import protocol

from ..mqtt_loop import nodelay
from ..service.fleet import panel_message

log = logging.getLogger(__name__)


def question_message(store: str, panel: str, session: str, qid: str, kind: str,
                     text: str, lang: str = "en", timeout_s: int = 20, **extra) -> dict:
    msg = protocol.envelope("question", protocol.new_id(), int(time.time()), store, panel)
    msg.update(session=session, qid=qid, kind=kind, text=text, lang=lang, timeout_s=timeout_s)
    msg.update(extra)
    protocol.validate(msg)
    return msg


class PanelLink:
    def __init__(self, store: str, host: str = "127.0.0.1", port: int = 1883,
                 user: str | None = None, password: str | None = None,
                 client_id: str | None = None):
        self.store = store
        self.counters: Counter[str] = Counter()
        self.answers: dict[str, dict] = {}  # answer id -> answer, first copy
        self.by_session: dict[str, dict] = {}
        self.statuses: dict[str, dict] = {}
        self.on_answer = None  # optional callback(answer)
        self.ack_answers = True  # a test may turn acks off to see resends
        self._cond = threading.Condition()
        # A persistent session (clean_session=False): the broker keeps QoS 1
        # answers for us while we are away, even across its own restart.
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"lb-host-{store}",
                                  clean_session=False)
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_socket_open = nodelay
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 2)
        self.host, self.port = host, port
        self.connected = threading.Event()

    def start(self, timeout: float = 10.0) -> "PanelLink":
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise TimeoutError(f"host could not connect to the broker at {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            log.error("broker refused the host: %s", reason_code)
            return
        root = f"{protocol.ROOT}/{self.store}/panel/+/"
        client.subscribe([(root + "answer", 1), (root + "status", 1)])
        self.connected.set()

    def _on_message(self, client, userdata, message):
        try:
            got = panel_message(self.store, message.topic, message.payload)
        except protocol.ProtocolError as e:
            self.counters["rx_" + e.code] += 1
            log.warning("rejected message on %s: %s", message.topic, e.message)
            return
        if got is None:
            return
        panel, leaf, msg = got
        with self._cond:
            if leaf == "status":
                self.statuses[panel] = msg
            elif leaf == "answer":
                # Taken (in memory: this stand-in has no disk): the panel
                # may forget it. A resend is acknowledged again.
                self._ack(panel, msg["id"])
                if msg["id"] in self.answers:
                    self.counters["answer_duplicate"] += 1
                    log.info("duplicate delivery of answer %s ignored", msg["id"])
                    return
                self.answers[msg["id"]] = msg
                self.by_session.setdefault(msg["session"], msg)
                self.counters["answers"] += 1
            self._cond.notify_all()
        if leaf == "answer" and self.on_answer:
            self.on_answer(msg)

    def _ack(self, panel: str, answer_id: str) -> None:
        if self.ack_answers:
            msg = protocol.ack_message(self.store, panel, answer_id, int(time.time()))
            self.client.publish(protocol.panel_topic(self.store, panel, "ack"),
                                protocol.encode(msg), qos=1)

    def ask(self, panel: str, session: str, qid: str, kind: str, text: str, **kw) -> dict:
        msg = question_message(self.store, panel, session, qid, kind, text, **kw)
        self.publish(panel, "question", protocol.encode(msg))
        return msg

    def publish(self, panel: str, leaf: str, payload: bytes, qos: int = 1,
                retain: bool = False) -> None:
        info = self.client.publish(protocol.panel_topic(self.store, panel, leaf),
                                   payload, qos=qos, retain=retain)
        info.wait_for_publish(10)

    def _wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {what} within {timeout}s")
                self._cond.wait(left)

    def wait_answer(self, session: str, timeout: float = 10.0) -> dict:
        return self._wait(lambda: self.by_session.get(session), timeout,
                          f"answer for session {session}")

    def wait_status(self, panel: str, state: str, timeout: float = 10.0, newer_than=None) -> dict:
        def match():
            st = self.statuses.get(panel)
            if st and st["state"] == state and (newer_than is None or st["id"] != newer_than):
                return st
            return None
        return self._wait(match, timeout, f"status {state} from panel {panel}")

