# The panel's screen geometry as arithmetic, with no LVGL: sizes from the
# board's resolution and dpi, the NPS scale's grid, and the box a
# question's text must fit in. The LVGL screens (lvkit, lvshopper) build
# from it, and the host's catalogue check (service/text_fit.py) measures
# each text against the same boxes, so both agree on what fits.
from lbpanel import boards


class Metrics:
    """Sizes on one board's screen, in pixels. Every control a shopper
    touches keeps 9 mm each way (Android's 48 dp, about a hurried thumb):
    51 px on the 2.8" CYD (143 dpi), 77 px on the 4.3" S3 panel (217 dpi).
    Answers stand further apart than the touch error a calibrated
    resistive film may keep (boards.touch_error_px: 9 px on the CYD), so
    that error puts a tap in a gap, not on the next answer."""

    def __init__(self, board, width=None, height=None):
        self.w = width or board["width"]
        self.h = height or board["height"]
        short = min(self.w, self.h)
        dpi = board.get("dpi", 143)
        self.pad = max(4, short // 40)
        self.gap = max(4, short // 48)
        self.target = max(44, (dpi * 90 + 253) // 254)  # rounded up: 9 mm at least
        self.slack = max(self.gap, boards.touch_error_px(board) + 1)
        # Drawn things that are not touched (the calibration cross's arms).
        self.min_target = max(36, dpi * 7 * 10 // 254)
        # The countdown bar along the bottom edge.
        self.bar_h = max(4, self.h // 60)


def nps_grid(m):
    """(columns, rows, row height, gap) for the 0-10 scale: the fewest rows
    whose buttons keep 9 mm (m.target) across, with gaps wider than the
    touch error the board's calibration may leave, so a tap pulled by it
    lands in a gap, not on the next score. 11 in a row on a wide screen,
    0-5 / 6-10 on the 4.3" panel, 4 x 3 on the 2.8" CYD (the twelfth cell
    is "not now")."""
    slack = m.slack
    for cols in (11, 6, 4):
        if (m.w - 2 * m.pad - (cols - 1) * slack) // cols >= m.target:
            break
    rows = (11 + cols - 1) // cols
    row_h = m.target if cols == 4 else m.target * 3 // 2
    return cols, rows, row_h, slack


def question_text_box(m, kind, n_options, body_line_h):
    """(width, height) the question's text gets above its answers."""
    width = m.w - 2 * m.pad - m.target
    if kind == "nps":
        cols, rows, row_h, slack = nps_grid(m)
        if cols == 4:
            # "Not now" sits in the grid: the text takes what the scale leaves.
            bottom = m.h - m.bar_h - m.gap
            return width, bottom - m.gap - rows * row_h - (rows - 1) * slack - m.pad
        # Two rows of scores and their end words: the text gives way to two lines.
        return width, max(m.h // 5, 2 * body_line_h)
    if kind == "choice" and n_options > 4:
        # Six options need three rows on a small screen: the text gives way.
        return width, m.h // 5
    return width, m.h // 4


def why_text_box(m, small_line_h):
    return m.w - 2 * m.pad - m.target, max(m.h // 6, 2 * small_line_h)
