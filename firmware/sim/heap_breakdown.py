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


def shown(name, base):
    """A screen's bytes while it is shown (the one before it deleted)."""
    settle()
    gc.collect()
    print(name, gc.mem_alloc() - base)


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
    print("draw_buffer", len(glass._buf))
    _last[0] += len(glass._buf)
    step("display")

    def read_font(name):
        with open(fonts_dir + "/" + name, "rb") as f:
            return f.read()
    fonts = lvui.load_fonts(board, read_font)
    step("fonts")
    ui = lvui.LvglUI(board, glass, fonts)
    print("advert_band", len(ui._band))
    _last[0] += len(ui._band)
    step("ui")
    gc.collect()
    base = gc.mem_alloc()
    ui.show_advert(None)
    shown("screen_adverts", base)
    q = {"session": "s", "qid": "nps-main", "kind": "nps", "lang": "en",
         "text": "How likely are you to recommend us to a friend?",
         "labels": {"low": "Not likely", "high": "Very likely"}}
    ui.show_question(q, 20000)
    shown("screen_nps", base)
    q["why"] = {"text": "What mattered most?",
                "reasons": [{"id": r, "text": r} for r in ("Queue", "Staff", "Prices", "Choice")]}
    ui.show_why(q, 20000)
    shown("screen_why", base)
    ui.show_thanks({"session": "s", "outcome": "answered", "value": 9},
                   {"url": "https://example.com/review/store-42?p=1"})
    shown("screen_thanks_qr", base)
    ui.show_status({"panel": "p1", "store": "s", "board": board_name, "ip": "10.0.0.9",
                    "broker": "up", "rssi": -60, "fw": "0.1.0", "outbox": 0,
                    "adverts": "1 of 1 ready, 0 bad"})
    shown("screen_status", base)
    ui.show_advert(None, leave=True)  # the installer leaves the service screen
    shown("screen_adverts_again", base)
    # What the same fonts cost parsed from .bin files into the heap, as on
    # an image without them compiled in (the font lever's "before").
    gc.collect()
    before = gc.mem_alloc()
    kept = []
    for role, size in board["fonts"].items():
        data = read_font(boards.font_file(role, size))
        kept.append(lv.binfont_create_from_buffer(data, len(data)))
        data = None
    gc.collect()
    print("fonts_from_bin_files", gc.mem_alloc() - before)


main()
