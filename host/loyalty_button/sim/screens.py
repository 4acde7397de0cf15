"""Every screen of every board, rendered by the real UI module under
pydevices-lvgl to `<board>-<screen>.png`, with Cyrillic and Latin text:
for people to look at, for review of changes (tests compare them with the
reviewed images in tests/reference/screens/), and for the docs' figures
(render time and LVGL objects per screen).

    tools/screens OUTDIR [--board cyd] [--measure]"""

from __future__ import annotations

import ctypes
import json
import statistics
import tempfile
import time
from pathlib import Path

import lvgl as lv

from lbpanel import boards, lvui, telemetry

from ..adverts import image as advert_image
from . import lvpanel


def _q(kind: str, lang: str, text: str, **extra) -> dict:
    q = {"session": "r-1042", "qid": kind + "-main", "kind": kind, "lang": lang,
         "text": text, "timeout_s": 30}
    q.update(extra)
    return q


NPS_RU = _q("nps", "ru", "Порекомендуете ли вы наш магазин другу?",
            labels={"low": "Точно нет", "high": "Обязательно"},
            why={"text": "Что повлияло на вашу оценку?",
                 "reasons": [{"id": "queue", "text": "Очередь"},
                             {"id": "staff", "text": "Кассир"},
                             {"id": "price", "text": "Цены"},
                             {"id": "choice", "text": "Ассортимент"},
                             {"id": "clean", "text": "Чистота"}]})
CSAT_EN = _q("csat", "en", "How was your checkout today?",
             labels={"low": "Very bad", "high": "Excellent"})
YESNO_RU = _q("yesno", "ru", "Вы нашли всё, что искали?")
CHOICE_EN = _q("choice", "en", "What brought you in today?",
               options=[{"id": "weekly", "text": "Weekly shop"},
                        {"id": "lunch", "text": "Lunch"},
                        {"id": "offer", "text": "An offer"},
                        {"id": "bakery", "text": "Bakery"},
                        {"id": "pharmacy", "text": "Pharmacy"},
                        {"id": "other", "text": "Other"}])
# At the protocol's 200-character limit: too long for the CYD's question area.
LONG_TEXT = _q("yesno", "ru", "Скажите, пожалуйста, " * 8 + "довольны ли вы нашим магазином?")
MISSING_GLYPH = _q("yesno", "en", "Did you like our 寿司 bar? 🍣")
THANKS_ANSWER = {"session": "r-1042", "outcome": "answered", "kind": "nps", "value": 9}
QR = {"url": "https://example.com/r/store-12?s=r-1042", "text": "Оставьте отзыв о магазине",
      "to": "all"}
SERVICE = {"panel": "till-3", "store": "store-12", "board": "cyd", "ip": "192.168.10.43",
           "broker": "up", "rssi": -61, "fw": "0.1.0", "outbox": 0,
           "adverts": "3 of 3 ready, 0 bad"}


def _settle(ui: lvui.LvglUI, display: lvpanel.SimDisplay) -> None:
    """Run LVGL until the screen is drawn (its refresh timer runs every
    33 ms), then let the UI stream a pending advert."""
    for _ in range(5):
        ui.step(10)
    lv.refr_now(display.disp)
    ui.after_render()


def calibrates(board_name: str) -> bool:
    """A resistive film: the board has a calibration screen, and its
    service screen offers it."""
    return bool(boards.get(board_name)["touch"].get("calibrate"))


def scenes(advert: dict | None, board_name: str) -> list[tuple[str, str, list]]:
    """(screen name, UI method, its arguments) for every screen of the
    board, as plain data."""
    extra = []
    if calibrates(board_name):
        extra = [("calibrate", "show_calibration", [[32, 28], 1, 5]),
                 ("calibrate-retry", "show_calibration",
                  [[160, 120], 5, 5, "the middle cross was 14 px off: once more"])]
    return extra + [
        ("adverts", "show_advert", [advert, True]),
        ("adverts-empty", "show_advert", [None, True]),
        ("nps", "show_question", [NPS_RU, 30000]),
        ("why", "show_why", [NPS_RU, 15000]),
        ("csat", "show_question", [CSAT_EN, 30000]),
        ("yesno", "show_question", [YESNO_RU, 30000]),
        ("choice", "show_question", [CHOICE_EN, 30000]),
        ("thanks", "show_thanks", [THANKS_ANSWER, None, "ru"]),
        ("thanks-qr", "show_thanks", [THANKS_ANSWER, QR, "ru"]),
        ("service", "show_status", [SERVICE]),
        ("problem-not-configured", "show_problem",
         ["not_configured", "panel.json: broker.host is missing"]),
        ("problem-no-network", "show_problem",
         ["no_network", "cannot join Wi-Fi 'store-12-pos'"]),
        ("problem-broker", "show_problem",
         ["broker_unreachable", "192.168.10.2:1883: connection refused"]),
        ("text-too-long", "show_question", [LONG_TEXT, 30000]),
        ("missing-glyph", "show_question", [MISSING_GLYPH, 30000]),
    ]


