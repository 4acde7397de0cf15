# What every LVGL screen of the panel is built from: the palette, the fonts,
# a screen's life (made, shown, deleted), labels that fit, buttons, grids,
# the countdown, debounced taps, and the adverts streamed to the glass; the
# LVGL loop. The screens themselves are in lvshopper.py (what shoppers see)
# and lvinstaller.py (what installers see); lvui.py puts them together.
#
# Only widget calls that exist both in the ESP32 LVGL MicroPython firmware
# (lvgl_micropython) and in pydevices-lvgl on the host; the display and touch
# come from a board module, never from here. Layouts are computed from the
# display's width and height, so the same code serves 320x240 and 800x480.
import lvgl as lv

from lbpanel import boards, layout, log, protocol
from lbpanel.chrome import chrome
from lbpanel.clock import ticks_diff, ticks_ms

_TAG = "ui"

# The palette. Every text and control keeps at least 4.5:1 contrast (WCAG
# AA) against what it is drawn on; tests/test_screens.py computes it over
# every screen. A dark panel with light fills carrying dark text does that
# both ways: white on a mid-tone fill cannot reach 4.5:1 while the same
# fill stands out 4.5:1 from the navy background.
# NPS colours (detractor 0-6, passive 7-8, promoter 9-10) and the CSAT scale.
RED = 0xF2665F
AMBER = 0xF0A830
GREEN = 0x34B36A
_NPS_COLOURS = {"detractor": RED, "passive": AMBER, "promoter": GREEN}
CSAT_COLOURS = (0xF2665F, 0xEE7B30, 0xF0C330, 0x8CC152, 0x34B36A)
BG = 0x14213D
PANEL = 0x22335A
TEXT = 0xFFFFFF
MUTED = 0xB8C2D6
ACCENT = 0x5B9BFF
# Text on a coloured fill (answers, the chosen chip): the background's navy.
ON_FILL = BG
# The outline of a control whose fill is close to the background (PANEL):
# the fill alone is 1.3:1, which a TN panel at an angle loses entirely.
OUTLINE = MUTED

# Touches closer together than this on one button are one bouncy press.
DEBOUNCE_MS = 150
# Hold this long in the top-left corner for the service screen.
SERVICE_HOLD_MS = 3000
# The installer's screens (service, touch calibration) are not swept away
# by the next advert for this long; a question still takes over at once.
INSTALLER_SCREENS = ("status", "calibrate")
INSTALLER_HOLD_MS = 60000


def nps_colour(score):
    return _NPS_COLOURS[protocol.nps_class(score)]


class Fonts:
    """The board's fonts by role (small, body, big), each with the glyph
    ranges it carries, so text can be checked before it is drawn."""

    def __init__(self, by_role, ranges=None):
        self.by_role = by_role
        self.ranges = ranges or {}

    def get(self, role):
        return self.by_role[role]


def load_fonts(board, read_file):
    """The board's fonts: compiled into the firmware image where it has them
    (lv.font_lb_*: read from flash, no heap), else parsed from the .bin
    files read_file(name) -> bytes returns (from flash or build/fonts);
    LVGL copies a parsed font into the heap, so the bytes can go."""
    by_role = {}
    ranges = {}
    for role, size in board["fonts"].items():
        font = getattr(lv, boards.font_symbol(role, size), None)
        if font is None:
            data = read_file(boards.font_file(role, size))
            font = lv.binfont_create_from_buffer(data, len(data))
            data = None
            if font is None:
                raise ValueError("font %s is not an LVGL font file" % boards.font_file(role, size))
        by_role[role] = font
        ranges[role] = boards.font_ranges(role)
    return Fonts(by_role, ranges)


