# The panel with its LVGL screens under lvgl_micropython's unix port: the
# real interpreter (32-bit, like an ESP32), the real LVGL and the real UI,
# with the firmware frozen in as on a panel; only the glass and the finger
# are simulated. Used by the simulator and the tests (sim/panel.py).
#   MICROPYPATH=.frozen:firmware/unix_port_stubs lvgl_micropython -X heapsize=96K \
#       firmware/sim/lvgl_panel.py BOARD FONTS_DIR GLASS_FILE panel.json
# GLASS_FILE holds what the display shows (RGB565, little-endian, row by
# row): the display's own memory, not the heap, as on a panel.
# Console words (stdin), each a real touch through LVGL's pointer:
#   tap 9 | tap yes | reasons a,b | decline | touch X Y [MS] | status | quit
# A board with a resistive film (the CYD) is touched through a simulated
# film: the finger's place becomes raw readings, which the stored
# calibration (touch_cal.json in the working folder) maps back to pixels,
# as boards/cyd.py does. Options after PANEL_JSON:
#   --uncalibrated   a panel out of the box: no calibration is written, so
#                    it boots into the calibration crosses (as main.py does)
#   --give-up-s N    the calibration screen's give-up time (default 60)
# Without --uncalibrated and without a stored calibration, the film's exact
# calibration is stored first: an installed panel.
# Screen changes are printed as JSON lines on stdout, like the headless UI.
# This file sits apart from lbpanel/ because MicroPython puts a script's
# folder first on its path: here, the firmware is imported frozen.
import asyncio
import json
import sys
import time

import lvgl as lv
import machine
import network

from lbpanel import app, boards, calibrate, log, lvui, touchcal, touchwords

_TAG = "sim"


class Glass:
    """A display of the board's size: LVGL's partial renders and the advert
    bands are written into GLASS_FILE at their place."""

    def __init__(self, board, path):
        self.width = board["width"]
        self.height = board["height"]
        self.disp = lv.display_create(self.width, self.height)
        self.disp.set_color_format(lv.COLOR_FORMAT.RGB565)
        lines = min(board["display"]["buffer_lines"], self.height)
        self._buf = bytearray(self.width * lines * 2)
        self._mv = memoryview(self._buf)
        self.disp.set_buffers(self._buf, None, len(self._buf), lv.DISPLAY_RENDER_MODE.PARTIAL)
        self.disp.set_flush_cb(self._flush)
        self.disp.set_default()
        self.f = open(path, "w+b")
        blank = bytes(self.width * 2)
        for _ in range(self.height):
            self.f.write(blank)
        self.flushes = 0

    def _rows(self, x, y, w, h, data):
        row = w * 2
        for i in range(h):
            self.f.seek(((y + i) * self.width + x) * 2)
            self.f.write(data[i * row:(i + 1) * row])

    def _flush(self, disp, area, _px):
        self._rows(area.x1, area.y1, area.x2 - area.x1 + 1, area.y2 - area.y1 + 1, self._mv)
        self.f.flush()
        self.flushes += 1
        disp.flush_ready()

    def blit(self, x, y, w, h, data):
        self._rows(x, y, w, h, memoryview(data))
        self.f.flush()


def film_raw(x, y):
    """The simulated resistive film: raw readings for a touch at (x, y),
    axes swapped and one mirrored, like a CYD's XPT2046."""
    return 3900 - y * 15, 200 + x * 11


def film_calibration():
    """The calibration that maps film_raw exactly back (rounded) to pixels."""
    return touchcal.Calibration(1 / 11, -200 / 11 + 0.5, -1 / 15, 260 + 0.5, swap=True)


