"""The panel with its LVGL screens, simulated on the host: the real panel
core (firmware/lbpanel) and the real UI module (lvui.py) under CPython with
`pydevices-lvgl`, drawing into an offscreen display of the board's
resolution. Touches go through an LVGL pointer input device, as a finger on
the glass would; on a board with a resistive film (the CYD) through a
simulated film and the calibration stored in the working folder, as
boards/cyd.py reads it: `--uncalibrated` boots a panel out of the box into
the calibration crosses (lbpanel.calibrate), as main.py does.

    python -m loyalty_button.sim.lvpanel --board cyd [--shots DIR]
        [--uncalibrated] [--give-up-s N] panel.json

Console (stdin), the same words as the MicroPython panel's, each turned into
real touches on the control that shows that answer:
    tap 9 | tap yes | tap opt-b       touch that answer's button
    reasons queue,price               touch those chips, then "Done"
    decline                           touch "No, thanks"
    touch X Y [MS]                    touch a point (held MS ms, default 100)
    shot FILE                         save the screen as PNG
    status                            open the service screen
    quit                              go offline cleanly and stop
Screen changes are printed as JSON lines on stdout, like the headless UI."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
from pathlib import Path

import lvgl as lv

from lbpanel import app as panel_app
from lbpanel import boards, calibrate, lvui, touchcal, touchwords

from ..panels import fonts as font_files

_initialised = False


def lv_init() -> None:
    global _initialised
    if not _initialised:
        lv.init()
        _initialised = True


def rgb565_to_png(fb: bytes | bytearray, width: int, height: int) -> bytes:
    """A PNG of a little-endian RGB565 frame."""
    import io

    import numpy as np
    from PIL import Image
    px = np.frombuffer(bytes(fb), dtype="<u2").reshape(height, width).astype(np.uint32)
    # 5 and 6 bits to 8, rounded to the nearest level.
    rgb = np.dstack((((px >> 11) & 0x1F) * 255 // 31, ((px >> 5) & 0x3F) * 255 // 63,
                     (px & 0x1F) * 255 // 31)).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, "PNG")
    return out.getvalue()


class SimDisplay:
    """An offscreen LVGL display of the board's size. `fb` is the panel's
    own memory (what the glass shows): LVGL's partial renders are copied
    into it by the flush callback, and adverts are blitted into it band by
    band, as the real display drivers do."""

    def __init__(self, width: int, height: int, buffer_lines: int = 20):
        lv_init()
        self.width = width
        self.height = height
        self.fb = bytearray(width * height * 2)
        self.disp = lv.display_create(width, height)
        self.disp.set_color_format(lv.COLOR_FORMAT.RGB565)
        lines = min(buffer_lines, height)
        self._buf = bytearray(width * lines * 2)
        self.disp.set_buffers(self._buf, None, len(self._buf), lv.DISPLAY_RENDER_MODE.PARTIAL)
        self.disp.set_flush_cb(self._flush)
        self.disp.set_default()
        self.flushes = 0

    def _flush(self, disp, area, _px) -> None:
        w = area.x2 - area.x1 + 1
        row = w * 2
        for i, y in enumerate(range(area.y1, area.y2 + 1)):
            start = (y * self.width + area.x1) * 2
            self.fb[start:start + row] = self._buf[i * row:(i + 1) * row]
        self.flushes += 1
        disp.flush_ready()

    def blit(self, x: int, y: int, w: int, h: int, data) -> None:
        row = w * 2
        for i in range(h):
            start = ((y + i) * self.width + x) * 2
            self.fb[start:start + row] = data[i * row:(i + 1) * row]

    def png(self) -> bytes:
        return rgb565_to_png(self.fb, self.width, self.height)

    def save_png(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed into place: whoever watches for the
        # file (a test, an image viewer on the demo's shots) never reads a
        # half-written PNG.
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self.png())
        tmp.replace(path)

    def delete(self) -> None:
        # Let LVGL finish the screen deletions it was asked to do later
        # (lvui deletes old screens asynchronously) while they still exist.
        lv.timer_handler()
        self.disp.delete()


def film_raw(x: int, y: int) -> tuple[int, int]:
    """The simulated resistive film: raw readings for a touch at (x, y),
    axes swapped and one mirrored, as a CYD's XPT2046 reads them."""
    return 3900 - y * 15, 200 + x * 11


