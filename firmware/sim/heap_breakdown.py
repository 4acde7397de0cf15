# Where the LVGL panel's heap goes, step by step, under lvgl_micropython's
# unix port (run by tools/bench heap, host/loyalty_button/bench/heap.py):
#   MICROPYPATH=.frozen:firmware/unix_port_stubs lvgl_micropython \
#       firmware/sim/heap_breakdown.py BOARD FONTS_DIR GLASS_FILE
# Prints one "name bytes" line per step: the bytes that step leaves in the
# heap after gc.collect(). The screens are built one after another, each
# measured while it is shown (the one before it deleted).
import gc
import sys

import lvgl as lv

_last = [0]


def step(name):
    gc.collect()
    now = gc.mem_alloc()
    print(name, now - _last[0])
    _last[0] = now


def settle():
    # The screen left behind is deleted on LVGL's next cycle.
    for _ in range(3):
        lv.tick_inc(10)
        lv.timer_handler()


def main():
    board_name, fonts_dir, glass_file = sys.argv[1:4]
    gc.collect()
    _last[0] = gc.mem_alloc()
    import asyncio  # noqa: F401 (what every panel runs on)
    step("asyncio")
    lv.init()
    step("lvgl_init")
    from lbpanel import app, boards, lvui  # noqa: F401 (frozen code: its objects only)
    import lvgl_panel
    step("code")
    board = boards.get(board_name)
    glass = lvgl_panel.Glass(board, glass_file)
    step("draw_buffer")

    def read_font(name):
        with open(fonts_dir + "/" + name, "rb") as f:
            return f.read()
    fonts = lvui.load_fonts(board, read_font)
    step("fonts")
    ui = lvui.LvglUI(board, glass, fonts)
    step("ui_and_advert_band")
    ui.show_advert(None)
    settle()
    step("screen_adverts")
    q = {"session": "s", "qid": "nps-main", "kind": "nps", "lang": "en",
         "text": "How likely are you to recommend us to a friend?",
         "labels": {"low": "Not likely", "high": "Very likely"}}
    ui.show_question(q, 20000)
    settle()
    step("screen_nps")
    q["why"] = {"text": "What mattered most?",
                "reasons": [{"id": r, "text": r} for r in ("Queue", "Staff", "Prices", "Choice")]}
    ui.show_why(q, 20000)
    settle()
    step("screen_why")
    ui.show_thanks({"session": "s", "outcome": "answered", "value": 9},
                   {"url": "https://example.com/review/store-42?p=1"})
    settle()
    step("screen_thanks_qr")
    ui.show_status({"panel": "p1", "store": "s", "board": board_name, "ip": "10.0.0.9",
                    "broker": "up", "rssi": -60, "fw": "0.1.0", "outbox": 0,
                    "adverts": "1 of 1 ready, 0 bad"})
    settle()
    step("screen_status")
    ui.show_advert(None)
    settle()
    step("screen_adverts_again")
    print("total", gc.mem_alloc())


main()
