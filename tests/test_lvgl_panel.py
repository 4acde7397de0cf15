"""The panel with its LVGL screens (lvui.py) simulated under pydevices-lvgl
for each board, end to end through a real Mosquitto: touches go through
LVGL's pointer input device onto the button that shows the answer, and the
answer arrives over MQTT."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from lbpanel import protocol
from loyalty_button.adverts import image as advert_image
from lbpanel.protocol import new_id

from conftest import STORE, status_counters

BOARDS = ["cyd", "s3_8048"]


def _guard() -> None:
    time.sleep(0.4)  # the panel ignores touches for 300 ms after a question


@pytest.mark.parametrize("board", BOARDS)
def test_tap_nine_publishes_nine(panels, link, board):
    panel = panels.start("p1", board=board)
    link.wait_status("p1", "online", timeout=20)
    link.ask("p1", "r-9", "nps-main", "nps", "Порекомендуете нас?",
             labels={"low": "Нет", "high": "Да"})
    panel.wait_screen("question", session="r-9", timeout=10)
    _guard()
    panel.tap(9)
    answer = link.wait_answer("r-9")
    assert answer["outcome"] == "answered" and answer["value"] == 9
    assert "burst" not in answer
    panel.wait_screen("thanks", session="r-9")
    shot = panel.workdir / "thanks.png"
    panel.send(f"shot {shot}")
    deadline = time.time() + 5
    while not shot.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_why_chips_yes_no_and_choice(panels, link):
    panel = panels.start("p1", board="cyd")
    link.wait_status("p1", "online", timeout=20)
    link.ask("p1", "r-1", "nps-main", "nps", "Would you recommend us?",
             why={"text": "Why?", "reasons": [{"id": "queue", "text": "Queue"},
                                              {"id": "price", "text": "Prices"},
                                              {"id": "staff", "text": "Staff"}]})
    panel.wait_screen("question", session="r-1")
    _guard()
    panel.tap(3)
    panel.wait_screen("why", session="r-1")
    panel.send("reasons queue,staff")
    answer = link.wait_answer("r-1")
    assert (answer["value"], answer["reasons"]) == (3, ["queue", "staff"])

    link.ask("p1", "r-2", "yn", "yesno", "Нашли всё, что искали?", lang="ru")
    panel.wait_screen("question", session="r-2")
    _guard()
    panel.tap("no")
    assert link.wait_answer("r-2")["value"] == "no"

    opts = [{"id": "o%d" % i, "text": "Option %d" % i} for i in range(6)]
    link.ask("p1", "r-3", "why-in", "choice", "What brought you in?", options=opts)
    panel.wait_screen("question", session="r-3")
    _guard()
    panel.tap("o4")
    assert link.wait_answer("r-3")["value"] == "o4"

    link.ask("p1", "r-4", "csat", "csat", "How was it?")
    panel.wait_screen("question", session="r-4")
    _guard()
    panel.send("decline")
    assert link.wait_answer("r-4")["outcome"] == "declined"


def test_guard_settle_and_burst(panels, link):
    """A touch in the first moments is ignored; a child mashing buttons
    gives one answer (the first pick) flagged as a burst."""
    panel = panels.start("p1", board="cyd", touch={"settle_ms": 1500})
    link.wait_status("p1", "online", timeout=20)
    link.ask("p1", "r-5", "nps-main", "nps", "Recommend us?")
    panel.wait_screen("question", session="r-5")
    panel.tap(0)  # inside the 300 ms guard: the previous shopper's hand
    _guard()
    for value in (8, 2, 10, 5):
        panel.tap(value)
    answer = link.wait_answer("r-5")
    assert answer["value"] == 8
    assert answer["burst"] == 5
    counters = status_counters(link, "p1")
    assert counters["touch_guarded"] == 1
    assert counters["touch_extra"] == 3
    assert counters["answer_burst"] == 1


def test_service_screen_on_long_press_in_corner(panels, link):
    panel = panels.start("p1", board="cyd")
    link.wait_status("p1", "online", timeout=20)
    panel.wait_screen("adverts")
    panel.send("touch 160 120 3500")  # the middle: nothing
    panel.send("touch 6 6 1000")      # the corner, too short
    panel.send("touch 6 6 3500")      # the corner, held
    status = panel.wait_screen("status", timeout=10)
    assert status["panel"] == "p1" and status["store"] == STORE
    assert status["broker"] == "up" and status["board"] == "cyd"
    assert status["fw"] and "outbox" in status
    # Exactly one: the short hold and the middle did nothing.
    time.sleep(0.3)
    assert panel.screens.empty()
    panel.send("touch 160 200 80")
    panel.wait_screen("adverts")


def test_unknown_board_in_panel_json_is_a_warning_not_a_crash(panels, link):
    cfg = panels.config("p1", board="cyd-v9")
    panel = panels.start("p1", config=cfg)  # MicroPython, headless
    link.wait_status("p1", "online", timeout=20)
    assert status_counters(link, "p1")["config_warning"] == 1
    assert "unknown board 'cyd-v9'" in panel.log_tail()


def test_bad_questions_are_logged_and_show_something_sensible(panels, link):
    panel = panels.start("p1", board="cyd")
    link.wait_status("p1", "online", timeout=20)
    panel.wait_screen("adverts")
    q = protocol.envelope("question", new_id(), int(time.time()), STORE, "p1")
    q.update(session="r-x", qid="slider", kind="slider", lang="en", text="Slide!",
             timeout_s=10)
    link.publish("p1", "question", json.dumps(q).encode())
    link.ask("p1", "r-long", "long", "yesno", "Скажите, пожалуйста, " * 8 + "довольны ли вы?")
    panel.wait_screen("question", session="r-long")
    link.ask("p1", "r-glyph", "glyph", "yesno", "Did you like our 寿司 bar?")
    panel.wait_screen("question", session="r-glyph")
    _guard()
    panel.tap("yes")
    assert link.wait_answer("r-glyph")["value"] == "yes"
    counters = status_counters(link, "p1")
    assert counters["rx_invalid"] == 1          # the unknown kind, never shown
    assert counters["ui_text_truncated"] == 1   # cut with "..." and logged
    assert counters["ui_missing_glyph"] == 1    # shown as "?" and logged
    log = panel.log_tail(20000)
    assert "slider" in log and "text too long" in log and "U+5BFF" in log


# --- adverts -----------------------------------------------------------------

@pytest.fixture
def advert_server():
    from loyalty_button.sim.file_server import FileServer
    server = FileServer()
    yield server
    server.close()


def _item(advert_id: str, body: bytes, w: int, h: int, duration: int = 2,
          sha: str | None = None) -> dict:
    return {"id": advert_id, "sha256": sha or hashlib.sha256(body).hexdigest(),
            "size": len(body), "duration_s": duration, "w": w, "h": h}


def _glass(panel, tmp_path):
    """What the panel's glass shows now, as an RGB image."""
    from PIL import Image
    time.sleep(0.3)
    shot = tmp_path / "glass.png"
    shot.unlink(missing_ok=True)
    panel.send(f"shot {shot}")
    deadline = time.time() + 5
    while not shot.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    return Image.open(shot).convert("RGB")


