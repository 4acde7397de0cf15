"""The emotion probe: the pipeline on real photos with the real models, the
CLI, the service answering from its ring buffer over a real Mosquitto, and
the concentrator's deadline: a slow, absent or switched-off probe never
holds up a transaction and a record never waits for it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
import yaml

from conftest import STORE, Host, receipt_doc
from loyalty_button.probe import cameras, config as probe_config, messages, models, pipeline
from loyalty_button.sim import probe_frames as samples
from loyalty_button.probe.service import ProbeService, Ring
from loyalty_button.sim import store as store_sim
from loyalty_button.service.records import SCHEMA_VERSION, RecordStore, open_records

CLI = [sys.executable, "-m", "loyalty_button.cli"]


@pytest.fixture(scope="module")
def analyzer():
    return pipeline.Analyzer(age_gender=True)


@pytest.fixture(scope="module")
def astronaut():
    return samples.astronaut()


def analyze_cli(path: Path, *extra):
    proc = subprocess.run(CLI + ["probe", "analyze", str(path), *extra], capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


# --- the pipeline and the CLI -------------------------------------------------

def test_the_astronaut_is_one_happy_face_with_an_age_band_and_stage_times(tmp_path, astronaut):
    path = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(path), astronaut)
    rc, out, err = analyze_cli(path, "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert result["faces"] == 1
    main = result["main"]
    assert main["emotion"] == "happy" and main["emotions"]["happy"] > 0.8
    assert abs(sum(main["emotions"].values()) - 1) < 0.01
    assert main["c_value"] > 50
    assert main["age_band"] in [b for *_, b in pipeline.AGE_BANDS]
    assert main["gender"] in ("female", "male") and 0.5 <= main["gender_p"] <= 1
    assert "age" not in main  # a band, never a precise age
    x, y, w, h = main["box"]
    assert 150 < x < 200 and 40 < y < 90 and 80 < w < 120  # her face, not the suit
    assert set(result["timings_ms"]) == {"detect", "emotion", "age_gender"}


def test_an_image_without_a_face_says_faces_0_and_exits_0(tmp_path):
    path = tmp_path / "coffee.png"
    cv2.imwrite(str(path), samples.no_face())
    rc, out, _ = analyze_cli(path, "--json")
    result = json.loads(out)
    assert rc == 0 and result["faces"] == 0 and "main" not in result
    rc, out, _ = analyze_cli(path)
    assert rc == 0 and "faces: 0" in out


@pytest.mark.parametrize("content, why", [
    (b"", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not an image"),
    (None, "no such file"),
])
def test_an_unreadable_file_is_a_clear_error_with_exit_2(tmp_path, content, why):
    path = tmp_path / "frame.png"
    if content is not None:
        path.write_bytes(content)
    rc, out, err = analyze_cli(path, "--json")
    assert rc == 2 and out == ""
    assert why in err and str(path) in err


def test_several_faces_are_counted_and_the_largest_is_the_shopper(astronaut):
    small = cv2.resize(astronaut, (384, 384), interpolation=cv2.INTER_AREA)
    scene = np.full((512, 512 + 384, 3), 90, np.uint8)
    scene[:, 384:] = astronaut
    scene[64:448, :384] = small
    # A wide frame: detect at full width, or the smaller face drops under
    # the minimum size.
    wide = pipeline.Analyzer(detector=pipeline.DetectorSettings(work_width=896))
    result = wide.analyze(scene)
    assert result["faces"] == 2
    x, y, w, h = result["main"]["box"]
    assert x > 384 and w > 80  # the full-size face on the right
    assert result["main"]["emotion"] == "happy"


def test_a_tiny_face_is_not_analysed(analyzer, astronaut):
    tiny = cv2.resize(astronaut, (96, 96), interpolation=cv2.INTER_AREA)  # face ~18 px
    assert analyzer.analyze(tiny)["faces"] == 0


def test_the_region_of_interest_keeps_a_face_outside_it_out(astronaut):
    # Her face spans 34-53 % of the width: a camera whose left 60 % shows
    # the cashier must never analyse it.
    only_right = pipeline.Analyzer(detector=pipeline.DetectorSettings(roi=(0.6, 0, 1, 1)))
    assert only_right.analyze(astronaut)["faces"] == 0
    only_left = pipeline.Analyzer(detector=pipeline.DetectorSettings(roi=(0.0, 0, 0.6, 1)))
    assert only_left.analyze(astronaut)["main"]["box"][0] > 150  # back in frame pixels


def test_c_value_is_expected_valence_in_points():
    zero = dict.fromkeys(pipeline.EMOTIONS, 0.0)
    assert pipeline.c_value(dict(zero, happy=1.0)) == 100
    assert pipeline.c_value(dict(zero, angry=1.0)) == -100
    assert pipeline.c_value(dict(zero, neutral=1.0)) == 0
    assert pipeline.c_value(dict(zero, happy=0.5, sad=0.5)) == 10
    uniform = {k: 1 / 7 for k in pipeline.EMOTIONS}
    assert -100 <= pipeline.c_value(uniform) <= 100
    assert [pipeline.age_band(a) for a in (5, 18, 34.6, 44.2, 70)] == \
        ["under-18", "18-24", "25-34", "35-44", "65+"]


def test_a_face_counts_only_after_it_persists_over_frames():
    p = pipeline.Persistence(frames=3)
    face = pipeline.Face(100, 100, 60, 60)
    moved = pipeline.Face(300, 100, 60, 60)
    assert [p.update(face), p.update(face), p.update(face)] == [False, False, True]
    assert p.update(moved) is False  # somewhere else: a new run
    assert p.update(None) is False
    assert [p.update(face), p.update(pipeline.Face(104, 98, 60, 62)), p.update(face)] == \
        [False, False, True]


def test_ring_answers_with_the_estimate_nearest_in_time_or_says_why_not():
    ring = Ring(50)
    assert ring.nearest(10_000, 1000)[0] == "no_camera"
    ring.add(10_000, None)
    ring.add(10_200, {"emotion": "sad"})
    ring.add(10_400, {"emotion": "happy"})
    ring.add(10_600, None)
    status, est, age = ring.nearest(10_450, 1000)
    assert (status, est["emotion"], age) == ("ok", "happy", 50)
    assert ring.nearest(12_000, 1000)[0] == "stale"
    assert ring.nearest(12_000, 1000)[2] == 1600
    quiet = Ring(50)
    quiet.add(20_000, None)
    assert quiet.nearest(20_100, 1000)[0] == "no_face"


def test_model_files_missing_or_altered_are_refused_with_what_to_do(tmp_path):
    with pytest.raises(models.ModelError, match="missing; run tools/bootstrap"):
        models.path("emotion", tmp_path)
    bad = tmp_path / models.MODELS["emotion"].name
    shutil.copy(models.path("emotion"), bad)
    with bad.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01")
    with pytest.raises(models.ModelError, match="not the tested one"):
        models.path("emotion", tmp_path)
    assert "emotion" in models.missing(tmp_path)


def test_probe_messages_are_checked(tmp_path):
    req = messages.request("r1", 1, STORE, "1", "s1-R-1", 1000)
    assert messages.decode(messages.encode(req), "probe_request") == req
    good = messages.estimate("e1", 1, STORE, req, "ok", emotion="happy", c_value=90, age_ms=5,
                             emotions=dict.fromkeys(messages.EMOTIONS, 0.1))
    messages.decode(messages.encode(good), "probe_estimate")
    for bad, why in [(dict(good, c_value=101), "c_value"),
                     (dict(good, emotions={"happy": 1.0}), "emotions"),
                     (dict(good, status="maybe"), "status"),
                     (dict(good, status="no_face"), "only goes with status ok"),
                     (dict(good, till="a/b"), "till")]:
        with pytest.raises(messages.ProtocolError, match=why):
            messages.encode(bad)
    with pytest.raises(messages.ProtocolError, match="not valid JSON"):
        messages.decode(b"{nope", "probe_estimate")


def test_probe_config_lists_every_problem(tmp_path):
    doc = {"store": "s 1", "enabled": "yes", "fps": 100, "colour": 1,
           "cameras": [{"till": "1", "source": "webcam"},
                       {"till": "2", "source": "folder:"},
                       {"till": "3", "source": "v4l2:0", "roi": [0.5, 0, 0.4, 1]},
                       {"till": "3", "source": "v4l2:1"}]}
    with pytest.raises(probe_config.ProbeConfigError) as e:
        probe_config.parse(doc, tmp_path)
    text = "\n".join(e.value.problems)
    for part in ("store: must be an id", "enabled: must be true or false", "fps: must be",
                 "colour: unknown setting", "cameras[0].source: unknown camera kind 'webcam'",
                 "cameras[1].source: folder: needs a path", "cameras[2].roi",
                 "cameras[3].till: till 3 has two cameras"):
        assert part in text
    with pytest.raises(probe_config.ProbeConfigError, match="enabled but has no camera"):
        probe_config.parse({"store": "s1", "enabled": True}, tmp_path)
    assert probe_config.parse({"store": "s1"}, tmp_path).enabled is False  # off by default


def test_the_shipped_example_settings_are_valid_and_off():
    from loyalty_button.service import config as host_config
    from loyalty_button.sim.store import EXAMPLES
    example = EXAMPLES / "probe.yaml"
    cfg = probe_config.load(example)
    assert cfg.enabled is False and cfg.cameras[0].roi == (0.3, 0.0, 1.0, 1.0)
    conc = host_config.load(example.parent / "concentrator.yaml")
    assert (conc.probe_enabled, conc.probe_deadline_ms) == (False, 300)


def test_probe_run_refuses_a_bad_config_with_exit_2(tmp_path):
    path = tmp_path / "probe.yaml"
    path.write_text("store: s1\nenabled: true\ncameras: [{till: '1', source: 'scanner'}]\n")
    proc = subprocess.run(CLI + ["probe", "run", "--config", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "unknown camera kind 'scanner'" in proc.stderr


def test_a_folder_source_skips_a_corrupt_image_and_says_so(tmp_path, caplog, astronaut):
    cv2.imwrite(str(tmp_path / "a.jpg"), astronaut)
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    src = cameras.open_source(f"folder:{tmp_path}")
    frames = [src.read() for _ in range(4)]
    assert all(f is not None and f.shape == astronaut.shape for f in frames)
    assert src.bad == {tmp_path / "b.jpg"}
    assert sum("b.jpg" in r.getMessage() for r in caplog.records) == 1


def test_a_video_file_plays_and_loops(tmp_path, astronaut):
    path = tmp_path / "till.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (512, 512))
    for _ in range(3):
        writer.write(astronaut)
    writer.release()
    src = cameras.open_source(f"video:{path}")
    frames = [src.read() for _ in range(7)]  # past the end: it starts again
    src.close()
    assert all(f is not None and f.shape == astronaut.shape for f in frames)
    with pytest.raises(cameras.SourceError, match="not a video"):
        cameras.open_source(f"video:{tmp_path / 'none.avi'}")


def test_a_camera_that_will_not_open_is_retried_and_its_till_says_no_camera(tmp_path, broker):
    gone = tmp_path / "unplugged"  # a folder camera whose folder is not there
    cfg = probe_config.parse({"store": STORE, "enabled": True, "broker": {"port": broker.port},
                              "cameras": [{"till": "1", "source": f"folder:{gone}"}]}, tmp_path)
    svc = ProbeService(cfg)
    svc.start()
    try:
        deadline = time.monotonic() + 10
        while not svc.counters["camera_errors"]:
            assert time.monotonic() < deadline, svc.status()
            time.sleep(0.05)
        req = messages.request("r1", 1, STORE, "1", "s1-R-1", int(time.time() * 1000))
        assert svc.answer(req)["status"] == "no_camera"
        assert svc.status()["cameras"] == {"1": "closed"}
    finally:
        svc.stop()


# --- the service and the concentrator over MQTT ---------------------------------

@pytest.fixture
def frames(tmp_path, astronaut):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.jpg"), astronaut)
    return folder


def start_probe(root: Path, broker, frames: Path | None, service=None, **extra):
    """The real service; camera at till 1 playing `frames` (None: off)."""
    return store_sim.start_probe(root / "probe.yaml", STORE, broker.port,
                                 {"1": frames} if frames else {}, service, fps=10,
                                 persist_frames=2, max_age_ms=5000, **extra)


@pytest.fixture
def probe_host(tmp_path, broker):
    h = Host(tmp_path / "host", broker, probe={"enabled": True, "deadline_ms": 300})
    yield h
    h.stop()


def wait_probe_state(host, state):
    host.wait(lambda: host.thread.call(lambda: host.host.probe.state) == state,
              f"probe {state} at the concentrator")


def test_a_transaction_gets_the_shoppers_emotion_in_its_record(probe_host, broker, panels,
                                                               frames, tmp_path):
    svc = start_probe(tmp_path, broker, frames, age_gender=True)
    try:
        panel = panels.start("till-1")
        probe_host.start()
        probe_host.wait_online("till-1")
        wait_probe_state(probe_host, "online")
        probe_host.pos.send_udp(receipt_doc("1", "R-1", "7700123"))
        panel.answer("s1-R-1", 10)
        panel.wait_screen("why", session="s1-R-1")
        panel.send("reasons staff")
        probe_host.wait_record("s1-R-1", outcome="answered")
        rec = probe_host.wait(lambda: (r := probe_host.record("s1-R-1"))["probe"] == "ok" and r,
                              "emotion merged")
        assert (rec["value"], rec["emotion"]) == (10, "happy") and rec["c_value"] > 50
        assert set(rec["emotions"]) == set(pipeline.EMOTIONS)
        assert rec["age_band"] and rec["gender"] in ("female", "male")
        assert 0 <= rec["probe_age_ms"] <= 5000
        # A till without a camera: the probe says so at once.
        probe_host.pos.send_udp(receipt_doc("2", "R-2"))
        rec = probe_host.wait(lambda: (r := probe_host.record("s1-R-2")) and
                              r["probe"] == "no_camera" and r, "no_camera merged")
        assert rec["emotion"] is None and rec["c_value"] is None
        c = probe_host.counters()
        assert (c["probe_asked"], c["probe_ok"], c["probe_no_camera"]) == (2, 1, 1)
        assert svc.counters["requests"] == 2 and svc.counters["answered_ok"] == 1
    finally:
        svc.stop()
    # Its clean stop says offline, so the next receipts do not wait for it.
    wait_probe_state(probe_host, "offline")
    probe_host.pos.send_udp(receipt_doc("1", "R-3"))
    rec = probe_host.wait(lambda: probe_host.record("s1-R-3"), "record R-3")
    assert rec["probe"] == "absent"


class SlowProbe(ProbeService):
    """The real service, answering only when the test lets it."""
    release = threading.Event()

    def answer(self, req):
        self.release.wait(30)
        return super().answer(req)


def test_a_slow_probe_never_delays_a_transaction_and_its_late_answer_is_dropped(
        probe_host, broker, panels, frames, tmp_path):
    svc = start_probe(tmp_path, broker, frames, SlowProbe)
    try:
        panel = panels.start("till-1")
        probe_host.start()
        probe_host.wait_online("till-1")
        wait_probe_state(probe_host, "online")
        # HTTP answers 202 only once the record is on disk: with the probe
        # still holding its answer, the record is there, marked asked.
        status, _ = probe_host.pos.send_http(receipt_doc("1", "R-1"))
        assert status == 202
        assert open_records(probe_host.cfg.database)[0]["probe"] == "asked"
        shown = panel.wait_screen("question", session="s1-R-1")
        assert shown["session"] == "s1-R-1"  # the question went out regardless
        probe_host.wait_counter("probe_late")
        rec = probe_host.record("s1-R-1")
        assert rec["probe"] == "late" and rec["emotion"] is None
        assert svc.counters["answered_ok"] == 0  # the probe has not answered yet
        panel.answer("s1-R-1", 4)  # a csat: non-members get the "rest" rule
        SlowProbe.release.set()
        probe_host.wait_counter("probe_estimate_unmatched")
        rec = probe_host.wait_record("s1-R-1", outcome="answered")
        assert (rec["value"], rec["probe"], rec["emotion"]) == (4, "late", None)
    finally:
        SlowProbe.release.set()
        svc.stop()


def test_a_probe_switched_off_opens_no_camera_and_records_say_off(probe_host, broker,
                                                                   tmp_path):
    svc = start_probe(tmp_path, broker, None)
    try:
        assert svc.workers == [] and svc.rings == {}
        probe_host.start()
        wait_probe_state(probe_host, "off")
        probe_host.pos.send_udp(receipt_doc("1", "R-1"))
        rec = probe_host.wait(lambda: probe_host.record("s1-R-1"), "record")
        assert rec["probe"] == "off"
        assert probe_host.counters()["probe_off"] == 1
        assert svc.counters["requests"] == 0  # it was never asked
    finally:
        svc.stop()


def test_no_probe_at_all_and_garbage_on_its_topics(probe_host, broker):
    probe_host.start()
    probe_host.pos.send_udp(receipt_doc("1", "R-1"))
    assert probe_host.wait(lambda: probe_host.record("s1-R-1"), "record")["probe"] == "absent"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.publish(messages.topic(STORE, "estimate"), b"\xff garbage", qos=1).wait_for_publish()
        client.publish(messages.topic(STORE, "status"), b'{"v":1,"type":"probe_status"}',
                       qos=1).wait_for_publish()
        probe_host.wait_counter("probe_rx_malformed")
        probe_host.wait_counter("probe_rx_invalid")
    finally:
        client.loop_stop()
        client.disconnect()
    assert {code for _, code, _ in probe_host.rejects()} >= {"probe_rx_malformed",
                                                             "probe_rx_invalid"}


def test_without_the_probe_setting_records_have_no_probe_fields(host):
    host.pos.send_udp(receipt_doc("1", "R-1"))
    rec = host.wait(lambda: host.record("s1-R-1"), "record")
    assert rec["probe"] is None and "probe" not in host.counters() and \
        host.thread.status()["probe"] == "not used"


def test_a_schema_1_database_is_migrated_keeping_its_records(tmp_path):
    db = tmp_path / "records.db"
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '1');
        CREATE TABLE records (id TEXT PRIMARY KEY, store TEXT NOT NULL, till TEXT NOT NULL,
            receipt TEXT NOT NULL, panel TEXT, loyalty_id TEXT, cashier TEXT, total REAL,
            currency TEXT, items INTEGER, extras TEXT, lang TEXT, source TEXT NOT NULL,
            pos_msg_id TEXT, sale_ts INTEGER NOT NULL, received_ms INTEGER NOT NULL, rule TEXT,
            qid TEXT, kind TEXT, asked_ms INTEGER, state TEXT NOT NULL, outcome TEXT,
            reason TEXT, value, reasons TEXT, answer_ms INTEGER, shown_ms INTEGER,
            answer_id TEXT, late INTEGER NOT NULL DEFAULT 0, closed_ms INTEGER,
            updated_ms INTEGER NOT NULL);
        INSERT INTO records (id, store, till, receipt, source, sale_ts, received_ms, state,
            outcome, value, updated_ms)
            VALUES ('s1-old', 's1', '1', 'old', 'udp', 1, 1000, 'closed', 'answered', 7, 1000);
    """)
    conn.commit()
    conn.close()
    store = RecordStore(db)
    store.set_probe("s1-old", {"probe": "ok", "emotion": "sad", "c_value": -60,
                               "emotions": {"sad": 0.7}})
    store.flush()
    store.stop()
    [rec] = open_records(db)
    assert (rec["value"], rec["probe"], rec["emotion"], rec["c_value"], rec["emotions"]) == \
        (7, "ok", "sad", -60, {"sad": 0.7})
    assert rec["advert"] is None and rec["burst"] is None  # schemas 3 and 4, same migration
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == \
        (str(SCHEMA_VERSION),)
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone() == (0,)
    conn.close()