def film_calibration() -> touchcal.Calibration:
    """The calibration that maps film_raw exactly back (rounded) to pixels:
    an installed panel's."""
    return touchcal.Calibration(1 / 11, -200 / 11 + 0.5, -1 / 15, 260 + 0.5, swap=True)


class SimTouch:
    """A finger as an LVGL pointer input device: press(x, y) ... release().
    resistive (a board whose film is calibrated, the CYD): the pointer reads
    the film through `calibration`, None keeping it released, and
    read_raw() serves lbpanel.calibrate, as boards/cyd.py's driver does."""

    def __init__(self, display: SimDisplay, resistive: bool = False,
                 calibration: touchcal.Calibration | None = None):
        self.x = 0
        self.y = 0
        self.down = False
        self.resistive = resistive
        self.calibration = calibration
        self.indev = lv.indev_create()
        self.indev.set_type(lv.INDEV_TYPE.POINTER)
        self.indev.set_read_cb(self._read)
        self.indev.set_display(display.disp)
        self.width, self.height = display.width, display.height

    def read_raw(self) -> tuple[int, int] | None:
        return film_raw(self.x, self.y) if self.down else None

    def _read(self, _indev, data) -> None:
        if not self.resistive:
            data.point.x = self.x
            data.point.y = self.y
            data.state = lv.INDEV_STATE.PRESSED if self.down else lv.INDEV_STATE.RELEASED
            return
        raw = self.read_raw()
        if raw is None or self.calibration is None:
            data.state = lv.INDEV_STATE.RELEASED
            return
        data.point.x, data.point.y = self.calibration.apply(raw[0], raw[1], self.width,
                                                            self.height)
        data.state = lv.INDEV_STATE.PRESSED

    def press(self, x: int, y: int) -> None:
        self.x, self.y, self.down = x, y, True

    def release(self) -> None:
        self.down = False

    def delete(self) -> None:
        self.indev.delete()


def tap(ui, touch: SimTouch, x: int, y: int) -> None:
    """Press (x, y) through LVGL's pointer, long enough for LVGL to read
    it, and let go, stepping LVGL's clock (no real time passes)."""
    touch.press(x, y)
    for _ in range(6):
        ui.step(20)
    touch.release()
    for _ in range(6):
        ui.step(20)


def centre(obj) -> tuple[int, int]:
    # LVGL places objects lazily; a screen built a moment ago may not have
    # its coordinates yet.
    obj.update_layout()
    area = lv.area_t()
    obj.get_coords(area)
    return (area.x1 + area.x2) // 2, (area.y1 + area.y2) // 2


def read_font_file(directory: Path):
    def read(name: str) -> bytes:
        path = Path(directory) / name
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run tools/fonts")
        return path.read_bytes()
    return read


def make_ui(board_name: str, counters=None, fonts_dir: Path | None = None,
            lang: str = "en", resistive: bool = False) -> tuple[lvui.LvglUI, SimDisplay, SimTouch]:
    """resistive: touches go through the simulated film and the calibration
    stored in the working folder (touch_cal.json), as on a CYD."""
    board = boards.get(board_name)
    display = SimDisplay(board["width"], board["height"], board["display"]["buffer_lines"])
    touch = SimTouch(display, resistive, touchcal.load() if resistive else None)
    fonts = lvui.load_fonts(board, read_font_file(fonts_dir or font_files.fonts_dir()))
    ui = lvui.LvglUI(board, display, fonts, counters, lang)
    ui.board_name = board_name
    return ui, display, touch


