# Boot on the ESP32: config -> board (display, touch) -> UI -> network -> app.
# panel.json names the board ("cyd", "s3_8048"); without one (or without
# the LVGL firmware) the headless UI reports screens on the console.
import sys

# The project's image freezes lbpanel and boards (bytecode in flash). The
# app bundle's .mpy files on the file system would shadow them and load
# their bytecode into the heap, which a CYD cannot spare: frozen modules
# come first, and the files serve stock images, which freeze nothing.
if ".frozen" in sys.path:
    sys.path.remove(".frozen")
    sys.path.insert(0, ".frozen")

import asyncio  # noqa: E402 (after the path is set)

import machine
import network

from lbpanel import app, config, console, log

CONFIG = "panel.json"


def board_name(loaded):
    """The board panel.json names; a file with mistakes may still name it,
    so its problem screen shows on the display."""
    if isinstance(loaded, config.ConfigError):
        return loaded.board or "none"
    return loaded[0]["board"]


def make_ui(name):
    """(ui, LVGL loop coroutine or None, touch-calibration coroutine or None)."""
    if name == "none":
        from lbpanel.ui import HeadlessUI
        return HeadlessUI(), None, None
    try:
        board_module = __import__("boards." + name, None, None, ["Display"])
        from lbpanel import lvui
    except ImportError as e:
        log.error("boot", "board %r needs the LVGL firmware: %s" % (name, e))
        from lbpanel.ui import HeadlessUI
        return HeadlessUI(), None, None
    import lvgl as lv
    lv.init()
    display = board_module.Display()
    touch = board_module.touch(display)

    def read_font(file_name):
        with open("fonts/" + file_name, "rb") as f:
            return f.read()
    fonts = lvui.load_fonts(board_module.BOARD, read_font)
    ui = lvui.LvglUI(board_module.BOARD, display, fonts)
    ui.board_name = name
    first = None
    if board_module.BOARD["touch"].get("calibrate"):
        from lbpanel import calibrate
        first = calibrate.attach(ui, touch)
    return ui, lvui.run_lvgl(ui), first


async def main():
    try:  # read once: the board first, then the app
        loaded = config.load(CONFIG)
    except config.ConfigError as e:
        loaded = e
    ui, lvgl_loop, first_calibration = make_ui(board_name(loaded))
    if lvgl_loop is not None:
        asyncio.create_task(lvgl_loop)
    if first_calibration is not None:
        # A new CYD cannot be touched sensibly until its film is learnt:
        # the installer does that before anything else.
        await first_calibration
    await app.start(CONFIG, ui, network=network, reset=machine.reset,
                    wdt=machine.WDT(timeout=10000), console=console.run, loaded=loaded)


asyncio.run(main())
