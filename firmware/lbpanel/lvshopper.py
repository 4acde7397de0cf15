# The screens a shopper sees: the question (NPS, CSAT smileys, yes/no,
# choice), the "why?" chips and the thank-you with its QR. Built from
# lvkit's parts; mixed into lvui.LvglUI.
import lvgl as lv

from lbpanel import log
from lbpanel.chrome import chrome
from lbpanel.lvkit import ACCENT, CSAT_COLOURS, GREEN, MUTED, PANEL, RED, nps_colour

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
                self._soon(self.app.decline)
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
                self._soon(self.app.reasons, list(self._picked))
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