class ScreenKit:
    def __init__(self, board, display, fonts, counters=None, lang="en"):
        """board: an entry of boards.BOARDS; display: the board's display
        object (width, height, blit(x, y, w, h, buf)); fonts: Fonts."""
        self.board = board
        self.board_name = None
        self.display = display
        self.fonts = fonts
        self.counters = counters
        self.lang = lang
        self.w = display.width
        self.h = display.height
        self.app = None
        self.screen = None
        self.detail = {}
        self.remaining_ms = 0
        self.advert = None
        self._scr = None
        self._shown_at = 0
        self._bar = None
        self._secs = None
        self._last_secs = None
        self._timeout_ms = 0
        self._last_press = {}
        self._picked = []
        self._question = None  # the one on screen, for the thank-you's echo
        # (problem, detail) while the panel cannot work: for the service screen.
        self.problem = None
        self.targets = {}
        self.on_screen = None
        # Set by the boot code on boards with a resistive film: the service
        # screen then offers "Calibrate touch" (lbpanel.calibrate).
        self.on_calibrate = None
        # A list only while the host measures heap per screen.
        self.keep_screens = None
        self._advert_pending = None
        # The adverts' band buffer, made once at boot at the screen's width:
        # made later, in a heap LVGL and MQTT have cut up, a block this size
        # (5 KB on the CYD) is often not to be found.
        self._band = bytearray(self.w * 2 * board.get("advert_band_lines", 8))
        # What taps lead to, run by step() once LVGL's event is over (_soon).
        self._later = []
        self._in_event = 0
        # Sizes from the display (lbpanel.layout, shared with the host's
        # catalogue check).
        m = layout.Metrics(board, self.w, self.h)
        self.metrics = m
        self.pad, self.gap, self.target, self.slack = m.pad, m.gap, m.target, m.slack
        self.min_target = m.min_target

    # --- wiring -------------------------------------------------------------

    def bind(self, app):
        """The app whose touch(), reasons(), decline(), stray_press() and
        service_info() the screens call."""
        self.app = app
        if self.counters is None:
            self.counters = app.counters

    def _count(self, name):
        if self.counters is not None:
            self.counters.add(name)

    def _safe(self, fn):
        """An exception in a UI callback is logged and counted; the UI goes on."""
        def handler(e):
            self._in_event += 1
            try:
                fn(e)
            except Exception as exc:
                self._count("ui_error")
                log.exception(_TAG, "UI callback failed", exc)
            finally:
                self._in_event -= 1
        return handler

    def _soon(self, fn, *args):
        """Call fn(*args) from step(), once LVGL's event dispatch is over.
        What a tap leads to (an answer, the next screen) is then never built
        inside an event of the screen it replaces: that screen is deleted
        first, so two screens never share the heap (on the CYD the NPS
        screen alone holds ~15 KB)."""
        self._later.append((fn, args))

    def _run_later(self):
        while self._later:
            fn, args = self._later.pop(0)
            try:
                fn(*args)
            except Exception as exc:
                self._count("ui_error")
                log.exception(_TAG, "UI callback failed", exc)

    # --- building blocks ----------------------------------------------------

    def _new_screen(self, name, detail):
        scr = lv.obj(None)
        scr.set_style_bg_color(lv.color_hex(BG), 0)
        scr.set_style_bg_opa(255, 0)
        scr.remove_flag(lv.obj.FLAG.SCROLLABLE)
        if name not in ("problem", "status", "calibrate"):
            self.problem = None  # running again: the service screen's row goes
        old = self._scr
        self._scr = scr
        self._bar = None
        self._secs = None
        self._last_secs = None
        self.screen = name
        self.detail = detail
        self.targets = {}
        self._shown_at = ticks_ms()
        lv.screen_load(scr)
        if old is not None:
            if self.keep_screens is not None:
                self.keep_screens.append(old)  # measuring: keep it alive
            elif self._in_event:
                # Changed from inside one of its own event callbacks:
                # deleting it now would free the object LVGL is still
                # dispatching to. LVGL deletes it on its next cycle.
                old.delete_async()
            else:
                # Gone before the new screen is built on this empty one:
                # two screens never share the heap (see _soon).
                old.delete()
        if self.on_screen is not None:
            self.on_screen(name, detail)
        return scr

    def _clean_text(self, text, role):
        """Characters the font does not have become '?', logged once."""
        ranges = self.fonts.ranges.get(role)
        if not ranges:
            return text
        missing = boards.covers(ranges, text)
        if not missing:
            return text
        self._count("ui_missing_glyph")
        log.warning(_TAG, "font has no glyph for %s in %r; shown as '?'"
                    % (", ".join(["U+%04X" % ord(c) for c in missing]), text))
        out = []
        for ch in text:
            out.append("?" if ch in missing else ch)
        return "".join(out)

    def _label(self, parent, text, role="body", colour=TEXT, width=None, align=None):
        label = lv.label(parent)
        label.set_style_text_font(self.fonts.get(role), 0)
        label.set_style_text_color(lv.color_hex(colour), 0)
        if width is not None:
            label.set_width(width)
            label.set_long_mode(lv.label.LONG_MODE.WRAP)
        if align is not None:
            label.set_style_text_align(align, 0)
        label.set_text(self._clean_text(text, role))
        return label

    def _fit_text(self, parent, text, width, max_h, y, roles=("body", "small")):
        """A wrapped, centred label within width x max_h: the first font
        role it fits in, or the smallest one cut with '...' (logged)."""
        label = None
        for i, role in enumerate(roles):
            if label is not None:
                label.delete()
            label = self._label(parent, text, role, width=width,
                                align=lv.TEXT_ALIGN.CENTER)
            label.set_pos((self.w - width) // 2, y)
            label.update_layout()
            # A word wider than the line would be broken mid-word: a
            # smaller font first, when there is one.
            whole_words = i == len(roles) - 1 or \
                self._widest_word(parent, label.get_text(), role) <= width
            if label.get_height() <= max_h and whole_words:
                return label
        label.set_long_mode(lv.label.LONG_MODE.DOTS)
        label.set_height(max_h)
        self._count("ui_text_truncated")
        log.warning(_TAG, "text too long for the screen, cut: %r" % text)
        return label

    def _button(self, parent, x, y, w, h, colour, text=None, role="body", on_click=None,
                text_colour=None, key=None, lines=1):
        """A button filled with `colour`. Its text is dark on a coloured
        fill and light on PANEL, which also gets an outline (see the
        palette); the label inherits the colour from the button, so a
        state of the button (a chosen chip) can change both. lines: the
        text may wrap onto this many lines, else it is cut with '...'."""
        btn = lv.button(parent)
        if key is not None:
            # What a simulated finger (or a test) aims at for this answer.
            self.targets[key] = btn
        btn.set_pos(x, y)
        btn.set_size(w, h)
        btn.set_style_bg_color(lv.color_hex(colour), 0)
        btn.set_style_radius(max(4, min(w, h) // 6), 0)
        btn.set_style_shadow_width(0, 0)
        btn.set_style_pad_all(2, 0)
        if text_colour is None:
            text_colour = TEXT if colour == PANEL else ON_FILL
        btn.set_style_text_color(lv.color_hex(text_colour), 0)
        if colour == PANEL:
            btn.set_style_border_color(lv.color_hex(OUTLINE), 0)
            btn.set_style_border_width(2, 0)
        else:
            btn.set_style_border_width(0, 0)
        if text is not None:
            if role != "big":  # digits keep their natural width
                text = self._clean_text(text, role)
                role = self._role_that_fits(btn, text, role, w - 4, h - 4, lines)
            label = lv.label(btn)
            label.set_style_text_font(self.fonts.get(role), 0)
            if role != "big":
                label.set_long_mode(lv.label.LONG_MODE.WRAP if lines > 1
                                    else lv.label.LONG_MODE.DOTS)
                label.set_style_text_align(lv.TEXT_ALIGN.CENTER, 0)
                label.set_width(w - 4)
            label.set_text(text)
            if role != "big":
                # At most as many lines as asked for and the button holds;
                # LVGL cuts with '...' only at a fixed height.
                line_h = self.fonts.get(role).get_line_height()
                most = min(lines, max(1, (h - 4) // line_h)) * line_h
                label.update_layout()
                if label.get_height() > most:
                    label.set_height(most)
            label.center()
        if on_click is not None:
            btn.add_event_cb(self._safe(on_click), lv.EVENT.CLICKED, None)
        return btn

    def _text_size(self, parent, text, role, width=None):
        """(w, h) the text takes in the role's font, wrapped at `width`."""
        probe = lv.label(parent)
        probe.set_style_text_font(self.fonts.get(role), 0)
        if width is not None:
            probe.set_width(width)
            probe.set_long_mode(lv.label.LONG_MODE.WRAP)
        probe.set_text(text or " ")
        probe.update_layout()
        size = (probe.get_width(), probe.get_height())
        probe.delete()
        return size

    def _widest_word(self, parent, text, role):
        """Pixels the text's longest word takes in the role's font."""
        return self._text_size(parent, "\n".join(text.split()), role)[0]

    def _role_that_fits(self, parent, text, role, width, height, lines):
        """The role, or the smaller "small", in which the text fits the
        box in at most `lines` lines with no word broken: LVGL breaks a
        word wider than the line mid-word ("Ассортимен / т"), which a
        shopper reads as a mistake. The last one tried when none does."""
        for r in ((role, "small") if role != "small" else ("small",)):
            line_h = self.fonts.get(r).get_line_height()
            most = min(lines, max(1, height // line_h)) * line_h
            if self._widest_word(parent, text, r) <= width and \
                    self._text_size(parent, text, r, width)[1] <= most:
                return r
        return "small"

    def _centred_width(self, parent, text, role):
        """Width of a button under the answers: a third of the screen, or
        what its words need, at most the screen."""
        need = self._text_size(parent, text, role)[0] + 4 * self.pad
        return min(self.w - 2 * self.pad, max(self.w // 3, 120, need))

    def _grid(self, n, cols, top, bottom, max_h=None, gap=None):
        """Cells (x, y, w, h) for n answers in rows of `cols` (more columns
        when the rows would not keep 9 mm), self.slack apart unless told
        (chips, which show what a tap did, may stand closer), filling the
        band from top to bottom."""
        if gap is None:
            gap = self.slack
        fit = max(1, (bottom - top + gap) // (self.target + gap))
        cols = max(cols, (n + fit - 1) // fit)
        rows = (n + cols - 1) // cols
        cell_w = (self.w - 2 * self.pad - (cols - 1) * gap) // cols
        cell_h = (bottom - top - (rows - 1) * gap) // rows
        if max_h is not None:
            cell_h = min(cell_h, max_h)
        cells = []
        for i in range(n):
            r, c = i // cols, i % cols
            in_row = min(cols, n - r * cols)
            # A short last row is centred under the full ones.
            x0 = (self.w - (in_row * cell_w + (in_row - 1) * gap)) // 2
            cells.append((x0 + c * (cell_w + gap), top + r * (cell_h + gap),
                          cell_w, cell_h))
        return cells

    def _countdown(self, scr, timeout_ms):
        """A shrinking bar along the bottom edge and the seconds left."""
        self._timeout_ms = max(1, timeout_ms)
        bar_h = self.metrics.bar_h
        bar = lv.bar(scr)
        bar.set_size(self.w, bar_h)
        bar.set_pos(0, self.h - bar_h)
        bar.set_range(0, 1000)
        bar.set_style_radius(0, 0)
        bar.set_style_radius(0, lv.PART.INDICATOR)
        bar.set_style_bg_color(lv.color_hex(PANEL), 0)
        bar.set_style_bg_color(lv.color_hex(ACCENT), lv.PART.INDICATOR)
        bar.set_value(1000, 0)  # 0 = no animation (lv.ANIM.OFF on the ESP32 binding)
        self._bar = bar
        secs = self._label(scr, "", "small", MUTED)
        secs.align(lv.ALIGN.TOP_RIGHT, -self.pad, self.pad // 2)
        self._secs = secs
        self.countdown(timeout_ms)

    def countdown(self, remaining_ms):
        self.remaining_ms = remaining_ms
        if self._bar is None:
            return
        self._bar.set_value(remaining_ms * 1000 // self._timeout_ms, 0)
        secs = (remaining_ms + 999) // 1000
        if secs != self._last_secs:  # redraw the number once a second only
            self._last_secs = secs
            self._secs.set_text("%d" % secs)

    def _stray_presses(self, scr):
        # A press that lands on no answer (background, gaps) still counts
        # towards a burst of presses.
        def pressed(e):
            if e.get_target_obj() is scr and self.app is not None:
                self.app.stray_press()
        scr.add_event_cb(self._safe(pressed), lv.EVENT.PRESSED, None)

    def _debounced(self, key, fn):
        """Call fn for a click unless the same control clicked just now."""
        def click(e):
            now = ticks_ms()
            last = self._last_press.get(key)
            if last is not None and ticks_diff(now, last) < DEBOUNCE_MS:
                self._count("touch_bounce")
                return
            self._last_press[key] = now
            fn(e)
        return click

    def _tap(self, value):
        def click(e):
            if self.app is not None:
                self._soon(self.app.touch, value)
        return self._debounced(("tap", value), click)

    # --- adverts ------------------------------------------------------------

    def show_adverts(self, leave=False):
        """The idle screen: the playlist's current advert, or a welcome.
        leave: the installer is done with the service or calibration screen."""
        self.show_advert(self.advert, leave)

    def show_advert(self, item, leave=False):
        """item: None or {"id", "path", "w", "h", "offset"} of an image file
        already checked by the advert cache."""
        self.advert = item
        if not leave and self.screen in INSTALLER_SCREENS and \
                ticks_diff(ticks_ms(), self._shown_at) < INSTALLER_HOLD_MS:
            return  # shown when the installer leaves (or the hold runs out)
        scr = self._new_screen("adverts", {"advert": item["id"] if item else None})
        self._service_corner(scr)
        if item is None:
            label = self._label(scr, chrome(self.lang, "welcome"), "body", MUTED)
            label.center()
            return
        # The image is streamed from flash to the display after LVGL has
        # drawn this (empty) screen: it never sits in the heap whole. Draw
        # now, so no later refresh paints the empty screen over it.
        lv.refr_now(None)
        self._advert_pending = item

    def step(self, elapsed_ms):
        lv.tick_inc(elapsed_ms)
        lv.timer_handler()
        self._run_later()
        self.after_render()

    def after_render(self):
        """Called by the LVGL loop after each timer_handler(): puts a
        pending advert on the glass, band by band."""
        item = self._advert_pending
        if item is None:
            return
        self._advert_pending = None
        try:
            self._stream_advert(item)
        except (OSError, ValueError) as e:
            self._count("advert_unreadable")
            log.warning(_TAG, "advert %s not shown: %s" % (item["id"], e))
            if self.app is not None:
                self.app.advert_failed(item["id"], str(e))

    def _stream_advert(self, item):
        w, h = item["w"], item["h"]
        if w > self.w or h > self.h:
            raise ValueError("image %dx%d is larger than the screen" % (w, h))
        lines = len(self._band) // (w * 2)  # a narrower image: more lines a band
        x0 = (self.w - w) // 2
        y0 = (self.h - h) // 2
        view = memoryview(self._band)
        with open(item["path"], "rb") as f:
            f.seek(item["offset"])
            y = 0
            while y < h:
                n = min(lines, h - y)
                want = w * 2 * n
                got = f.readinto(view[:want])
                if got != want:
                    raise ValueError("file ends at line %d of %d" % (y + (got or 0) // (w * 2), h))
                self.display.blit(x0, y0 + y, w, n, view[:want])
                y += n


async def run_lvgl(ui, period_ms=10):
    """Drive LVGL from the panel's asyncio loop (time passed in through
    tick_inc; the ESP32 binding's own tick timer is not used). An exception
    in a step is logged and the loop goes on."""
    import asyncio
    last = ticks_ms()
    while True:
        now = ticks_ms()
        try:
            ui.step(max(1, ticks_diff(now, last)))
        except Exception as e:
            ui._count("ui_error")
            log.exception(_TAG, "LVGL step failed", e)
        last = now
        await asyncio.sleep(period_ms / 1000)


def count_objects(obj):
    """LVGL objects in a tree, the root included (for the docs' figures)."""
    n = 1
    for i in range(obj.get_child_count()):
        n += count_objects(obj.get_child(i))
    return n
