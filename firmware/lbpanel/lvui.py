# The panel's screens in LVGL 9. Only widget calls that exist both in the
# ESP32 LVGL MicroPython firmware (lvgl_micropython) and in pydevices-lvgl on
# the host; the display and touch come from a board module, never from here.
# The same methods as the headless UI (ui.py): the question flow never knows
# which one it drives.
#
# Layouts are computed from the display's width and height, so the same code
# serves 320x240 and 800x480, landscape or portrait. Touch targets are at
# least MIN_TARGET_MM wide on the smallest board.
import lvgl as lv

from lbpanel import boards, log, protocol
from lbpanel.clock import ticks_diff, ticks_ms

_TAG = "ui"

# NPS colours (detractor 0-6, passive 7-8, promoter 9-10) and the CSAT scale.
RED = 0xD64541
AMBER = 0xF0A830
GREEN = 0x2E9E5B
_NPS_COLOURS = {"detractor": RED, "passive": AMBER, "promoter": GREEN}
CSAT_COLOURS = (0xD64541, 0xEE7B30, 0xF0C330, 0x8CC152, 0x2E9E5B)
BG = 0x14213D
PANEL = 0x22335A
TEXT = 0xFFFFFF
MUTED = 0xB8C2D6
ACCENT = 0x3D8BFD

# What the screens say around the question's own text, by language.
CHROME = {
    "en": {"no_thanks": "No, thanks", "done": "Done", "thanks": "Thank you!",
           "scan": "Scan to tell us more", "review": "Scan to leave a review",
           "yes": "Yes", "no": "No", "welcome": "Welcome!",
           "not_configured": "Not configured", "no_network": "No network",
           "broker_unreachable": "Cannot reach the store server",
           "service": "Service", "hint": "Installer: hold the top-left corner",
           "calibrate": "Touch the centre of the cross", "recalibrate": "Calibrate touch"},
    "ru": {"no_thanks": "Нет, спасибо", "done": "Готово", "thanks": "Спасибо!",
           "scan": "Отсканируйте, чтобы рассказать подробнее",
           "review": "Отсканируйте, чтобы оставить отзыв",
           "yes": "Да", "no": "Нет", "welcome": "Добро пожаловать!",
           "not_configured": "Панель не настроена", "no_network": "Нет сети",
           "broker_unreachable": "Нет связи с сервером магазина",
           "service": "Сервис", "hint": "Установщику: удерживайте левый верхний угол",
           "calibrate": "Коснитесь центра крестика", "recalibrate": "Калибровка"},
}

# Touches closer together than this on one button are one bouncy press.
DEBOUNCE_MS = 150
# Hold this long in the top-left corner for the service screen.
SERVICE_HOLD_MS = 3000
# The installer's screens (service, touch calibration) are not swept away
# by the next advert for this long; a question still takes over at once.
INSTALLER_SCREENS = ("status", "calibrate")
INSTALLER_HOLD_MS = 60000


def chrome(lang, key):
    table = CHROME.get(lang) or CHROME["en"]
    return table.get(key) or CHROME["en"][key]


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
    """read_file(name) -> bytes of a font file (from flash or build/fonts).
    LVGL parses the file into its own structures, so the bytes can go."""
    by_role = {}
    ranges = {}
    for role, size in board["fonts"].items():
        data = read_file(boards.font_file(role, size))
        font = lv.binfont_create_from_buffer(data, len(data))
        if font is None:
            raise ValueError("font %s is not an LVGL font file" % boards.font_file(role, size))
        by_role[role] = font
        ranges[role] = boards.font_ranges(role)
    return Fonts(by_role, ranges)


