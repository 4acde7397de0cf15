# Touch calibration on the panel itself, for a resistive film (the CYD):
# the installer touches four crosses near the corners and one in the middle.
# Raw readings are gathered per press (median: the film bounces), the four
# corners are solved into a calibration (touchcal), the middle one checks
# it, and the result is stored on flash. Runs at the first boot of a board
# without a stored calibration, and from the service screen.
#
# `touch` is passed in (hardware stays in the board module): read_raw()
# gives (raw_x, raw_y) while pressed or None, and `calibration` is the
# mapping its LVGL pointer applies (None silences the pointer meanwhile).
import asyncio

from lbpanel import boards, log, touchcal
from lbpanel.clock import ticks_diff, ticks_ms

_TAG = "calibrate"
# Where the crosses are, as shares of the screen; the last one is the check.
TARGETS = ((0.1, 0.12), (0.9, 0.12), (0.9, 0.88), (0.1, 0.88), (0.5, 0.5))
MIN_READS = 3       # a press shorter than this many readings is a brush


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


class Calibrator:
    """The steps, without screens or clocks: feed it readings, it says what
    to show next."""

    def __init__(self, width, height):
        self.w, self.h = width, height
        self.points = [(int(fx * width), int(fy * height)) for fx, fy in TARGETS]
        self.tolerance = boards.calibration_tolerance(width, height)
        self.cal = None
        self.restart()

    def restart(self):
        self.step = 0
        self.samples = []
        self._reads = []

    def target(self):
        return self.points[self.step]

    def feed(self, reading):
        """reading: (raw_x, raw_y) while pressed, None when not. Returns
        None (nothing new), "short" (a brush: same cross again), "next",
        "done", or ("retry", why) after which it starts over."""
        if reading is not None:
            self._reads.append(reading)
            return None
        if not self._reads:
            return None
        reads, self._reads = self._reads, []
        if len(reads) < MIN_READS:
            return "short"
        raw = (_median([r[0] for r in reads]), _median([r[1] for r in reads]))
        if self.step < len(self.points) - 1:
            self.samples.append((self.target(), raw))
            self.step += 1
            if self.step < len(self.points) - 1:
                return "next"
            try:
                self.cal = touchcal.solve(self.samples)
            except ValueError as e:
                self.restart()
                return ("retry", str(e))
            return "next"
        x, y = self.cal.apply(raw[0], raw[1], self.w, self.h)
        tx, ty = self.target()
        off = max(abs(x - tx), abs(y - ty))
        if off > self.tolerance:
            self.restart()
            return ("retry", "the middle cross was %d px off: once more" % off)
        return "done"


async def run(ui, touch, path=touchcal.DEFAULT_PATH, give_up_s=None, poll_ms=20,
              counters=None):
    """Show the crosses until the installer has touched them all; store
    the calibration and hand it to the touch driver. Returns it, or None
    when given up (no touch for give_up_s, or another screen took over,
    say a question): then the calibration in force before stays."""
    before = touch.calibration
    touch.calibration = None
    steps = Calibrator(ui.w, ui.h)
    note = None
    ui.show_calibration(steps.target(), 1, len(steps.points), note)
    # On the serial port too: the installer's station reads it and tells
    # the installer to tap the crosses (panels/station.py, CALIBRATE_LINE).
    log.info(_TAG, "touch the %d crosses on the screen" % len(steps.points))
    idle_since = ticks_ms()
    while True:
        await asyncio.sleep(poll_ms / 1000)
        if ui.screen != "calibrate":
            log.warning(_TAG, "left for the %s screen; the old calibration stays" % ui.screen)
            touch.calibration = before
            return None
        reading = touch.read_raw()
        if reading is not None:
            idle_since = ticks_ms()
        elif give_up_s and ticks_diff(ticks_ms(), idle_since) > give_up_s * 1000:
            log.warning(_TAG, "no touch for %d s; the old calibration stays" % give_up_s)
            touch.calibration = before
            return None
        event = steps.feed(reading)
        if event is None:
            continue
        if event == "done":
            touchcal.save(steps.cal, path)
            touch.calibration = steps.cal
            if counters is not None:
                counters.add("touch_calibrated")
            log.info(_TAG, "touch calibrated and stored: %s" % (steps.cal.to_dict(),))
            return steps.cal
        if isinstance(event, tuple):
            note = event[1]
            if counters is not None:
                counters.add("touch_calibration_retry")
            log.warning(_TAG, "calibration again: %s" % note)
        elif event == "next":
            note = None
        ui.show_calibration(steps.target(), steps.step + 1, len(steps.points), note)


def offer(ui, touch, path=touchcal.DEFAULT_PATH, give_up_s=60):
    """Give the service screen its "Calibrate touch" button. Untouched for
    give_up_s, the old calibration stays; either way the panel then goes
    back to its idle screen (unless a question took the screen)."""
    async def again():
        await run(ui, touch, path, give_up_s=give_up_s, counters=ui.counters)
        if ui.screen == "calibrate":
            ui.show_adverts(leave=True)

    def start():
        asyncio.create_task(again())
    ui.on_calibrate = start


def attach(ui, touch, path=touchcal.DEFAULT_PATH, give_up_s=60):
    """Wire a resistive board's touch to its UI at boot: the service
    screen's button (offer), and, when the film has never been learnt (no
    stored calibration), the first calibration to await before anything
    else. Returns that coroutine, or None."""
    offer(ui, touch, path, give_up_s)
    if touch.calibration is None:
        return run(ui, touch, path, counters=ui.counters)
    return None
