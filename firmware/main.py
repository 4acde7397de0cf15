# Boot on the ESP32: slot -> config -> board (display, touch) -> UI ->
# network -> app. lbboot picks the copy of the app to run (the one installed
# over USB, or an update slot; docs/ota.md); panel.json names the board
# ("cyd", "s3_8048"); without one (or without the LVGL firmware) the
# headless UI reports screens on the console.
import sys

import lbboot

SLOT, MODE = lbboot.select()
sys.path[:] = lbboot.import_path(SLOT, MODE == "safe")

import asyncio  # noqa: E402 (after the path is set)

import machine  # noqa: E402
import network  # noqa: E402

CONFIG = "panel.json"


def board_name(loaded, config):
    """The board panel.json names; a file with mistakes may still name it,
    so its problem screen shows on the display."""
    if isinstance(loaded, config.ConfigError):
        return loaded.board or "none"
    return loaded[0]["board"]


def make_ui(name, log):
    """(ui, LVGL loop coroutine or None, touch-calibration coroutine or None)."""
    if name == "none" or MODE == "safe":
        # Safe mode: the fewest moving parts, no display driver.
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
        with open((SLOT + "/" if SLOT else "") + "fonts/" + file_name, "rb") as f:
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
    from lbpanel import app, config, console, log
    try:  # read once: the board first, then the app
        loaded = config.load(CONFIG)
    except config.ConfigError as e:
        loaded = e
    ui, lvgl_loop, first_calibration = make_ui(board_name(loaded, config), log)
    if lvgl_loop is not None:
        asyncio.create_task(lvgl_loop)
    if first_calibration is not None:
        # A new CYD cannot be touched sensibly until its film is learnt:
        # the installer does that before anything else.
        await first_calibration
    await app.start(CONFIG, ui, network=network, reset=machine.reset,
                    wdt=machine.WDT(timeout=10000), console=console.run, loaded=loaded,
                    boot=(SLOT, MODE))


try:
    asyncio.run(main())
except Exception as e:  # not SystemExit (a reset) nor KeyboardInterrupt (the REPL)
    # An app that cannot start must not leave the panel at a REPL: note why
    # (a trial then goes back to the slot before it) and start again.
    sys.print_exception(e)
    lbboot.failed("%s: %s" % (type(e).__name__, e))
    machine.reset()
