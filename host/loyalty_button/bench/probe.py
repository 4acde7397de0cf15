"""`loyalty-button bench probe`: per-frame cost of each stage of the probe
at its working resolution, the probe's memory, and how fast it answers the
concentrator over a real Mosquitto. docs/probe.md has the method and the
figures; stage times are also given as ratios to a baseline measured in the
same run (grey conversion + downscale of the same frame, the least any
frame costs), because the machine is shared and its speed varies."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from lbpanel import protocol


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process, MB."""
    vals = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                vals[line.split(":")[0]] = int(line.split()[1]) / 1024
    return round(vals["VmRSS"], 1), round(vals["VmHWM"], 1)


def _pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return round(s[min(len(s) - 1, int(p * len(s)))], 3)


def camera_frame() -> np.ndarray:
    """A 640x480 camera frame with a shopper's face in it."""
    from ..sim import probe_frames as samples
    face = cv2.resize(samples.astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 110, np.uint8)
    frame[:, 80:560] = face
    return frame


def _time(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def run(out=print, frames: int = 200, requests: int = 300) -> dict:
    from ..probe import pipeline
    rss_start, _ = _rss_mb()
    cv2.setNumThreads(1)  # as the probe service runs it
    analyzer = pipeline.Analyzer(age_gender=True)
    rss_models, _ = _rss_mb()
    frame = camera_frame()
    s = analyzer.detector.s
    width = s.work_width

    def baseline():
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        cv2.resize(grey, (width, width * 3 // 4), interpolation=cv2.INTER_AREA)

    grey, faces, _ = analyzer.faces(frame)
    if not faces:
        raise RuntimeError("benchmark frame: no face found")
    face = faces[0]
    for _ in range(10):  # warm up caches and lazy initialisation
        baseline(), analyzer.faces(frame), analyzer.emotion(grey, face)
        analyzer.age_gender(frame, face)
    stages = {
        "baseline": _time(baseline, frames),
        "detect": _time(lambda: analyzer.faces(frame), frames),
        "emotion": _time(lambda: analyzer.emotion(grey, face), frames),
        "age_gender": _time(lambda: analyzer.age_gender(frame, face), frames),
    }
    result = {"probe_frame": "640x480", "probe_work_width": width}
    base = statistics.median(stages["baseline"])
    out(f"probe stages at {width} px working width on a 640x480 frame ({frames} frames each):")
    for name, t in stages.items():
        p50, p99 = _pct(t, 0.5), _pct(t, 0.99)
        result[f"probe_{name}_p50_ms"], result[f"probe_{name}_p99_ms"] = p50, p99
        ratio = "" if name == "baseline" else f"  ({p50 / base:.0f}x baseline)"
        if name != "baseline":
            result[f"probe_{name}_x_baseline"] = round(p50 / base, 1)
        out(f"  {name:10s} p50 {p50:8.3f} ms  p99 {p99:8.3f} ms{ratio}")
    per_frame = sum(statistics.median(stages[k]) for k in ("detect", "emotion", "age_gender"))
    result["probe_frame_ms"] = round(per_frame, 2)
    result["probe_max_fps_one_core"] = round(1000 / per_frame, 1)
    rss_now, peak = _rss_mb()
    result.update(probe_rss_start_mb=rss_start, probe_rss_models_mb=rss_models,
                  probe_rss_mb=rss_now, probe_rss_peak_mb=peak)
    out(f"  one frame with a face: {per_frame:.1f} ms -> at most "
        f"{1000 / per_frame:.0f} frames/s on one core")
    out(f"  memory: {rss_start} MB before the models, {rss_models} MB with them, "
        f"{rss_now} MB now (peak {peak} MB)")
    result.update(_answer_latency(requests, out))
    return result


def _answer_latency(n: int, out) -> dict:
    """Request -> estimate through Mosquitto against the broker's own round
    trip (publish -> the same client gets it back), same run."""
    import paho.mqtt.client as mqtt

    from ..sim.broker import Broker
    from ..mqtt_loop import nodelay
    from ..sim.store import start_probe
    from ..probe import messages
    from ..sim import probe_frames as samples

    store = "bench"
    with tempfile.TemporaryDirectory(prefix="lb-bench-probe-") as tmp:
        root = Path(tmp)
        broker = Broker(root / "broker", store=store)
        broker.start()
        svc = None
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        try:
            frames = samples.write_folder(root / "frames", run=3)
            svc = start_probe(root / "probe.yaml", store, broker.port, {"1": frames}, fps=5,
                              persist_frames=1, max_age_ms=60000)
            got = threading.Event()
            client.on_socket_open = nodelay
            client.on_message = lambda c, u, m: got.set()
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            echo = f"lb/v1/{store}/bench/echo"
            client.subscribe([(messages.topic(store, "estimate"), 0), (echo, 0)])
            time.sleep(0.3)

            def roundtrip(topic, payload):
                got.clear()
                t0 = time.perf_counter()
                client.publish(topic, payload, qos=0)
                if not got.wait(5):
                    raise RuntimeError(f"no reply on {topic}")
                return (time.perf_counter() - t0) * 1000

            rtt, answer = [], []
            for i in range(n):
                rtt.append(roundtrip(echo, b"x" * 120))
                req = messages.request(protocol.new_id(), int(time.time()), store, "1",
                                       f"bench-{i}", int(time.time() * 1000))
                answer.append(roundtrip(messages.topic(store, "request"), messages.encode(req)))
        finally:
            client.loop_stop()
            client.disconnect()
            if svc:
                svc.stop()
            broker.stop()
    res = {"probe_answer_p50_ms": _pct(answer, 0.5), "probe_answer_p99_ms": _pct(answer, 0.99),
           "probe_broker_rtt_p50_ms": _pct(rtt, 0.5), "probe_broker_rtt_p99_ms": _pct(rtt, 0.99)}
    res["probe_answer_p99_x_rtt"] = round(res["probe_answer_p99_ms"] /
                                          res["probe_broker_rtt_p99_ms"], 1)
    out(f"probe answers (request -> estimate, {n}): p50 {res['probe_answer_p50_ms']} ms, "
        f"p99 {res['probe_answer_p99_ms']} ms; broker round trip p50 "
        f"{res['probe_broker_rtt_p50_ms']} ms, p99 {res['probe_broker_rtt_p99_ms']} ms "
        f"(deadline 300 ms)")
    return res
