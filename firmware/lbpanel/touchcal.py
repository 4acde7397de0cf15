# Touch calibration for a resistive panel (the CYD's XPT2046): raw ADC
# readings to screen pixels, as two linear maps (with an optional swap of
# the axes), learnt from touches at known points and stored on the panel's
# flash so it survives reboots and firmware updates.
import json

DEFAULT_PATH = "touch_cal.json"


class Calibration:
    def __init__(self, ax, bx, ay, by, swap=False):
        # screen_x = ax * raw_x + bx (after the optional swap), same for y.
        self.ax, self.bx, self.ay, self.by, self.swap = ax, bx, ay, by, swap

    def apply(self, raw_x, raw_y, width, height):
        if self.swap:
            raw_x, raw_y = raw_y, raw_x
        x = int(self.ax * raw_x + self.bx)
        y = int(self.ay * raw_y + self.by)
        return min(max(x, 0), width - 1), min(max(y, 0), height - 1)

    def to_dict(self):
        return {"ax": self.ax, "bx": self.bx, "ay": self.ay, "by": self.by, "swap": self.swap}


def _fit(pairs):
    """Least squares a, b for screen = a * raw + b."""
    n = len(pairs)
    sx = sum([p[0] for p in pairs])
    sy = sum([p[1] for p in pairs])
    sxx = sum([p[0] * p[0] for p in pairs])
    sxy = sum([p[0] * p[1] for p in pairs])
    den = n * sxx - sx * sx
    if den == 0:
        raise ValueError("the touches did not move: touch each target")
    a = (n * sxy - sx * sy) / den
    return a, (sy - a * sx) / n


def solve(samples):
    """samples: [((screen_x, screen_y), (raw_x, raw_y)), ...] from at least
    three targets not on one line. The axes are swapped when the raw x
    follows the screen's y better than its x."""
    if len(samples) < 3:
        raise ValueError("need at least 3 touches, got %d" % len(samples))

    def spread(pairs):
        a, b = _fit(pairs)
        return sum([(a * r + b - s) ** 2 for r, s in pairs])
    straight = [(r[0], s[0]) for s, r in samples], [(r[1], s[1]) for s, r in samples]
    swapped = [(r[1], s[0]) for s, r in samples], [(r[0], s[1]) for s, r in samples]
    swap = False
    try:
        err_straight = spread(straight[0]) + spread(straight[1])
    except ValueError:
        err_straight = None
    try:
        err_swapped = spread(swapped[0]) + spread(swapped[1])
    except ValueError:
        err_swapped = None
    if err_straight is None or (err_swapped is not None and err_swapped < err_straight):
        swap = True
    xs, ys = swapped if swap else straight
    ax, bx = _fit(xs)
    ay, by = _fit(ys)
    return Calibration(ax, bx, ay, by, swap)


def load(path=DEFAULT_PATH):
    """The stored calibration, or None (then the board asks for one)."""
    try:
        with open(path) as f:
            d = json.load(f)
        return Calibration(float(d["ax"]), float(d["bx"]), float(d["ay"]), float(d["by"]),
                           bool(d.get("swap", False)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(cal, path=DEFAULT_PATH):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cal.to_dict(), f)
    import os
    try:
        os.remove(path)
    except OSError:
        pass
    os.rename(tmp, path)