def test_adverts_cached_checked_shown_and_proof_of_play(panels, link, advert_server, tmp_path):
    server = advert_server
    good = advert_image.encode(advert_image.sample(320, 240))
    wrong_sha = advert_image.encode(advert_image.sample(320, 240, title="Другая"))
    not_image = b"\x00" * 500
    items = [_item("spring", good, 320, 240, 30),
             _item("tampered", wrong_sha, 320, 240, sha="0" * 64),
             _item("garbage", not_image, 320, 240),
             _item("unserved", b"x" * 100, 320, 240)]  # the host lost it: 404
    for item, body in zip(items[:3], (good, wrong_sha, not_image)):
        server.files["/adverts/cyd/" + item["sha256"] + ".bin"] = body
    manifest = protocol.envelope("adverts", new_id(), int(time.time()), STORE, "p1")
    manifest["url"] = "http://127.0.0.1:%d/adverts/cyd/" % server.port
    manifest["items"] = items
    link.publish("p1", "adverts", protocol.encode(manifest), retain=True)

    panel = panels.start("p1", board="cyd")
    link.wait_status("p1", "online", timeout=20)
    panel.wait_screen("adverts", advert="spring", timeout=15)
    glass = _glass(panel, tmp_path)
    # The advert's pixels are on the glass (RGB565 rounding aside).
    want = advert_image.fit(advert_image.sample(320, 240), 320, 240).convert("RGB")
    for xy in ((10, 10), (160, 120), (300, 220), (250, 60)):
        assert all(abs(a - b) <= 8 for a, b in zip(glass.getpixel(xy), want.getpixel(xy))), xy

    link.ask("p1", "r-ad", "nps-main", "nps", "Recommend us?")
    panel.wait_screen("question", session="r-ad")
    _guard()
    panel.tap(10)
    answer = link.wait_answer("r-ad")
    assert answer["advert"] == "spring"

    counters = status_counters(link, "p1")
    assert counters["advert_fetched"] == 2       # spring and garbage (hash fine)
    assert counters["advert_corrupt"] == 2       # tampered (hash), garbage (header)
    assert counters["advert_fetch_failed"] == 1  # unserved: tried again later
    status = link.statuses["p1"]
    assert status["adverts"]["bad"] == ["garbage", "tampered"]
    assert status["adverts"]["ready"] == 1 and status["adverts"]["planned"] == 4
    log = panel.log_tail(20000)
    assert "tampered skipped: download sha256 mismatch" in log
    assert "garbage skipped: not an LVGL 9 image" in log
    assert "unserved not fetched: HTTP" in log

    # Corrupt the cached file on flash: after a restart it is hashed,
    # found bad, fetched again, and shown.
    cached = next((panel.workdir / "adverts").glob(items[0]["sha256"] + ".bin"))
    data = bytearray(cached.read_bytes())
    data[5000] ^= 0xFF
    cached.write_bytes(bytes(data))
    panel.stop()
    before = len(server.hits)
    panel2 = panels.start("p1", board="cyd")
    panel2.wait_screen("adverts", advert="spring", timeout=15)
    assert server.hits[before:].count("/adverts/cyd/" + items[0]["sha256"] + ".bin") == 1
    assert "corrupt on flash" in panel2.log_tail(20000)