def scene_names(board_name: str) -> list[str]:
    return [name for name, _, _ in scenes(None, board_name)]


def heap_used() -> int:
    """Bytes in use on the C heap (glibc mallinfo2): LVGL's objects live
    there in pydevices-lvgl, which uses the C library's malloc."""
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                     "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def _redraw_ms(display: lvpanel.SimDisplay, repeats: int) -> float:
    """Median time of a full redraw of the active screen (every band
    rendered and flushed)."""
    times = []
    for _ in range(repeats):
        lv.screen_active().invalidate()
        t = time.perf_counter()
        lv.refr_now(display.disp)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _heap_per_screen(ui: lvui.LvglUI, show, copies: int = 20) -> int:
    """C heap one copy of a screen takes: build `copies` of it, keeping
    them all, and divide (one build alone is lost in allocator noise).
    On the 64-bit host; the ESP32's 32-bit pointers make LVGL's objects
    smaller there, so this is an upper bound."""
    ui.keep_screens = []
    before = heap_used()
    for _ in range(copies):
        show()
    used = (heap_used() - before) // copies
    kept, ui.keep_screens = ui.keep_screens, None
    for scr in kept:
        scr.delete()
    return used


def _sample_advert(board: dict, folder: Path) -> dict:
    """The advert scene's item: a sample picture in the panel's file format."""
    path = folder / "advert.bin"
    path.write_bytes(advert_image.encode(advert_image.sample(board["width"], board["height"])))
    return {"id": "spring-sale", "path": str(path), "w": board["width"],
            "h": board["height"], "offset": 12}


def render_board(board_name: str, out_dir: Path, measure: bool = False,
                 repeats: int = 20) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    counters = telemetry.Counters()
    ui, display, touch = lvpanel.make_ui(board_name, counters)
    board = boards.get(board_name)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        advert = _sample_advert(board, Path(tmp))
        baseline = None
        if measure:
            # Baseline in the same run: a full redraw of an empty screen.
            ui._new_screen("blank", {})
            _settle(ui, display)
            baseline = _redraw_ms(display, repeats)
        if calibrates(board_name):
            ui.on_calibrate = lambda: None
        for name, method, args in scenes(advert, board_name):
            def show(method=method, args=args):
                getattr(ui, method)(*args)
            row = {"board": board_name, "screen": name}
            if measure:
                row["heap_bytes"] = _heap_per_screen(ui, show)
            show()
            _settle(ui, display)
            row["objects"] = lvui.count_objects(lv.screen_active())
            display.save_png(out_dir / f"{board_name}-{name}.png")
            if measure:
                if name == "adverts":
                    # The advert is not LVGL's to draw: time the stream
                    # from the file to the display, band by band.
                    times = []
                    for _ in range(repeats):
                        t = time.perf_counter()
                        ui._stream_advert(advert)
                        times.append((time.perf_counter() - t) * 1000)
                    ms = statistics.median(times)
                else:
                    ms = _redraw_ms(display, repeats)
                row["render_ms"] = round(ms, 3)
                row["vs_blank"] = round(ms / baseline, 2)
            results.append(row)
    ui.show_advert(None, leave=True)
    _settle(ui, display)
    touch.delete()
    display.delete()
    return results


def render_all(out_dir: Path, board_names: list[str] | None = None,
               measure: bool = False) -> list[dict]:
    rows = []
    for name in board_names or sorted(boards.BOARDS):
        rows += render_board(name, Path(out_dir), measure)
    return rows


def main(args) -> int:
    rows = render_all(Path(args.out_dir), [args.board] if args.board else None, args.measure)
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    return 0
