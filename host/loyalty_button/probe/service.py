"""The probe service: one worker thread per camera turns frames into
estimates kept in a short ring buffer per till; a request from the
concentrator ("who is in front of till T at time t?") is answered at once
from that buffer, never by waiting for a frame.

Frames live only in the worker's local variables: they are never stored,
written or sent. Only the derived numbers reach the buffer and the wire."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter, deque

import cv2
import paho.mqtt.client as mqtt

from lbpanel import protocol
from lbpanel.protocol import ProtocolError

from ..loglimit import LogLimiter
from ..mqtt_loop import nodelay
from . import cameras, messages, pipeline
from .config import Camera, ProbeConfig

log = logging.getLogger(__name__)

_REOPEN_S = 5.0        # a camera that failed is tried again this often
_MISSES_TO_REOPEN = 10  # frames in a row without a picture before reopening


def now_ms() -> int:
    return int(time.time() * 1000)


class Ring:
    """Recent results for one till: (time ms, estimate or None for a frame
    without a persistent face). Written by the camera's worker, read by the
    MQTT thread."""

    def __init__(self, maxlen: int):
        self._items: deque = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add(self, ts_ms: int, estimate: dict | None) -> None:
        with self._lock:
            self._items.append((ts_ms, estimate))

    def nearest(self, at_ms: int, max_age_ms: int) -> tuple[str, dict | None, int | None]:
        """(status, estimate, age_ms) for the moment `at_ms`; see
        messages.STATUSES for what each status means."""
        with self._lock:
            items = list(self._items)
        faces = [(abs(ts - at_ms), est) for ts, est in items if est is not None]
        best = min(faces, key=lambda x: x[0]) if faces else None
        if best is not None and best[0] <= max_age_ms:
            return "ok", best[1], best[0]
        if any(abs(ts - at_ms) <= max_age_ms for ts, _ in items):
            return "no_face", None, None
        if best is not None:
            return "stale", None, best[0]
        return "no_camera", None, None


class CameraWorker(threading.Thread):
    def __init__(self, cam: Camera, cfg: ProbeConfig, ring: Ring, counters: Counter,
                 analyzer: pipeline.Analyzer, limit: LogLimiter):
        super().__init__(name=f"probe-{cam.till}", daemon=True)
        self.cam, self.cfg, self.ring, self.counters = cam, cfg, ring, counters
        self.analyzer, self.limit = analyzer, limit
        self.persist = pipeline.Persistence(cfg.persist_frames)
        self.stopping = threading.Event()
        self.source = None

    def run(self) -> None:
        period = 1.0 / self.cfg.fps
        misses = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            if self.source is None:
                try:
                    self.source = cameras.open_source(self.cam.source)
                    log.info("till %s: camera %s open", self.cam.till, self.source.name)
                    misses = 0
                except (cameras.SourceError, OSError) as e:
                    self.counters["camera_errors"] += 1
                    self.limit("camera_" + self.cam.till, logging.ERROR,
                               "till %s: camera %s unavailable: %s; retrying every %ds",
                               self.cam.till, self.cam.source, e, _REOPEN_S)
                    self.stopping.wait(_REOPEN_S)
                    continue
            try:
                frame = self.source.read()
            except Exception as e:  # a driver error must not end the worker
                log.error("till %s: reading %s failed: %s", self.cam.till, self.source.name, e)
                frame = None
            if frame is None:
                misses += 1
                self.counters["frames_missing"] += 1
                if misses >= _MISSES_TO_REOPEN:
                    log.warning("till %s: %d frames in a row missing from %s; reopening",
                                self.cam.till, misses, self.source.name)
                    self._close()
            else:
                misses = 0
                try:
                    self.process(frame)
                except Exception:
                    self.counters["frame_errors"] += 1
                    log.exception("till %s: analysing a frame failed", self.cam.till)
            del frame  # the frame goes here, and nowhere else
            self.stopping.wait(max(0.0, period - (time.monotonic() - started)))
        self._close()

    def process(self, frame) -> None:
        ts = now_ms()
        grey, faces, _ = self.analyzer.faces(frame)
        self.counters["frames"] += 1
        main = faces[0] if faces else None
        if self.persist.update(main):
            est, _ = self.analyzer.describe(frame, grey, main)
            est["faces"] = len(faces)
            self.ring.add(ts, est)
            self.counters["estimates"] += 1
        else:
            self.ring.add(ts, None)

    def _close(self) -> None:
        if self.source is not None:
            try:
                self.source.close()
            except Exception as e:
                log.warning("till %s: closing %s: %s", self.cam.till, self.source.name, e)
            self.source = None


class ProbeService:
    def __init__(self, cfg: ProbeConfig):
        self.cfg = cfg
        self.counters: Counter[str] = Counter()
        self.limit = LogLimiter(logger=log)
        self.rings: dict[str, Ring] = {}
        self.workers: list[CameraWorker] = []
        self.connected = threading.Event()
        # One OpenCV thread per camera worker: the probe must never take the
        # cores the concentrator needs to answer a till at once.
        cv2.setNumThreads(1)
        if cfg.enabled:
            size = max(1, int(cfg.buffer_s * cfg.fps))
            for cam in cfg.cameras:
                ring = self.rings[cam.till] = Ring(size)
                detector = pipeline.DetectorSettings(cfg.work_width, cfg.min_face, cam.roi)
                analyzer = pipeline.Analyzer(cfg.models, detector, cfg.age_gender)
                self.workers.append(CameraWorker(cam, cfg, ring, self.counters, analyzer,
                                                 self.limit))
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"lb-probe-{cfg.store}", clean_session=True)
        if cfg.broker_user:
            client.username_pw_set(cfg.broker_user, cfg.broker_password)
        client.will_set(messages.topic(cfg.store, "status"),
                        messages.encode(self._status_msg("offline")), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *a: self.connected.clear()
        client.on_message = self._on_message
        client.on_socket_open = nodelay
        self.client = client

    def _status_msg(self, state: str) -> dict:
        extra = {}
        if state == "online":
            extra = {"tills": sorted(self.rings), "age_gender": self.cfg.age_gender}
        return messages.status(protocol.new_id(), int(time.time()), self.cfg.store, state,
                               **extra)

    def start(self) -> None:
        for w in self.workers:
            w.start()
        self.client.connect_async(self.cfg.broker_host, self.cfg.broker_port,
                                  self.cfg.broker_keepalive_s)
        self.client.loop_start()
        log.info("probe for store %s: %s, %d camera(s)", self.cfg.store,
                 "enabled" if self.cfg.enabled else "OFF (enabled: false)", len(self.workers))

    def stop(self) -> None:
        for w in self.workers:
            w.stopping.set()
        for w in self.workers:
            w.join(10)
        if self.connected.is_set():
            info = self.client.publish(messages.topic(self.cfg.store, "status"),
                                       messages.encode(self._status_msg("offline")),
                                       qos=1, retain=True)
            info.wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self.limit("connect", logging.ERROR, "broker refused the probe: %s", reason)
            return
        client.subscribe(messages.topic(self.cfg.store, "request"), qos=0)
        client.publish(messages.topic(self.cfg.store, "status"),
                       messages.encode(self._status_msg("online" if self.cfg.enabled else "off")),
                       qos=1, retain=True)
        self.connected.set()

    def _on_message(self, client, userdata, message) -> None:
        # An exception escaping into paho would break its read state and
        # end every later request: whatever fails here is counted and logged.
        try:
            self._on_request(client, message)
        except Exception as e:
            self.counters["request_error"] += 1
            self.limit("request_error", logging.ERROR, "request on %s could not be handled "
                       "(%s: %s); the link goes on", message.topic, type(e).__name__, e)

    def _on_request(self, client, message) -> None:
        try:
            req = messages.decode(message.payload, "probe_request")
            if req["store"] != self.cfg.store:
                raise ProtocolError("wrong_store", f"request for store {req['store']}, "
                                                   f"this probe is {self.cfg.store}")
        except ProtocolError as e:
            self.counters["request_" + e.code] += 1
            self.limit("request_" + e.code, logging.WARNING, "refused request: %s", e.message)
            return
        self.counters["requests"] += 1
        est = self.answer(req)
        self.counters["answered_" + est["status"]] += 1
        client.publish(messages.topic(self.cfg.store, "estimate"), messages.encode(est), qos=0)

    def answer(self, req: dict) -> dict:
        ring = self.rings.get(req["till"])
        if ring is None:
            status, est, age = "no_camera", None, None
        else:
            status, est, age = ring.nearest(req["at_ms"], self.cfg.max_age_ms)
        fields = {"age_ms": age}
        if est is not None:
            fields.update({k: est.get(k) for k in ("emotion", "emotions", "c_value", "faces",
                                                   "age_band", "gender")})
        return messages.estimate(protocol.new_id(), int(time.time()), self.cfg.store, req,
                                 status, **fields)

    def status(self) -> dict:
        return {"store": self.cfg.store, "enabled": self.cfg.enabled,
                "broker": "up" if self.connected.is_set() else "down",
                "cameras": {w.cam.till: (w.source.name if w.source else "closed")
                            for w in self.workers},
                "counters": dict(sorted(self.counters.items()))}


def serve(cfg: ProbeConfig, ready_file=None) -> None:
    """Run the probe until SIGTERM/SIGINT."""
    svc = ProbeService(cfg)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    svc.start()
    if ready_file:
        while not svc.connected.wait(0.1):
            if stop.is_set():
                break
        with open(ready_file, "w") as f:
            f.write(str(os.getpid()))
    while not stop.wait(60):
        c = svc.counters
        log.info("last counts: frames %d, estimates %d, requests %d (ok %d, no_face %d, "
                 "stale %d, no_camera %d)", c["frames"], c["estimates"], c["requests"],
                 c["answered_ok"], c["answered_no_face"], c["answered_stale"],
                 c["answered_no_camera"])
    log.info("stopping")
    svc.stop()
