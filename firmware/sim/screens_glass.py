# Every screen of a board drawn under lvgl_micropython's unix port, the
# firmware frozen in: what the panel's glass shows, to compare with the
# CPython renders (host/loyalty_button/sim/screens.py writes SCENES_JSON
# from its scenes() and turns the output into PNGs).
#   MICROPYPATH=.frozen:firmware/unix_port_stubs lvgl_micropython \
#       firmware/sim/screens_glass.py BOARD FONTS_DIR SCENES_JSON OUT_DIR
# SCENES_JSON: [[name, UI method, [arguments]], ...]. Writes
# OUT_DIR/BOARD-name.rgb565 (little-endian, row by row) per scene.
import json
import sys

import lvgl as lv

from lbpanel import boards, lvui
import lvgl_panel


def settle(ui, glass):
    """As the CPython renderer: LVGL's timers run until the screen is
    drawn, then a pending advert goes to the glass."""
    for _ in range(5):
        ui.step(10)
    lv.refr_now(glass.disp)
    ui.after_render()


def copy_glass(glass, path):
    glass.f.flush()
    glass.f.seek(0)
    row = glass.width * 2
    with open(path, "wb") as out:
        for _ in range(glass.height):
            out.write(glass.f.read(row))


def main():
    board_name, fonts_dir, scenes_file, out_dir = sys.argv[1:5]
    board = boards.get(board_name)
    with open(scenes_file) as f:
        scenes = json.load(f)
    lv.init()
    glass = lvgl_panel.Glass(board, out_dir + "/.glass-" + board_name)

    def read_font(name):
        with open(fonts_dir + "/" + name, "rb") as f:
            return f.read()
    ui = lvui.LvglUI(board, glass, lvui.load_fonts(board, read_font))
    ui.board_name = board_name
    if board["touch"].get("calibrate"):
        ui.on_calibrate = lambda: None  # the service screen offers calibration
    for name, method, args in scenes:
        getattr(ui, method)(*args)
        settle(ui, glass)
        copy_glass(glass, "%s/%s-%s.rgb565" % (out_dir, board_name, name))
        print(name)


main()
