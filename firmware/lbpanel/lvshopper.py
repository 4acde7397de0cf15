# The screens a shopper sees: the question (NPS, CSAT smileys, yes/no,
# choice), the "why?" chips and the thank-you with its QR. Built from
# lvkit's parts; mixed into lvui.LvglUI.
import lvgl as lv

from lbpanel import layout, log
from lbpanel.chrome import chrome
from lbpanel.lvkit import (ACCENT, CSAT_COLOURS, GREEN, MUTED, ON_FILL, PANEL, RED, TEXT,
                           nps_colour)

_TAG = "ui"


class ShopperScreens:
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
        self._question = q
        scr = self._new_screen("question", detail)
        self._stray_presses(scr)
        self._service_corner(scr)
        grid = layout.nps_grid(self.metrics) if kind == "nps" else None
        # "No thanks" in the NPS grid's spare cell (a small screen), else a
        # button of its own under the answers.
        in_grid = grid is not None and grid[0] == 4
        bar_h = self.metrics.bar_h
        if in_grid:
            bottom = self.h - bar_h - self.gap
        text_w, text_h = layout.question_text_box(
            self.metrics, kind, len(q.get("options") or ()),
            self.fonts.get("body").get_line_height())
        self._fit_text(scr, q["text"], text_w, text_h, self.pad)
        top = self.pad + text_h + self.gap
        if in_grid:
            self._nps(scr, q, lang, top, bottom, grid)
        else:
            decline_h = self.target
            bottom = self.h - self.pad - decline_h - self.gap - bar_h
            if grid is not None:
                self._nps(scr, q, lang, top, bottom, grid)
            else:
                build(scr, q, lang, top, bottom)
            self._decline_button(scr, lang, bottom + self.gap, decline_h, "no_thanks")
        self._countdown(scr, timeout_ms)

    def _decline_button(self, scr, lang, y, h, key, x=None, w=None, lines=1):
        if w is None:
            w = self._centred_width(scr, chrome(lang, key), "small")
            x = (self.w - w) // 2

        def click(e):
            if self.app is not None:
                self._soon(self.app.decline)
        btn = self._button(scr, x, y, w, h, PANEL, chrome(lang, key), "small",
                           self._debounced(("decline",), click), MUTED, key="decline",
                           lines=lines)
        return btn

    def _nps(self, scr, q, lang, top, bottom, grid):
        cols, rows, row_h, slack = grid
        labels = q.get("labels") or {}
        line_h = self.fonts.get("small").get_line_height()
        # The ends' words sit at the scale's real ends: the low one above
        # the 0, the high one under the 10, where there is room for them.
        room = bottom - top - rows * self.target - (rows - 1) * slack
        show_labels = labels and room >= 2 * (line_h + 2)
        if show_labels:
            top += line_h + 2
            bottom -= line_h + 2
        # The scale may use the screen's edge margins too: every pixel of
        # width is a wider button (and on the CYD "Не сейчас" in one).
        margin = min(self.pad, self.gap)
        cell_w = (self.w - 2 * margin - (cols - 1) * slack) // cols
        row_h = min(max(row_h, self.target), (bottom - top - (rows - 1) * slack) // rows)
        grid_h = rows * row_h + (rows - 1) * slack
        y0 = top + (bottom - top - grid_h) // 2
        # Left to right, row after row, every row starting under the 0: the
        # scale reads as one line broken (0-5 over 6-10 leaves its spare
        # cell at the right, under the 5).
        cells = []
        for i in range(cols * rows):
            r, c = i // cols, i % cols
            cells.append((margin + c * (cell_w + slack), y0 + r * (row_h + slack), cell_w, row_h))
        for score in range(11):
            x, y, w, h = cells[score]
            self._button(scr, x, y, w, h, nps_colour(score), "%d" % score, "big",
                         self._tap(score), key=score)
        if cols == 4:
            x, y, w, h = cells[11]
            # "No, thanks" is two words too wide for a cell of the CYD's
            # scale at a legible size; "Not now" says the same.
            self._decline_button(scr, lang, y, h, "not_now", x, w, lines=2)
        if show_labels:
            x0, y0_, _, _ = cells[0]
            x10, y10, w10, h10 = cells[10]
            half = (self.w - 2 * self.pad) // 2
            if labels.get("low"):
                lo = self._label(scr, labels["low"], "small", MUTED, width=half)
                lo.set_long_mode(lv.label.LONG_MODE.DOTS)
                lo.set_pos(x0, y0_ - line_h - 2)
            if labels.get("high"):
                hi = self._label(scr, labels["high"], "small", MUTED, width=half,
                                 align=lv.TEXT_ALIGN.RIGHT)
                hi.set_long_mode(lv.label.LONG_MODE.DOTS)
                hi.set_pos(x10 + w10 - half, y10 + h10 + 2)

    def show_pick(self, value):
        """The score (or answer) just picked, before it counts: outlined,
        the others dimmed, so a shopper sees what was taken."""
        for key, obj in self.targets.items():
            if key == value:
                obj.set_style_border_color(lv.color_hex(TEXT), 0)
                obj.set_style_border_width(max(3, self.gap), 0)
            elif key != "decline":
                obj.set_style_opa(96, 0)

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
                         self._tap(value), key=value, lines=2)

    def _choice(self, scr, q, lang, top, bottom):
        options = q["options"]
        n = len(options)
        wide = self.w >= 600
        cols = n if n <= (3 if wide else 2) else (3 if wide and n != 4 else 2)
        cells = self._grid(n, cols, top, bottom, self.target * 2)
        # One size for all the options: a smaller one where any needs it.
        _, _, w, h = cells[0]
        role = "body"
        for o in options:
            if self._role_that_fits(scr, o["text"], "body", w - 4, h - 4, 2) != "body":
                role = "small"
        for i in range(n):
            x, y, w, h = cells[i]
            self._button(scr, x, y, w, h, ACCENT, options[i]["text"], role,
                         self._tap(options[i]["id"]), key=options[i]["id"], lines=2)

    def show_why(self, q, timeout_ms):
        why = q["why"]
        lang = q.get("lang") or self.lang
        reasons = why["reasons"]
        scr = self._new_screen("why", {"session": q["session"],
                                       "reasons": [r["id"] for r in reasons]})
        self._stray_presses(scr)
        text_w, text_h = layout.why_text_box(self.metrics,
                                             self.fonts.get("small").get_line_height())
        self._fit_text(scr, why["text"], text_w, text_h, self.pad)
        self._picked = []
        top = self.pad + text_h + self.gap
        bar_h = self.metrics.bar_h
        n = len(reasons)
        # On a small screen "Done" takes the grid's last cell, so the chips
        # keep 9 mm and two columns, wide enough for a whole word.
        done_in_grid = self.w < 600 and n > 2
        if done_in_grid:
            bottom = self.h - bar_h - self.gap
            cells = self._grid(n + 1, 2, top, bottom, self.target * 3 // 2, self.gap)
        else:
            bottom = self.h - self.pad - self.target - self.gap - bar_h
            cols = 3 if self.w >= 600 and n > 4 else (2 if n > 1 else 1)
            # Chips stand closer than answers: a chip shows when it is
            # chosen, and a tap undoes it.
            cells = self._grid(n, cols, top, bottom, self.target * 3 // 2, self.gap)
        for i in range(n):
            rid = reasons[i]["id"]
            x, y, w, h = cells[i]
            chip = self._button(scr, x, y, w, h, PANEL, reasons[i]["text"], "small",
                                key="reason:" + rid, lines=2)
            chip.set_style_radius(h // 2, 0)
            chip.add_flag(lv.obj.FLAG.CHECKABLE)
            chip.set_style_bg_color(lv.color_hex(ACCENT), lv.STATE.CHECKED)
            chip.set_style_text_color(lv.color_hex(ON_FILL), lv.STATE.CHECKED)
            chip.add_event_cb(self._safe(self._toggle(rid, chip)), lv.EVENT.VALUE_CHANGED, None)

        def done(e):
            if self.app is not None:
                self._soon(self.app.reasons, list(self._picked))
        if done_in_grid:
            x, y, w, h = cells[n]
        else:
            w = self._centred_width(scr, chrome(lang, "done"), "body")
            x, y, h = (self.w - w) // 2, bottom + self.gap, self.target
        self._button(scr, x, y, w, h, GREEN, chrome(lang, "done"), "body",
                     self._debounced(("done",), done), key="done")
        self._countdown(scr, timeout_ms)

    def _toggle(self, rid, chip):
        def changed(e):
            on = chip.has_state(lv.STATE.CHECKED)
            if on and rid not in self._picked:
                self._picked.append(rid)
            elif not on and rid in self._picked:
                self._picked.remove(rid)
        return changed

    def show_thanks(self, answer, invite=None, lang=None):
        """The answer echoed back (the score in its colour, the face, the
        word or option picked), a warm word, and with `invite` ({"url",
        "text"}, when the question's policy offers it) a QR code as large
        as the screen allows beside them: on the CYD 31 mm, a module of
        about 1 mm for a review link, which a phone reads from 40 cm."""
        lang = lang or self.lang
        detail = {"session": answer["session"], "outcome": answer["outcome"],
                  "value": answer["value"]}
        if invite:
            detail["qr"] = invite["url"]
        q = self._question
        self._question = None
        if q is not None and q.get("session") != answer["session"]:
            q = None
        scr = self._new_screen("thanks", detail)
        quiet = max(4, self.h // 40)
        if invite:
            qr_size = min(self.h - 2 * self.pad - 2 * quiet, self.w * 11 // 20, 300)
            text_w = self.w - qr_size - 2 * quiet - 3 * self.pad
        else:
            text_w = self.w - 2 * self.pad
        parts = []
        echo = self._echo(scr, answer, q, lang, text_w)
        if echo is not None:
            parts.append(echo)
        word = "thanks_answer" if answer["outcome"] == "answered" else "thanks"
        parts.append(self._label(scr, chrome(lang, word), "body", width=text_w,
                                 align=lv.TEXT_ALIGN.CENTER))
        note = (invite.get("text") or chrome(lang, "scan")) if invite else chrome(lang, "good_day")
        parts.append(self._label(scr, note, "small", MUTED, width=text_w,
                                 align=lv.TEXT_ALIGN.CENTER))
        # The column of words (and echo), centred in the space the QR leaves.
        heights = []
        for part in parts:
            part.update_layout()
            heights.append(part.get_height())
        y = (self.h - sum(heights) - self.gap * 2 * (len(parts) - 1)) // 2
        for part, h in zip(parts, heights):
            part.set_pos(self.pad + (text_w - part.get_width()) // 2, y)
            y += h + 2 * self.gap
        if not invite:
            return
        qr = lv.qrcode(scr)
        qr.set_size(qr_size)
        qr.set_dark_color(lv.color_hex(0x000000))
        qr.set_light_color(lv.color_hex(0xFFFFFF))
        # A white quiet zone around the code, as scanners expect.
        qr.set_style_border_color(lv.color_hex(0xFFFFFF), 0)
        qr.set_style_border_width(quiet, 0)
        data = invite["url"]
        qr.update(data, len(data))
        qr.align(lv.ALIGN.RIGHT_MID, -self.pad, 0)

    def _echo(self, scr, answer, q, lang, max_w):
        """The answer as it was picked, not clickable; None for none."""
        value = answer.get("value")
        kind = answer.get("kind") or (q or {}).get("kind")
        if answer["outcome"] != "answered" or value is None:
            return None
        size = self.target * 3 // 2
        if kind == "nps":
            obj = self._button(scr, 0, 0, size, size, nps_colour(value), "%d" % value, "big")
            obj.set_style_radius(size // 2, 0)
        elif kind == "csat" and 1 <= value <= 5:
            obj = self._button(scr, 0, 0, size, size, CSAT_COLOURS[value - 1])
            obj.set_style_radius(size // 2, 0)
            self._face(obj, size, value - 1)
        else:
            text, colour = None, ACCENT
            if kind == "yesno":
                text, colour = chrome(lang, value), (GREEN if value == "yes" else RED)
            elif q is not None:
                for o in q.get("options") or ():
                    if o["id"] == value:
                        text = o["text"]
            if text is None:
                return None
            obj = self._button(scr, 0, 0, min(max_w, self.w // 2), self.target, colour,
                               text, "body")
        obj.remove_flag(lv.obj.FLAG.CLICKABLE)
        return obj