class Finger:
    """An LVGL pointer input device and the touches the console asks for.
    resistive: the pointer reads the film through `calibration` (None
    keeps it released), and read_raw() serves lbpanel.calibrate, like the
    CYD's ResistiveTouch."""

    def __init__(self, glass, ui, resistive=False):
        self.ui = ui
        self.w, self.h = glass.width, glass.height
        self.x = self.y = 0
        self.down = False
        self.reads = 0
        self.resistive = resistive
        self.calibration = touchcal.load() if resistive else None
        self.indev = lv.indev_create()
        self.indev.set_type(lv.INDEV_TYPE.POINTER)
        self.indev.set_read_cb(self._read)
        self.indev.set_display(glass.disp)
        self._area = lv.area_t()

    def read_raw(self):
        return film_raw(self.x, self.y) if self.down else None

    def _read(self, _indev, data):
        self.reads += 1
        if not self.resistive:
            data.point.x = self.x
            data.point.y = self.y
            data.state = lv.INDEV_STATE.PRESSED if self.down else lv.INDEV_STATE.RELEASED
            return
        raw = self.read_raw()
        if raw is None or self.calibration is None:
            data.state = lv.INDEV_STATE.RELEASED
            return
        data.point.x, data.point.y = self.calibration.apply(raw[0], raw[1], self.w, self.h)
        data.state = lv.INDEV_STATE.PRESSED

    async def _hold(self, ms, reads):
        # At least `ms`, and until LVGL has read the pointer `reads` times:
        # a long render (a new screen, a collection in a small heap) can
        # outlast a short touch, and LVGL would never feel it.
        self.reads = 0
        start = time.ticks_ms()
        while self.reads < reads or time.ticks_diff(time.ticks_ms(), start) < ms:
            await asyncio.sleep_ms(10)

    async def touch_at(self, x, y, hold_ms=100):
        # LVGL reads the pointer every 33 ms: a press and the gap after it
        # each last a few reads, or two taps merge into one drag.
        self.x, self.y, self.down = x, y, True
        await self._hold(max(hold_ms, 70), 2)
        self.down = False
        await self._hold(100, 2)

    async def touch_target(self, key):
        obj = self.ui.targets.get(key)
        if obj is None:
            log.warning(_TAG, "nothing on the %s screen answers %r" % (self.ui.screen, key))
            return
        obj.update_layout()  # a screen built a moment ago may not be placed yet
        obj.get_coords(self._area)
        a = self._area
        await self.touch_at((a.x1 + a.x2) // 2, (a.y1 + a.y2) // 2)


def console_of(finger, panel_of):
    """The console, from boot on: a first calibration is touched before
    the app exists. panel_of() is the app, or None before it starts."""
    async def run():
        reader = asyncio.StreamReader(sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            words = line.decode().strip().split(None, 1)
            if not words:
                continue
            cmd, arg = words[0], (words[1] if len(words) > 1 else "")
            panel = panel_of()
            try:
                if cmd == "quit":
                    if panel is None:
                        sys.exit(0)
                    await panel.stop()
                    return
                if not await touchwords.play(finger, panel, cmd, arg):
                    log.warning(_TAG, "unknown command %r" % cmd)
            except Exception as e:  # a bad line must not stop the panel
                log.error(_TAG, "console %r failed: %r" % (cmd, e))
    return run


def _option(name, default=None):
    if name in sys.argv:
        i = sys.argv.index(name)
        return sys.argv[i + 1] if i + 1 < len(sys.argv) else True
    return default


def main():
    if len(sys.argv) < 5:
        sys.stderr.write("usage: lvgl_panel.py BOARD FONTS_DIR GLASS_FILE PANEL_JSON "
                         "[--uncalibrated] [--give-up-s N]\n")
        sys.exit(2)
    board_name, fonts_dir, glass_file, config_file = sys.argv[1:5]
    board = boards.get(board_name)
    resistive = bool(board["touch"].get("calibrate"))
    if resistive and "--uncalibrated" not in sys.argv and touchcal.load() is None:
        touchcal.save(film_calibration())
    lv.init()
    glass = Glass(board, glass_file)

    def read_font(name):
        with open(fonts_dir + "/" + name, "rb") as f:
            return f.read()
    ui = lvui.LvglUI(board, glass, lvui.load_fonts(board, read_font))
    ui.board_name = board_name

    def announce(name, detail):
        line = {"ui": name}
        line.update(detail)
        print(json.dumps(line))
    ui.on_screen = announce
    finger = Finger(glass, ui, resistive)
    first = None
    if resistive:  # as main.py: the service screen's button, the first crosses
        first = calibrate.attach(ui, finger, give_up_s=int(_option("--give-up-s", 60)))

    started = []

    async def adopt(panel):  # app.start hands the console its app
        started.append(panel)

    async def run():
        asyncio.create_task(lvui.run_lvgl(ui))
        asyncio.create_task(console_of(finger, lambda: started[0] if started else None)())
        if first is not None:
            await first
        await app.start(config_file, ui, network=network, reset=machine.reset,
                        wdt=machine.WDT(timeout=10000), console=adopt)
    asyncio.run(run())


if __name__ == "__main__":
    main()
