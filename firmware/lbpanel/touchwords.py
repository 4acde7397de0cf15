# The console's words (console.py) as touches on the glass, for the LVGL
# simulator (sim/lvpanel.py, under CPython with pydevices-lvgl). A
# module of its own: a panel never imports it, so it costs a panel no heap.
from lbpanel.console import parse_value


async def play(finger, panel, cmd, arg):
    """Play a console word as touches on the glass: `finger` has
    touch_at(x, y, hold_ms) and touch_target(key). Returns False for a word
    it does not know."""
    if cmd == "tap":
        await finger.touch_target(parse_value(arg))
    elif cmd == "reasons":
        for rid in [r for r in arg.replace(" ", "").split(",") if r]:
            await finger.touch_target("reason:" + rid)
        await finger.touch_target("done")
    elif cmd == "decline":
        await finger.touch_target("decline")
    elif cmd == "touch":
        p = arg.split()
        await finger.touch_at(int(p[0]), int(p[1]), int(p[2]) if len(p) > 2 else 100)
    elif cmd == "status":
        finger.ui.show_status(panel.service_info())
    else:
        return False
    return True
