"""Calibrating the CYD's resistive touch on the panel itself, the LVGL
panel under CPython with pydevices-lvgl against a real Mosquitto: the real
calibration loop (lbpanel.calibrate), the real LVGL screens, and a
simulated resistive film in place of the XPT2046 (sim/lvpanel.py: the
finger's place becomes raw readings, mapped to pixels through the stored
calibration as boards/cyd.py does). The steps themselves are tested under
both interpreters (the MicroPython unix port and CPython) in
tests/upy/test_core_calibrate.py."""

from __future__ import annotations

import json

from conftest import status_counters



def _installer(panel, crosses: int, off_by: dict | None = None) -> list[dict]:
    """Touch each cross as it appears, for `crosses` crosses; off_by
    {step: dx}: that cross is touched dx px off, once. Returns the
    calibration screens seen."""
    off_by = dict(off_by or {})
    seen = []
    for _ in range(crosses):
        line = panel.wait_screen("calibrate", timeout=15)
        seen.append(line)
        x, y = line["target"]
        panel.send(f"touch {x + off_by.pop(line['step'], 0)} {y} 150")
    return seen


def _answer(panel, link, session: str, value) -> dict:
    link.ask("p1", session, "nps-main", "nps", "Would you recommend us?")
    panel.answer(session, value)
    return link.wait_answer(session, timeout=15)


def test_a_new_cyd_is_calibrated_at_first_boot_and_from_the_service_screen(panels, link):
    # Out of the box: no stored calibration, so the crosses come first,
    # before the panel even joins the broker.
    panel = panels.start("p1", board="cyd", sim_args=["--uncalibrated", "--give-up-s", "2"])
    cal_file = panel.workdir / "touch_cal.json"
    first = _installer(panel, 5)
    assert [c["step"] for c in first] == [1, 2, 3, 4, 5]
    assert all(c["total"] == 5 and c["note"] is None for c in first)
    link.wait_status("p1", "online", timeout=20)
    stored = json.loads(cal_file.read_text())
    assert stored["swap"] is True  # the CYD's film has its axes swapped

    # The learnt calibration is what the pointer uses now: both ends of
    # the NPS scale, tapped through the film, give the score shown there.
    assert _answer(panel, link, "r-1", 10)["value"] == 10
    assert _answer(panel, link, "r-2", 0)["value"] == 0

    # From the service screen, with a careless touch on the check cross
    # (the 5th) the first time: it says how far off and starts again.
    panel.send("status")
    panel.wait_screen("status")
    panel.tap("calibrate")
    again = _installer(panel, 10, off_by={5: 25})
    assert [c["step"] for c in again] == [1, 2, 3, 4, 5, 1, 2, 3, 4, 5]
    notes = [c["note"] for c in again if c["note"]]
    assert len(notes) == 1 and "px off" in notes[0] and again[5]["note"] == notes[0]
    panel.wait_screen("adverts", timeout=10)
    counters = status_counters(link, "p1")
    assert counters.get("touch_calibrated") == 1
    assert counters.get("touch_calibration_retry") == 1
    learnt = cal_file.read_text()

    # Left alone on the crosses: it gives up and keeps the calibration.
    panel.send("status")
    panel.wait_screen("status")
    panel.tap("calibrate")
    panel.wait_screen("calibrate", step=1)
    panel.wait_screen("adverts", timeout=10)
    assert cal_file.read_text() == learnt
    assert _answer(panel, link, "r-3", 9)["value"] == 9

    # A question arriving mid-way wins, and the old calibration stays in
    # force: the shopper's tap lands.
    panel.send("status")
    panel.wait_screen("status")
    panel.tap("calibrate")
    panel.wait_screen("calibrate", step=1)
    assert _answer(panel, link, "r-4", 7)["value"] == 7
    assert cal_file.read_text() == learnt

    # Stored on flash: the next boot goes straight to work.
    panel.stop()
    panel.sim_args = []
    panel.start()
    link.wait_status("p1", "online", timeout=20)
    assert _answer(panel, link, "r-5", 3)["value"] == 3
    assert not any(line["ui"] == "calibrate" for line in list(panel.screens.queue))