class LvglUI:
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
        self.targets = {}
        self.on_screen = None
        # Set by the boot code on boards with a resistive film: the service
        # screen then offers "Calibrate touch" (lbpanel.calibrate).
        self.on_calibrate = None
        # A list only while the host measures heap per screen.
        self.keep_screens = None
        self._advert_pending = None
        self._band = None
        # Sizes from the display: a hurried thumb wants about 9 mm (Android's
        # 48 dp); 7 mm is the least any button gets. On the 2.8" CYD (143
        # dpi) that is 51 and 39 px, on the 4.3" S3 panel (217 dpi) 77 and 60.
        short = min(self.w, self.h)
        dpi = board.get("dpi", 143)
        self.pad = max(4, short // 40)
        self.gap = max(4, short // 48)
        self.target = max(44, dpi * 9 * 10 // 254)
        self.min_target = max(36, dpi * 7 * 10 // 254)

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
            try:
                fn(e)
            except Exception as exc:
                self._count("ui_error")
                log.exception(_TAG, "UI callback failed", exc)
        return handler

    # --- building blocks ----------------------------------------------------

    def _new_screen(self, name, detail):
        scr = lv.obj(None)
        scr.set_style_bg_color(lv.color_hex(BG), 0)
        scr.set_style_bg_opa(255, 0)
        scr.remove_flag(lv.obj.FLAG.SCROLLABLE)
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
            else:
                # Screens change from inside their own event callbacks (a
                # tap that answers, a hold that opens the service screen):
                # deleting the old one there would free the object LVGL is
                # still dispatching to. LVGL deletes it on its next cycle.
                old.delete_async()
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
        for role in roles:
            if label is not None:
                label.delete()
            label = self._label(parent, text, role, width=width,
                                align=lv.TEXT_ALIGN.CENTER)
            label.set_pos((self.w - width) // 2, y)
            label.update_layout()
            if label.get_height() <= max_h:
                return label
        label.set_long_mode(lv.label.LONG_MODE.DOTS)
        label.set_height(max_h)
        self._count("ui_text_truncated")
        log.warning(_TAG, "text too long for the screen, cut: %r" % text)
        return label

    def _button(self, parent, x, y, w, h, colour, text=None, role="body", on_click=None,
                text_colour=TEXT, key=None):
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
        if text is not None:
            label = lv.label(btn)
            label.set_style_text_font(self.fonts.get(role), 0)
            label.set_style_text_color(lv.color_hex(text_colour), 0)
            if role != "big":  # digits keep their natural width
                label.set_long_mode(lv.label.LONG_MODE.DOTS)
                label.set_style_text_align(lv.TEXT_ALIGN.CENTER, 0)
                label.set_width(w - 8)
            label.set_text(self._clean_text(text, role))
            label.center()
        if on_click is not None:
            btn.add_event_cb(self._safe(on_click), lv.EVENT.CLICKED, None)
        return btn

    def _grid(self, n, cols, top, bottom, max_h=None):
        """Cells (x, y, w, h) for n items in rows of `cols`, filling the
        band from top to bottom."""
        rows = (n + cols - 1) // cols
        cell_w = (self.w - 2 * self.pad - (cols - 1) * self.gap) // cols
        cell_h = (bottom - top - (rows - 1) * self.gap) // rows
        if max_h is not None:
            cell_h = min(cell_h, max_h)
        cells = []
        for i in range(n):
            r, c = i // cols, i % cols
            in_row = min(cols, n - r * cols)
            # A short last row is centred under the full ones.
            x0 = (self.w - (in_row * cell_w + (in_row - 1) * self.gap)) // 2
            cells.append((x0 + c * (cell_w + self.gap), top + r * (cell_h + self.gap),
                          cell_w, cell_h))
        return cells

    def _countdown(self, scr, timeout_ms):
        """A shrinking bar along the bottom edge and the seconds left."""
        self._timeout_ms = max(1, timeout_ms)
        bar_h = max(4, self.h // 60)
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
                self.app.touch(value)
        return self._debounced(("tap", value), click)

    def _service_corner(self, scr):
        """An invisible square in the top-left corner: a long hold opens the
        service screen. Styleless, so pressing it redraws nothing."""
        corner = lv.obj(scr)
        corner.remove_style_all()
        size = self.target
        corner.set_size(size, size)
        corner.set_pos(0, 0)
        corner.add_flag(lv.obj.FLAG.CLICKABLE)
        held = {"since": None}

        def pressed(e):
            held["since"] = ticks_ms()

        def pressing(e):
            since = held["since"]
            if since is not None and ticks_diff(ticks_ms(), since) >= SERVICE_HOLD_MS:
                held["since"] = None
                if self.app is not None:
                    self.show_status(self.app.service_info())

        def released(e):
            held["since"] = None

        corner.add_event_cb(self._safe(pressed), lv.EVENT.PRESSED, None)
        corner.add_event_cb(self._safe(pressing), lv.EVENT.PRESSING, None)
        corner.add_event_cb(self._safe(released), lv.EVENT.RELEASED, None)
        return corner

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
        lines = self.board.get("advert_band_lines", 8)
        size = w * 2 * lines
        if self._band is None or len(self._band) != size:
            self._band = bytearray(size)
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

    # --- questions ----------------------------------------------------------

    def show_question(self, q, timeout_ms):
        kind = q.get("kind")
        lang = q.get("lang") or self.lang
        detail = {"session": q["session"], "qid": q["qid"], "kind": kind}
        if kind == "choice":
            detail["options"] = [o["id"] for o in q["options"]]
        builders = {"nps": self._nps, "csat": self._csat, "yesno": self._yesno,
                    "choice": self._choice}
        build = builders.get(kind)
        if build is None:
            # The protocol check stops these first; a newer host's kind
            # must still never leave a broken screen.
            self._count("ui_unknown_kind")
            log.warning(_TAG, "question kind %r has no screen; showing adverts" % (kind,))
            self.show_adverts()
            return
        scr = self._new_screen("question", detail)
        self._stray_presses(scr)
        self._service_corner(scr)
        # Six options need three rows on a small screen: the text gives way.
        text_h = self.h // 5 if kind == "choice" and len(q["options"]) > 4 else self.h // 4
        self._fit_text(scr, q["text"], self.w - 2 * self.pad - self.target, text_h,
                       self.pad)
        top = self.pad + text_h + self.gap
        decline_h = self.min_target
        bottom = self.h - self.pad - decline_h - self.gap - max(4, self.h // 60)
        build(scr, q, lang, top, bottom)
        self._decline_button(scr, lang, bottom + self.gap, decline_h, "no_thanks")
        self._countdown(scr, timeout_ms)

    def _decline_button(self, scr, lang, y, h, key):
        w = min(self.w - 2 * self.pad, max(self.w // 3, 120))

        def click(e):
            if self.app is not None:
                self.app.decline()
        btn = self._button(scr, (self.w - w) // 2, y, w, h, PANEL, chrome(lang, key), "small",
                           self._debounced(("decline",), click), MUTED, key="decline")
        return btn

    def _nps(self, scr, q, lang, top, bottom):
        labels = q.get("labels") or {}
        label_h = self.fonts.get("small").get_line_height() + 2 if labels else 0
        # One row of eleven where each keeps 7 mm, else two rows.
        cols = 11 if (self.w - 2 * self.pad - 10 * self.gap) // 11 >= self.min_target else 6
        cells = self._grid(11, cols, top, bottom - label_h, self.target * 3 // 2)
        for score in range(11):
            x, y, w, h = cells[score]
            self._button(scr, x, y, w, h, nps_colour(score), "%d" % score, "big",
                         self._tap(score), key=score)
        if labels:
            last_y = cells[10][1] + cells[10][3] + 2
            half = (self.w - 2 * self.pad) // 2
            if labels.get("low"):
                lo = self._label(scr, labels["low"], "small", MUTED)
                lo.set_pos(self.pad, last_y)
                lo.set_width(half)
                lo.set_long_mode(lv.label.LONG_MODE.DOTS)
            if labels.get("high"):
                hi = self._label(scr, labels["high"], "small", MUTED, width=half,
                                 align=lv.TEXT_ALIGN.RIGHT)
                hi.set_long_mode(lv.label.LONG_MODE.DOTS)
                hi.set_pos(self.w - self.pad - half, last_y)

    def _face(self, parent, size, mood):
        """A smiley drawn from shapes (no emoji font needed): mood 0..4
        from very unhappy to very happy."""
        eye = max(4, size // 9)
        for dx in (-1, 1):
            e = lv.obj(parent)
            e.remove_style_all()
            e.set_size(eye, eye)
            e.set_style_radius(eye, 0)
            e.set_style_bg_color(lv.color_hex(0x1A1A1A), 0)
            e.set_style_bg_opa(255, 0)
            e.align(lv.ALIGN.CENTER, dx * size // 5, -size // 8)
            e.remove_flag(lv.obj.FLAG.CLICKABLE)
        stroke = max(3, size // 14)
        if mood == 2:
            m = lv.obj(parent)
            m.remove_style_all()
            m.set_size(size * 2 // 5, stroke)
            m.set_style_bg_color(lv.color_hex(0x1A1A1A), 0)
            m.set_style_bg_opa(255, 0)
            m.align(lv.ALIGN.CENTER, 0, size // 5)
            m.remove_flag(lv.obj.FLAG.CLICKABLE)
            return
        arc = lv.arc(parent)
        arc.remove_style(None, lv.PART.KNOB)
        arc.remove_flag(lv.obj.FLAG.CLICKABLE)
        sweep = 55 if mood in (1, 3) else 75  # degrees either side of the axis
        mouth = size // 2
        arc.set_size(mouth, mouth)
        arc.set_style_arc_width(stroke, lv.PART.INDICATOR)
        arc.set_style_arc_opa(0, 0)
        arc.set_style_arc_color(lv.color_hex(0x1A1A1A), lv.PART.INDICATOR)
        arc.set_style_arc_rounded(True, lv.PART.INDICATOR)
        arc.set_bg_angles(0, 360)
        if mood > 2:  # smile: the lower part of a circle
            arc.set_angles(90 - sweep, 90 + sweep)
            arc.align(lv.ALIGN.CENTER, 0, -size // 20)
        else:  # frown: the upper part, lower down
            arc.set_angles(270 - sweep, 270 + sweep)
            arc.align(lv.ALIGN.CENTER, 0, size * 2 // 5)

    def _csat(self, scr, q, lang, top, bottom):
        cells = self._grid(5, 5, top, bottom, self.target * 2)
        labels = q.get("labels") or {}
        for i in range(5):
            x, y, w, h = cells[i]
            size = min(w, h)
            btn = self._button(scr, x + (w - size) // 2, y + (h - size) // 2, size, size,
                               CSAT_COLOURS[i], None, on_click=self._tap(i + 1), key=i + 1)
            btn.set_style_radius(size // 2, 0)
            self._face(btn, size, i)
        if labels:
            x, y, w, h = cells[0]
            size = min(w, h)
            yl = y + (h - size) // 2 + size + 2
            if yl + self.fonts.get("small").get_line_height() <= bottom + self.gap:
                for end, cell, align in (("low", cells[0], lv.TEXT_ALIGN.LEFT),
                                         ("high", cells[4], lv.TEXT_ALIGN.RIGHT)):
                    if labels.get(end):
                        lab = self._label(scr, labels[end], "small", MUTED,
                                          width=self.w // 3, align=align)
                        lab.set_long_mode(lv.label.LONG_MODE.DOTS)
                        lab.set_pos(self.pad if end == "low" else self.w - self.pad - self.w // 3, yl)

    def _yesno(self, scr, q, lang, top, bottom):
        cells = self._grid(2, 2, top, bottom, self.target * 2)
        for cell, value, colour in ((cells[0], "yes", GREEN), (cells[1], "no", RED)):
            x, y, w, h = cell
            self._button(scr, x, y, w, h, colour, chrome(lang, value), "body",
                         self._tap(value), key=value)

    def _choice(self, scr, q, lang, top, bottom):
        options = q["options"]
        n = len(options)
        wide = self.w >= 600
        cols = n if n <= (3 if wide else 2) else (3 if wide and n != 4 else 2)
        cells = self._grid(n, cols, top, bottom, self.target * 2)
        for i in range(n):
            x, y, w, h = cells[i]
            self._button(scr, x, y, w, h, ACCENT, options[i]["text"], "body",
                         self._tap(options[i]["id"]), key=options[i]["id"])

    # --- "why?" follow-up ---------------------------------------------------

    def show_why(self, q, timeout_ms):
        why = q["why"]
        lang = q.get("lang") or self.lang
        reasons = why["reasons"]
        scr = self._new_screen("why", {"session": q["session"],
                                       "reasons": [r["id"] for r in reasons]})
        self._stray_presses(scr)
        text_h = self.h // 6
        self._fit_text(scr, why["text"], self.w - 2 * self.pad - self.target, text_h,
                       self.pad)
        self._picked = []
        top = self.pad + text_h + self.gap
        done_h = self.min_target
        bottom = self.h - self.pad - done_h - self.gap - max(4, self.h // 60)
        cols = 2 if len(reasons) > 1 else 1
        if self.w >= 600 and len(reasons) > 4:
            cols = 3
        cells = self._grid(len(reasons), cols, top, bottom, self.target * 3 // 2)
        for i in range(len(reasons)):
            rid = reasons[i]["id"]
            x, y, w, h = cells[i]
            chip = self._button(scr, x, y, w, h, PANEL, reasons[i]["text"], "small",
                                key="reason:" + rid)
            chip.set_style_radius(h // 2, 0)
            chip.add_flag(lv.obj.FLAG.CHECKABLE)
            chip.set_style_bg_color(lv.color_hex(ACCENT), lv.STATE.CHECKED)
            chip.add_event_cb(self._safe(self._toggle(rid, chip)), lv.EVENT.VALUE_CHANGED, None)

        def done(e):
            if self.app is not None:
                self.app.reasons(list(self._picked))
        w = min(self.w - 2 * self.pad, max(self.w // 3, 120))
        self._button(scr, (self.w - w) // 2, bottom + self.gap, w, done_h, GREEN,
                     chrome(lang, "done"), "body", self._debounced(("done",), done), key="done")
        self._countdown(scr, timeout_ms)

    def _toggle(self, rid, chip):
        def changed(e):
            on = chip.has_state(lv.STATE.CHECKED)
            if on and rid not in self._picked:
                self._picked.append(rid)
            elif not on and rid in self._picked:
                self._picked.remove(rid)
        return changed

    # --- thank-you ----------------------------------------------------------

    def show_thanks(self, answer, invite=None, lang=None):
        """invite: None or {"url", "text"} when the policy offers the QR."""
        lang = lang or self.lang
        detail = {"session": answer["session"], "outcome": answer["outcome"],
                  "value": answer["value"]}
        if invite:
            detail["qr"] = invite["url"]
        scr = self._new_screen("thanks", detail)
        if not invite:
            label = self._label(scr, chrome(lang, "thanks"), "body")
            label.center()
            return
        wide = self.w > self.h
        quiet = max(4, self.h // 40)
        if wide:
            qr_size = min(self.h - 2 * self.pad - 2 * quiet, self.w * 2 // 5, 300)
        else:
            qr_size = min(self.w - 2 * self.pad - 2 * quiet,
                          self.h - 3 * self.fonts.get("body").get_line_height(), 300)
        text_w = (self.w - qr_size - 2 * quiet - 3 * self.pad) if wide else self.w - 2 * self.pad
        title = self._label(scr, chrome(lang, "thanks"), "body", width=text_w,
                            align=lv.TEXT_ALIGN.CENTER)
        note = self._label(scr, invite.get("text") or chrome(lang, "scan"), "small", MUTED,
                           width=text_w, align=lv.TEXT_ALIGN.CENTER)
        qr = lv.qrcode(scr)
        qr.set_size(qr_size)
        qr.set_dark_color(lv.color_hex(0x000000))
        qr.set_light_color(lv.color_hex(0xFFFFFF))
        # A white quiet zone around the code, as scanners expect.
        qr.set_style_border_color(lv.color_hex(0xFFFFFF), 0)
        qr.set_style_border_width(quiet, 0)
        data = invite["url"]
        qr.update(data, len(data))
        if wide:
            qr.align(lv.ALIGN.RIGHT_MID, -self.pad, 0)
            title.align(lv.ALIGN.LEFT_MID, self.pad, -self.h // 8)
            note.align_to(title, lv.ALIGN.OUT_BOTTOM_LEFT, 0, self.gap)
        else:
            title.align(lv.ALIGN.TOP_MID, 0, self.pad)
            note.align_to(title, lv.ALIGN.OUT_BOTTOM_MID, 0, self.gap)
            qr.align(lv.ALIGN.BOTTOM_MID, 0, -self.pad)

    # --- installer screens --------------------------------------------------

    def show_problem(self, problem, text):
        """problem: not_configured, no_network or broker_unreachable."""
        scr = self._new_screen("problem", {"problem": problem, "text": text})
        scr.set_style_bg_color(lv.color_hex(0x5A1E1E), 0)
        self._service_corner(scr)
        title = self._fit_text(scr, chrome(self.lang, problem), self.w - 2 * self.pad,
                               self.h // 4, self.h // 6)
        title.set_style_text_color(lv.color_hex(0xFFD7D7), 0)
        detail = self._fit_text(scr, text, self.w - 2 * self.pad, self.h // 3,
                                self.h // 6 + self.h // 4 + self.gap, ("small",))
        detail.set_style_text_color(lv.color_hex(MUTED), 0)
        hint = self._label(scr, chrome(self.lang, "hint"), "small", MUTED,
                           width=self.w - 2 * self.pad, align=lv.TEXT_ALIGN.CENTER)
        hint.align(lv.ALIGN.BOTTOM_MID, 0, -self.pad)

    def show_status(self, info):
        """The installer's service screen: who and where this panel is and
        how its link is. Any tap returns to the idle screen."""
        scr = self._new_screen("status", info)
        rows = (("Panel", info.get("panel")), ("Store", info.get("store")),
                ("Board", info.get("board")), ("IP", info.get("ip")),
                ("Broker", info.get("broker")), ("RSSI", info.get("rssi")),
                ("Firmware", info.get("fw")), ("Outbox", info.get("outbox")),
                ("Adverts", info.get("adverts")))
        title = self._label(scr, chrome(self.lang, "service"), "body", ACCENT)
        title.set_pos(self.pad, self.pad)
        line_h = self.fonts.get("small").get_line_height() + 2
        y = self.pad + self.fonts.get("body").get_line_height() + self.gap
        key_w = self.w // 3
        # "Calibrate touch" in the top-right corner (resistive boards); the
        # rows beside it are cut short of it.
        button_x, button_bottom = self.w, 0
        if self.on_calibrate is not None:
            bw = self.w * 2 // 5
            button_x, button_bottom = self.w - bw - self.pad, self.pad + self.min_target
            self._button(scr, button_x, self.pad, bw, self.min_target, ACCENT,
                         chrome(self.lang, "recalibrate"), "small",
                         lambda e: self.on_calibrate(), key="calibrate")
        for key, value in rows:
            if value is None:
                value = "-"
            k = self._label(scr, key, "small", MUTED)
            k.set_pos(self.pad, y)
            v = self._label(scr, "%s" % (value,), "small", TEXT)
            right = button_x - self.gap if y < button_bottom else self.w - self.pad
            v.set_width(right - key_w)
            v.set_long_mode(lv.label.LONG_MODE.DOTS)
            v.set_pos(key_w, y)
            y += line_h

        def leave(e):
            if self.app is not None and self.app.flow.state == "adverts":
                self.show_adverts(leave=True)
        scr.add_event_cb(self._safe(leave), lv.EVENT.CLICKED, None)

    def show_calibration(self, target, step, total, note=None):
        """A cross to touch at target (x, y), step of total, and why the
        last round did not take (note). See lbpanel.calibrate."""
        scr = self._new_screen("calibrate", {"target": list(target), "step": step,
                                             "total": total, "note": note})
        x, y = target
        arm = max(12, self.min_target // 2)
        for w, h in ((2 * arm + 1, 3), (3, 2 * arm + 1)):
            bar = lv.obj(scr)
            bar.remove_style_all()
            bar.set_style_bg_color(lv.color_hex(TEXT), 0)
            bar.set_style_bg_opa(255, 0)
            bar.set_size(w, h)
            bar.set_pos(x - w // 2, y - h // 2)
        ring = lv.obj(scr)
        ring.remove_style_all()
        ring.set_size(arm, arm)
        ring.set_style_radius(arm, 0)
        ring.set_style_border_color(lv.color_hex(AMBER), 0)
        ring.set_style_border_width(2, 0)
        ring.set_pos(x - arm // 2, y - arm // 2)
        # The words sit between the crosses: a band across the upper and
        # lower middle, clear of the corners and of the centre cross.
        width = self.w * 3 // 5
        title = self._label(scr, chrome(self.lang, "calibrate"), "body", TEXT, width=width,
                            align=lv.TEXT_ALIGN.CENTER)
        title.align(lv.ALIGN.CENTER, 0, -self.h // 4)
        count = self._label(scr, "%d / %d" % (step, total), "small", MUTED)
        count.align(lv.ALIGN.CENTER, 0, self.h // 5)
        if note:
            why = self._label(scr, note, "small", AMBER, width=self.w * 4 // 5,
                              align=lv.TEXT_ALIGN.CENTER)
            why.align_to(count, lv.ALIGN.OUT_BOTTOM_MID, 0, self.gap)


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
