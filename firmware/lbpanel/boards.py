# The boards the panel runs on, as data: the one source of truth for pin
# maps, resolution, fonts and memory. The thin setup modules in
# firmware/boards/ read their pins from here, the UI reads sizes and fonts,
# the host's font and image tools read fonts and image sizes, and
# hardware/README.md documents the same table.
#
# Pins follow the boards' published pin maps (Sunton's schematics, as
# collected in the PlatformIO board definitions esp32-2432S028R.json and
# esp32-8048S043C.json).

# Glyphs every text font carries: ASCII, Latin-1 (most Western European
# languages), Cyrillic (Russian, Ukrainian, Belarusian, Kazakh letters in
# U+0400-045F and Ґґ), and the punctuation receipts and questions use:
# dashes, typographic quotes and apostrophes (‘ ’ “ ” „, as word processors
# write them), the ellipsis, € ₽ №.
TEXT_RANGES = ((0x20, 0x7E), (0xA0, 0xFF), (0x400, 0x45F), (0x490, 0x491),
               (0x2013, 0x2014), (0x2018, 0x201E), (0x2026, 0x2026), (0x20AC, 0x20AC),
               (0x20BD, 0x20BD), (0x2116, 0x2116))
# The big font only draws the NPS digits and the countdown.
DIGIT_RANGES = ((0x20, 0x20), (0x2B, 0x2B), (0x2D, 0x2D), (0x30, 0x39))

BOARDS = {
    "cyd": {
        "title": "ESP32-2432S028R (Cheap Yellow Display)",
        "mcu": "esp32",
        "psram": False,
        "flash_mb": 4,
        # Landscape: the ILI9341 is 240x320 natively, turned by
        # display.rotation (the setup module works the native size out).
        "width": 320,
        "height": 240,
        # 2.8" diagonal: 143 pixels per inch, for touch targets in mm.
        "dpi": 143,
        "display": {
            "driver": "ili9341", "bus": "spi", "spi_host": 1,  # HSPI (SPI2)
            "mosi": 13, "miso": 12, "sck": 14, "cs": 15, "dc": 2, "reset": None,
            # 24 MHz, as lvgl_micropython's own CYD setup runs it: the
            # ILI9341 is specified for far less (a 100 ns write cycle), and
            # the 40 MHz some Arduino set-ups use fails on part of these
            # boards. A full 320x240 frame still takes 51 ms at 24 MHz.
            "backlight": 21, "freq": 24000000,
            "bgr": True, "rgb565_swap": True, "rotation": 90,
            # LVGL draws into a partial buffer of this many lines (RGB565):
            # 320 x 10 x 2 = 6.4 KB of DMA RAM, taken from the same internal
            # RAM the MicroPython heap grows into. 20 lines cost the panel
            # 4 KiB more of its smallest heap (docs/memory.md); a screen is
            # then drawn in 24 strips instead of 12.
            "buffer_lines": 10,
        },
        "touch": {
            "driver": "xpt2046", "bus": "spi", "spi_host": 2,  # VSPI (SPI3)
            "mosi": 32, "miso": 39, "sck": 25, "cs": 33, "irq": 36,
            "freq": 2000000,
            # Resistive: raw readings need a calibration, stored on flash.
            "calibrate": True,
        },
        "extras": {"rgb_led": (4, 16, 17), "led_active_low": True, "ldr": 34,
                   "speaker": 26, "sd": {"cs": 5, "mosi": 23, "sck": 18, "miso": 19}},
        # Font pixel sizes by role; "big" is digits only. Read at arm's
        # length (see LEGIBLE_ARCMIN): small 18 px is 16 arcmin at 50 cm, body
        # 23 px 20.
        "fonts": {"small": 18, "body": 23, "big": 28},
        # Full-screen RGB565 is 150 KB, more than the heap: adverts are
        # streamed from flash to the display in bands (see adverts docs).
        "advert_band_lines": 8,
        # Flash the advert cache may use (the 4 MB flash holds firmware and
        # a ~1.5 MB file system).
        "advert_budget_kb": 900,
        "heap_kb": 110,
        # The whole panel run from an update slot's .mpy files instead of
        # the image's frozen modules: more than the heap, so this board
        # takes updates as a new image over USB. Measured 2026-12-02 on a
        # 32-bit lvgl_micropython unix build no longer run here
        # (docs/memory.md): not re-measured since.
        "slot_heap_kb": 140,
    },
    "s3_8048": {
        "title": "ESP32-8048S043C (ESP32-S3, 4.3\" 800x480 RGB, GT911)",
        "mcu": "esp32s3",
        "psram": True,
        "flash_mb": 16,
        "width": 800,
        "height": 480,
        # 4.3" diagonal: 217 pixels per inch.
        "dpi": 217,
        "display": {
            "driver": "rgb", "controller": "st7262", "bus": "rgb",
            "hsync": 39, "vsync": 41, "de": 40, "pclk": 42,
            # 16 data lines, RGB565: B0-B4, G0-G5, R0-R4 (esp_lcd's order:
            # data0 is the lowest blue bit).
            "data": (8, 3, 46, 9, 1, 5, 6, 7, 15, 16, 4, 45, 48, 47, 21, 14),
            "freq": 12500000,
            "hsync_pulse": 4, "hsync_back": 8, "hsync_front": 8,
            "vsync_pulse": 4, "vsync_back": 8, "vsync_front": 8,
            "pclk_active_neg": True,
            "backlight": 2, "rgb565_swap": False, "rotation": 0,
            "buffer_lines": 480,  # full frame, in PSRAM
        },
        "touch": {
            "driver": "gt911", "bus": "i2c", "i2c_host": 0,
            "sda": 19, "scl": 20, "irq": 18, "reset": 38, "addr": 0x5D,
            "freq": 400000, "calibrate": False,
        },
        "extras": {"sd": {"cs": 10, "mosi": 11, "sck": 12, "miso": 13}},
        "fonts": {"small": 28, "body": 34, "big": 44},
        "advert_band_lines": 16,
        "advert_budget_kb": 8192,
        "heap_kb": 8192,
    },
}