class Finger:
    """Touches for the console's words, through the LVGL input device."""

    def __init__(self, ui: lvui.LvglUI, touch: SimTouch):
        self.ui = ui
        self.touch = touch

    async def touch_at(self, x: int, y: int, hold_ms: int = 100) -> None:
        # LVGL reads the input device every 33 ms: a press and the gap after
        # it must each last a few reads, or two taps merge into one drag.
        self.touch.press(x, y)
        await asyncio.sleep(max(hold_ms, 70) / 1000)
        self.touch.release()
        await asyncio.sleep(0.1)

    async def touch_target(self, key) -> bool:
        obj = self.ui.targets.get(key)
        if obj is None:
            logging.getLogger("sim").warning("nothing on the %s screen answers %r",
                                             self.ui.screen, key)
            return False
        x, y = centre(obj)
        await self.touch_at(x, y)
        return True


async def console(panel_of, finger: Finger, display: SimDisplay) -> None:
    """The console, from boot on: a first calibration is touched before
    the app exists. panel_of() is the app, or None before it starts."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue = asyncio.Queue()

    def reader() -> None:
        for raw in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, raw)
        loop.call_soon_threadsafe(lines.put_nowait, None)
    threading.Thread(target=reader, daemon=True).start()
    log = logging.getLogger("sim")
    while True:
        raw = await lines.get()
        if raw is None:
            return
        words = raw.strip().split(None, 1)
        if not words:
            continue
        cmd, arg = words[0], (words[1] if len(words) > 1 else "")
        app = panel_of()
        try:
            if await touchwords.play(finger, app, cmd, arg):
                pass
            elif cmd == "shot":
                display.save_png(Path(arg))
                print(json.dumps({"shot": arg}), flush=True)
            elif cmd == "quit":
                if app is not None:
                    await app.stop()
                asyncio.get_running_loop().stop()
                return
            else:
                log.warning("unknown command %r", cmd)
        except Exception:
            log.exception("console command %r failed", raw.strip())


async def _shots(display: SimDisplay, ui: lvui.LvglUI, directory: Path, name: str) -> None:
    """Save the current screen whenever it changes (tools/demo --shots)."""
    last = None
    while True:
        await asyncio.sleep(0.5)
        key = (ui.screen, json.dumps(ui.detail, sort_keys=True, default=str))
        if key != last and display.flushes:
            last = key
            display.save_png(directory / f"{name}.png")


async def main_async(args) -> None:
    board = boards.get(args.board)
    resistive = bool(board["touch"].get("calibrate"))
    if resistive and not args.uncalibrated and touchcal.load() is None:
        touchcal.save(film_calibration())  # an installed panel
    ui, display, touch = make_ui(args.board, fonts_dir=args.fonts, resistive=resistive)

    def announce(name, detail):
        line = {"ui": name}
        line.update(detail)
        print(json.dumps(line, default=str), flush=True)
    ui.on_screen = announce
    asyncio.create_task(lvui.run_lvgl(ui))
    finger = Finger(ui, touch)
    if args.shots:
        asyncio.create_task(_shots(display, ui, Path(args.shots), args.name or args.board))
    started = []

    async def adopt(app):  # app.start hands the console its app
        started.append(app)
    asyncio.create_task(console(lambda: started[0] if started else None, finger, display))
    # As main.py: the service screen's button, and the first crosses of a
    # film never calibrated before the app starts.
    first = calibrate.attach(ui, touch, give_up_s=args.give_up_s) if resistive else None
    if first is not None:
        await first
    await panel_app.start(args.config, ui, console=adopt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loyalty_button.sim.lvpanel")
    parser.add_argument("--board", default="cyd", choices=sorted(boards.BOARDS))
    parser.add_argument("--fonts", type=Path, default=None)
    parser.add_argument("--shots", type=Path, default=None,
                        help="save the screen to DIR/NAME.png whenever it changes")
    parser.add_argument("--name", default=None)
    parser.add_argument("--uncalibrated", action="store_true",
                        help="a panel out of the box: no calibration is stored for a resistive "
                             "film, so it boots into the calibration crosses (without it, the "
                             "film's exact calibration is stored first: an installed panel)")
    parser.add_argument("--give-up-s", type=int, default=60,
                        help="the calibration screen's give-up time")
    parser.add_argument("config")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(main_async(args))
    except RuntimeError as e:
        if "Event loop stopped" not in str(e):
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
