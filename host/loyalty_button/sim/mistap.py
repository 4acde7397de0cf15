"""How often a shopper's tap on the NPS scale lands on the wrong score.

A finger aimed at the middle of a score's button lands with the scatter of
a finger on glass: Gaussian, 1.5 mm standard deviation on each axis (the
"absolute precision" of finger touch measured by Bi, Li and Zhai, FFitts
law, CHI 2013). A resistive film (the CYD) adds the error its calibration
is allowed to keep: the calibration check accepts the middle cross up to
`Calibrator.tolerance` pixels off (9 px, 1.6 mm on the CYD), and that error
is systematic, the same for every tap. The worst direction of it is the one
that gives the most wrong scores, so every one of eight directions is tried
and the worst reported.

A tap is, by where it lands:
- right: on the score aimed at;
- wrong: on another score (a shopper moved between detractor and passive
  without knowing it): the figure that matters;
- lost: in a gap or on "no thanks" (nothing counted; the shopper taps
  again or the question times out: no wrong data).

Where taps land is decided by the buttons' areas as LVGL laid them out;
`check_with_lvgl` sends a sample of the same taps through LVGL's pointer
input and the real screen's click handlers, to show the two agree.

    python -m loyalty_button.sim.mistap [--board cyd] [--taps 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import random

import lvgl as lv

from lbpanel import boards, telemetry

from . import lvpanel, screen_checks, screens

SCATTER_MM = 1.5
DIRECTIONS = [(math.cos(a * math.pi / 4), math.sin(a * math.pi / 4)) for a in range(8)]


def calibration_error_px(board_name: str) -> int:
    return boards.touch_error_px(boards.get(board_name))


def _hit(areas: dict, x: float, y: float):
    for key, (x1, y1, x2, y2) in areas.items():
        if x1 <= x <= x2 and y1 <= y <= y2:
            return key
    return None


def _taps(areas: dict, dpi: int, offset: tuple[float, float], taps: int, seed: int):
    """(aimed score, x, y) for `taps` taps spread evenly over the scores."""
    rng = random.Random(seed)
    sigma = SCATTER_MM * dpi / 25.4
    scores = [k for k in areas if isinstance(k, int)]
    for i in range(taps):
        score = scores[i % len(scores)]
        x1, y1, x2, y2 = areas[score]
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        yield score, cx + offset[0] + rng.gauss(0, sigma), cy + offset[1] + rng.gauss(0, sigma)


def measure(board_name: str, question: dict | None = None, taps: int = 1000,
            seed: int = 1) -> dict:
    """Wrong and lost scores per 1000 taps at the worst direction of the
    board's calibration error, and the sizes that explain them."""
    board = boards.get(board_name)
    ui, display, touch = lvpanel.make_ui(board_name, telemetry.Counters())
    try:
        ui.show_question(question or screens.NPS_RU, 30000)
        lv.refr_now(display.disp)
        areas = screen_checks.areas(ui)
    finally:
        ui.show_advert(None)
        lv.refr_now(display.disp)
        touch.delete()
        display.delete()
    err = calibration_error_px(board_name)
    worst = None
    for d in DIRECTIONS:
        offset = (d[0] * err, d[1] * err)
        wrong = lost = 0
        for score, x, y in _taps(areas, board["dpi"], offset, taps, seed):
            got = _hit(areas, x, y)
            if got == score:
                continue
            if isinstance(got, int):
                wrong += 1
            else:
                lost += 1
        row = {"offset_px": [round(offset[0], 1), round(offset[1], 1)],
               "wrong_per_1000": round(wrong * 1000 / taps, 1),
               "lost_per_1000": round(lost * 1000 / taps, 1)}
        if worst is None or row["wrong_per_1000"] > worst["wrong_per_1000"]:
            worst = row
    mm = 25.4 / board["dpi"]
    sizes = sorted((x2 - x1 + 1, y2 - y1 + 1) for k, (x1, y1, x2, y2) in areas.items()
                   if isinstance(k, int))
    worst.update({
        "board": board_name, "taps": taps, "calibration_error_mm": round(err * mm, 2),
        "scatter_mm": SCATTER_MM,
        "smallest_button_mm": [round(sizes[0][0] * mm, 1), round(min(s[1] for s in sizes) * mm, 1)],
        "smallest_gap_mm": round(screen_checks.smallest_gap(list(areas.values())) * mm, 2),
    })
    return worst


def check_with_lvgl(board_name: str, question: dict | None = None, taps: int = 60,
                    seed: int = 2) -> list[tuple]:
    """Send `taps` scattered taps through LVGL's pointer to the real screen
    and return (aimed, predicted from the areas, what the screen answered)
    for each."""
    ui, display, touch = lvpanel.make_ui(board_name, telemetry.Counters())
    got = []

    class App:
        counters = telemetry.Counters()

        def touch(self, value):
            got.append(value)

        def decline(self):
            got.append("decline")

        def stray_press(self):
            pass
    ui.bind(App())
    board = boards.get(board_name)
    err = calibration_error_px(board_name)
    out = []
    try:
        ui.show_question(question or screens.NPS_RU, 30000)
        for _ in range(3):
            ui.step(10)
        areas = screen_checks.areas(ui)
        for score, x, y in _taps(areas, board["dpi"], (err, 0), taps, seed):
            x = min(max(int(round(x)), 0), ui.w - 1)
            y = min(max(int(round(y)), 0), ui.h - 1)
            del got[:]
            # Taps here come faster than a hand's; the debounce (real time)
            # would take the next one on the same button for a bounce.
            ui._last_press.clear()
            lvpanel.tap(ui, touch, x, y)
            predicted = _hit(areas, x, y)
            out.append((score, predicted, got[0] if got else None))
    finally:
        ui.show_advert(None)
        lv.refr_now(display.disp)
        touch.delete()
        display.delete()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--board", action="append", choices=sorted(boards.BOARDS))
    parser.add_argument("--taps", type=int, default=11000)
    args = parser.parse_args(argv)
    for name in args.board or sorted(boards.BOARDS):
        print(json.dumps(measure(name, taps=args.taps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
