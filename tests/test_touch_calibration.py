"""Calibrating the CYD's resistive touch on the panel itself: the real
calibration loop (lbpanel.calibrate) and LVGL screens (lvui) under
pydevices-lvgl, with a made-up resistive film in place of the XPT2046 (an
ESP32's SPI cannot exist here; the film gives raw readings the way the
board module's read_raw() does)."""

from __future__ import annotations

import asyncio
import json

from lbpanel import calibrate, lvui, telemetry, touchcal
from loyalty_button.sim import lvpanel


class Film:
    """Raw readings for wherever the finger is, axes swapped and mirrored
    like a CYD's; `calibration` as the board's ResistiveTouch holds it."""

    def __init__(self):
        self.finger = None
        self.calibration = None
        self.reads = 0

    def read_raw(self):
        if self.finger is None:
            return None
        self.reads += 1
        x, y = self.finger
        return 3900 - y * 15, 200 + x * 11


async def _installer(ui, film: Film, off_by: dict | None = None, crosses: int = 99):
    """Touches each cross as it appears (off_by: {step: dx} for a careless
    touch), for at most `crosses` crosses."""
    seen = None
    done = 0
    while done < crosses:
        await asyncio.sleep(0.02)
        if ui.screen != "calibrate":
            continue
        d = ui.detail
        key = (d["step"], tuple(d["target"]), d["note"])
        if key == seen:
            continue
        seen = key
        x, y = d["target"]
        film.finger = (x + (off_by or {}).pop(d["step"], 0), y)
        await asyncio.sleep(0.15)
        film.finger = None
        await asyncio.sleep(0.08)
        done += 1


async def _until(predicate, timeout=10.0):
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not met")


def test_installer_calibrates_from_the_service_screen_and_a_careless_touch_starts_again(
        tmp_path):
    counters = telemetry.Counters()
    ui, display, pointer = lvpanel.make_ui("cyd", counters)
    path = str(tmp_path / "touch_cal.json")
    film = Film()
    screens = []
    ui.on_screen = lambda name, detail: screens.append((name, dict(detail)))

    async def scenario():
        lvgl = asyncio.create_task(lvui.run_lvgl(ui))
        calibrate.offer(ui, film, path, give_up_s=1)
        ui.show_status({"panel": "till-1", "board": "cyd"})
        ui.show_advert(None)  # the playlist moves on: the installer's screen stays
        assert ui.screen == "status"
        finger = lvpanel.Finger(ui, pointer)
        # The service screen's button, tapped through LVGL's pointer.
        assert await finger.touch_target("calibrate")
        await _until(lambda: ui.screen == "calibrate")
        ui.show_adverts()
        assert ui.screen == "calibrate"
        # The 5th cross (the check) touched 25 px off the first time.
        await _installer(ui, film, off_by={5: 25}, crosses=10)
        await _until(lambda: ui.screen == "adverts")
        cal = film.calibration
        # Left alone on the calibration screen: it gives up, keeps the old.
        ui.on_calibrate()
        await _until(lambda: ui.screen == "calibrate")
        assert film.calibration is None  # the pointer is quiet meanwhile
        await _until(lambda: ui.screen == "adverts", timeout=5)
        assert film.calibration is cal
        # A question arriving mid-way wins; the old calibration stays.
        ui.on_calibrate()
        await _until(lambda: ui.screen == "calibrate")
        ui.show_question({"session": "r-1", "qid": "q", "kind": "yesno", "lang": "en",
                          "text": "Found everything?", "timeout_s": 30}, 30000)
        await asyncio.sleep(0.1)
        assert ui.screen == "question" and film.calibration is cal
        lvgl.cancel()
        return cal

    try:
        cal = asyncio.run(scenario())
    finally:
        pointer.delete()
        display.delete()
    notes = [d["note"] for name, d in screens if name == "calibrate" and d["note"]]
    assert len(notes) == 1 and "px off" in notes[0]
    steps = [d["step"] for name, d in screens if name == "calibrate"]
    assert steps[:10] == [1, 2, 3, 4, 5, 1, 2, 3, 4, 5]
    assert cal is not None and cal.swap
    for x, y in ((0, 0), (160, 120), (319, 239), (300, 30)):
        gx, gy = cal.apply(3900 - y * 15, 200 + x * 11, 320, 240)
        assert abs(gx - x) <= 2 and abs(gy - y) <= 2
    # Stored on flash: the next boot loads the same mapping.
    stored = touchcal.load(path)
    assert json.loads(open(path).read())["swap"] is True
    assert stored.apply(1000, 1000, 320, 240) == cal.apply(1000, 1000, 320, 240)
    assert counters.get("touch_calibrated") == 1
    assert counters.get("touch_calibration_retry") == 1