# The documented fields of what the probe publishes (docs/protocol.md,
# "Emotion probe"): anything else could carry what the camera saw.
_ENVELOPE = {"v", "type", "id", "ts", "store"}
_ESTIMATE = _ENVELOPE | {"request", "till", "session", "status", "age_ms", "faces", "emotion",
                         "c_value", "emotions", "age_band", "gender"}
_STATUS = _ENVELOPE | {"state", "tills", "age_gender"}
_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed (tools/bootstrap)")
def test_the_probe_stores_and_sends_no_frame(tmp_path, broker, frames):
    """The privacy promise (docs/probe.md): the real service, run as its own
    process over a camera source for a while and asked as the host asks,
    opens no file for writing and publishes only the documented numbers."""
    work = tmp_path / "probe"
    work.mkdir()
    (work / "probe.yaml").write_text(yaml.safe_dump({
        "store": STORE, "enabled": True, "age_gender": True, "fps": 10,
        "broker": {"host": "127.0.0.1", "port": broker.port},
        "cameras": [{"till": "1", "source": f"folder:{frames}"}]}))
    seen: list[tuple[str, bytes]] = []
    host = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="privacy-host")
    host.on_message = lambda c, u, m: seen.append((m.topic, m.payload))
    host.connect("127.0.0.1", broker.port)
    host.loop_start()
    host.subscribe(f"lb/v1/{STORE}/probe/#", qos=1)
    trace = tmp_path / "strace.txt"
    proc = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", str(trace), "-e",
         "trace=open,openat,openat2,creat,rename,renameat,renameat2,link,linkat,symlink,mkdir",
         sys.executable, "-m", "loyalty_button.cli", "probe", "run", "--config",
         str(work / "probe.yaml"), "--ready-file", str(work / "ready")],
        cwd=work, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "probe.log", "wb"))
    try:
        deadline = time.monotonic() + 60
        while not (work / "ready").exists():
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "probe.log").read_text()[-2000:]
            time.sleep(0.1)
        asked = 0
        for i in range(30):  # a few seconds of a busy till
            req = messages.request(f"rq{i}", int(time.time()), STORE, "1", f"{STORE}-P{i}",
                                   int(time.time() * 1000))
            host.publish(messages.topic(STORE, "request"), json.dumps(req).encode(), qos=0)
            asked += 1
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        # SIGTERM to the probe itself (its PID is in the ready file), not to
        # strace, which would detach and leave it running.
        if (work / "ready").exists():
            os.kill(int((work / "ready").read_text()), signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        host.loop_stop()
        host.disconnect()
    estimates = [json.loads(p) for t, p in seen if t.endswith("/estimate")]
    statuses = [json.loads(p) for t, p in seen if t.endswith("/status") and p]
    assert len(estimates) >= asked // 2 and any(e["status"] == "ok" for e in estimates)
    for e in estimates:
        assert set(e) <= _ESTIMATE, set(e) - _ESTIMATE
        assert set(e.get("emotions", {})) <= set(pipeline.EMOTIONS)
        assert all(isinstance(v, (int, float)) for v in e.get("emotions", {}).values())
    for s in statuses:
        assert set(s) <= _STATUS, set(s) - _STATUS
    # no payload is big enough to hide even a thumbnail
    assert max(len(p) for _, p in seen) < 1024
    written = []
    for line in trace.read_text().splitlines():
        if "= -1" in line or not any(flag in line for flag in _WRITE_FLAGS + ("rename", "link",
                                                                               "mkdir")):
            continue
        if "open" in line and not any(flag in line for flag in _WRITE_FLAGS):
            continue
        written.append(line)
    allowed = ("/dev/null", "/dev/shm/", str(work / "ready"))
    unexpected = [w for w in written if not any(a in w for a in allowed)]
    assert unexpected == [], unexpected[:10]
