# The screens an installer sees: the service screen (a long hold in the
# top-left corner), the problem screens (not configured, no network, no
# broker) and the touch calibration's crosses. In the panel's language, like
# the shopper's screens. Built from lvkit's parts; mixed into lvui.LvglUI.
import lvgl as lv

from lbpanel.chrome import chrome
from lbpanel.clock import ticks_diff, ticks_ms
from lbpanel.flow import ADVERTS
from lbpanel.lvkit import ACCENT, AMBER, MUTED, SERVICE_HOLD_MS, TEXT

# The service screen's rows: what the app's service_info() holds.
_SERVICE_ROWS = ("panel", "store", "board", "ip", "broker", "rssi", "fw", "outbox", "adverts",
                 "problem")


class InstallerScreens:
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
                    self._soon(lambda: self.show_status(self.app.service_info()))

        def released(e):
            held["since"] = None

        corner.add_event_cb(self._safe(pressed), lv.EVENT.PRESSED, None)
        corner.add_event_cb(self._safe(pressing), lv.EVENT.PRESSING, None)
        corner.add_event_cb(self._safe(released), lv.EVENT.RELEASED, None)
        return corner

    def show_problem(self, problem, text):
        """problem: not_configured, no_network or broker_unreachable. The
        shopper sees a calm welcome; staff see a small amber dot in the
        top-right corner, and the installer finds what is wrong, in words
        and with the technical detail, on the service screen."""
        scr = self._new_screen("problem", {"problem": problem, "text": text})
        self.problem = (problem, text)
        self._service_corner(scr)
        label = self._label(scr, chrome(self.lang, "welcome"), "body", MUTED)
        label.center()
        dot = lv.obj(scr)
        dot.remove_style_all()
        size = max(8, self.pad * 2)
        dot.set_size(size, size)
        dot.set_style_radius(size, 0)
        dot.set_style_bg_color(lv.color_hex(AMBER), 0)
        dot.set_style_bg_opa(255, 0)
        dot.align(lv.ALIGN.TOP_RIGHT, -self.pad, self.pad)
        dot.remove_flag(lv.obj.FLAG.CLICKABLE)

    def show_status(self, info):
        """The installer's service screen: who and where this panel is and
        how its link is. Any tap returns to the idle screen."""
        if self.problem is not None:
            info = dict(info)
            info["problem"] = "%s: %s" % (chrome(self.lang, self.problem[0]), self.problem[1])
        scr = self._new_screen("status", info)
        title = self._label(scr, chrome(self.lang, "service"), "body", ACCENT)
        title.set_pos(self.pad, self.pad)
        line_h = self.fonts.get("small").get_line_height()
        y = self.pad + self.fonts.get("body").get_line_height() + self.gap
        key_w = self.w // 3
        # "Calibrate touch" in the top-right corner (resistive boards); the
        # rows beside it are cut short of it.
        button_x, button_bottom = self.w, 0
        if self.on_calibrate is not None:
            bw = self.w * 2 // 5
            button_x, button_bottom = self.w - bw - self.pad, self.pad + self.target
            self._button(scr, button_x, self.pad, bw, self.target, ACCENT,
                         chrome(self.lang, "recalibrate"), "small",
                         lambda e: self._soon(self.on_calibrate), key="calibrate", lines=2)
        for key in _SERVICE_ROWS:
            value = info.get(key)
            if value is None and key == "problem":
                continue
            if value is None:
                value = "-"
            k = self._label(scr, chrome(self.lang, key), "small", MUTED)
            k.set_pos(self.pad, y)
            v = self._label(scr, "%s" % (value,), "small", TEXT)
            right = button_x - self.gap if y < button_bottom else self.w - self.pad
            v.set_width(right - key_w)
            v.set_long_mode(lv.label.LONG_MODE.DOTS)
            v.set_pos(key_w, y)
            y += line_h

        def leave(e):
            if self.app is not None and self.app.flow.state == ADVERTS:
                self._soon(self.show_adverts, True)
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
