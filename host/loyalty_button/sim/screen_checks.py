"""What a screen must be for a shopper at arm's length, computed from the
LVGL objects the real UI module built (not from pixels, so a check names
the object that fails):

- contrast: every text against what it is drawn on, and every control's
  fill or outline against the background around it, at least 4.5:1 (WCAG
  2.x AA's text ratio, held for controls too: the CYD's TN glass loses
  contrast at an angle);
- touch targets: every control a shopper answers with at least 9 mm each
  way, and the answers of a question apart by more than the touch error
  the board's calibration may leave (so that error lands a tap in a gap,
  not on the next answer).
"""

from __future__ import annotations

import lvgl as lv

from lbpanel import boards

MIN_CONTRAST = 4.5
MIN_TARGET_MM = 9.0


def luminance(rgb: int) -> float:
    """WCAG 2.x relative luminance of 0xRRGGBB."""
    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: int, b: int) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _rgb(colour) -> int:
    return (colour.red << 16) | (colour.green << 8) | colour.blue


def _backdrop(obj) -> int:
    """The colour behind obj: the nearest ancestor that paints an opaque
    background."""
    parent = obj.get_parent()
    while parent is not None:
        if parent.get_style_bg_opa(0) >= 255:
            return _rgb(parent.get_style_bg_color(0))
        parent = parent.get_parent()
    return 0x000000


def _own_or_backdrop(obj) -> int:
    if obj.get_style_bg_opa(0) >= 255:
        return _rgb(obj.get_style_bg_color(0))
    return _backdrop(obj)


def _settle_transitions() -> None:
    """Let the theme's state transitions (a button's colour fading to its
    checked colour) run to their end, so styles read the state's values."""
    for _ in range(3):
        lv.tick_inc(500)
        lv.timer_handler()


def _walk(obj):
    yield obj
    for i in range(obj.get_child_count()):
        yield from _walk(obj.get_child(i))


def contrast_failures(screen, label: str = "") -> list[str]:
    """Every text and control on the screen below MIN_CONTRAST, as lines a
    person can act on; chips that can be checked are tried both ways."""
    out = []

    def check_all(state_note: str) -> None:
        for obj in _walk(screen):
            if obj is screen:
                continue
            if isinstance(obj, lv.label):
                text = obj.get_text()
                if not text.strip():
                    continue
                fg = _rgb(obj.get_style_text_color(0))
                bg = _own_or_backdrop(obj)
                ratio = contrast(fg, bg)
                if ratio < MIN_CONTRAST:
                    out.append(f"{label}{state_note}: text {text!r} #{fg:06X} on #{bg:06X} "
                               f"is {ratio:.2f}:1")
            elif isinstance(obj, lv.button):
                bg = _backdrop(obj)
                fill = _rgb(obj.get_style_bg_color(0))
                ratio = contrast(fill, bg)
                if obj.get_style_border_width(0) >= 2 and obj.get_style_border_opa(0) >= 255:
                    ratio = max(ratio, contrast(_rgb(obj.get_style_border_color(0)), bg))
                if ratio < MIN_CONTRAST:
                    out.append(f"{label}{state_note}: control #{fill:06X} on #{bg:06X} "
                               f"is {ratio:.2f}:1 (fill and outline)")
    check_all("")
    checkable = [o for o in _walk(screen) if o is not screen and o.has_flag(lv.obj.FLAG.CHECKABLE)]
    if checkable:
        for o in checkable:
            o.add_state(lv.STATE.CHECKED)
        _settle_transitions()
        try:
            check_all(" (chosen)")
        finally:
            for o in checkable:
                o.remove_state(lv.STATE.CHECKED)
            _settle_transitions()
    return out


def _area(obj) -> tuple[int, int, int, int]:
    obj.update_layout()
    a = lv.area_t()
    obj.get_coords(a)
    return a.x1, a.y1, a.x2, a.y2


def areas(ui) -> dict:
    """key -> (x1, y1, x2, y2) of every touch target on the UI's screen."""
    return {key: _area(obj) for key, obj in ui.targets.items()}


def smallest_gap(rects) -> int:
    """The narrowest strip of nothing between two of the rectangles that
    face each other."""
    gaps = [g for i, a in enumerate(rects) for b in rects[i + 1:]
            if (g := gap_between(a, b)) is not None]
    return min(gaps) if gaps else 0


def gap_between(a, b) -> int | None:
    """Pixels of nothing between two rectangles facing each other (side by
    side or one above the other); None when they do not face."""
    overlap_y = min(a[3], b[3]) - max(a[1], b[1])
    overlap_x = min(a[2], b[2]) - max(a[0], b[0])
    if overlap_y > 0:
        return max(a[0], b[0]) - min(a[2], b[2]) - 1
    if overlap_x > 0:
        return max(a[1], b[1]) - min(a[3], b[3]) - 1
    return None


def target_failures(ui, board_name: str, label: str = "", answers_apart: bool = True) -> list[str]:
    """Touch targets on the UI's current screen smaller than 9 mm, and
    answers closer together than the board's touch error."""
    board = boards.get(board_name)
    px_per_mm = board["dpi"] / 25.4
    least = MIN_TARGET_MM * px_per_mm - 0.5  # whole pixels: 9 mm is 50.7 px on the CYD
    out = []
    by_key = areas(ui)
    for key, (x1, y1, x2, y2) in by_key.items():
        w, h = x2 - x1 + 1, y2 - y1 + 1
        if w < least or h < least:
            out.append(f"{label}: {key!r} is {w / px_per_mm:.1f} x {h / px_per_mm:.1f} mm")
    if answers_apart:
        error = boards.touch_error_px(board)
        answers = [(k, a) for k, a in by_key.items() if k != "decline"]
        for i, (ka, a) in enumerate(answers):
            for kb, b in answers[i + 1:]:
                gap = gap_between(a, b)
                if gap is not None and gap <= error:
                    out.append(f"{label}: {ka!r} and {kb!r} are {gap} px apart; the "
                               f"calibration may leave {error} px of error")
    return out