def get(name):
    board = BOARDS.get(name)
    if board is None:
        raise ValueError("unknown board %r; known: %s" % (name, ", ".join(sorted(BOARDS))))
    return board


# Type a shopper reads at arm's length: ISO 9241-303 asks capital letters
# of at least 16 minutes of arc at the viewing distance (20 preferred). At
# 50 cm that is 2.33 mm; DejaVu Sans's capitals are 0.73 of its pixel size,
# so the smallest text is 18 px on the CYD (143 dpi) and 28 px on the S3
# (217 dpi). tests/test_screens.py holds every board's fonts to it.
VIEWING_MM = 500
LEGIBLE_ARCMIN = {"small": 16, "body": 20}
CAP_HEIGHT = 0.73


def cap_height_arcmin(size_px, dpi, distance_mm=VIEWING_MM):
    """How large a font's capitals look, in minutes of arc."""
    import math
    cap_mm = size_px * CAP_HEIGHT * 25.4 / dpi
    return math.degrees(2 * math.atan(cap_mm / 2 / distance_mm)) * 60


# The touch calibration's check cross may be off by this share of the
# screen's short side (lbpanel.calibrate): the error a calibrated resistive
# film may keep, 9 px (1.6 mm) on the CYD, which the answer buttons' gaps
# must absorb (lvshopper's NPS scale).
CALIBRATION_TOLERANCE = 0.04


def touch_error_px(board):
    """The touch error the board may keep after calibration: the
    calibration check's tolerance on a resistive film, none on glass that
    needs no calibration."""
    if not board["touch"].get("calibrate"):
        return 0
    return calibration_tolerance(board["width"], board["height"])


def calibration_tolerance(width, height):
    return max(4, int(min(width, height) * CALIBRATION_TOLERANCE))


def native_size(board):
    """The display controller's own width x height: the board's size before
    its rotation (a quarter turn swaps them)."""
    w, h = board["width"], board["height"]
    return (h, w) if board["display"]["rotation"] in (90, 270) else (w, h)


def font_file(role, size):
    """The font file for a role at a size, as tools/fonts names it."""
    return "dejavu-%s-%d.bin" % ("digits" if role == "big" else "text", size)


def font_symbol(role, size):
    """The name the same font has in lvgl's module when it is compiled into
    the firmware image as C (in flash, no heap): lv.<font_symbol>."""
    return "font_lb_%s_%d" % ("digits" if role == "big" else "text", size)


def font_ranges(role):
    return DIGIT_RANGES if role == "big" else TEXT_RANGES


def covers(ranges, text):
    """The characters of `text` the ranges do not cover (in order, once)."""
    missing = []
    for ch in text:
        code = ord(ch)
        if ch in "\n\r\t":
            continue
        found = False
        for lo, hi in ranges:
            if lo <= code <= hi:
                found = True
                break
        if not found and ch not in missing:
            missing.append(ch)
    return missing
