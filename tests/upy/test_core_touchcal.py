# Resistive touch calibration; runs under MicroPython and CPython.
from lbpanel import touchcal

import support


def _samples(raw_of):
    targets = [(20, 20), (300, 20), (160, 220), (20, 220)]
    return [(t, raw_of(t)) for t in targets]


def test_straight_and_mirrored_axes_are_learnt():
    # raw x grows right to left (a mirrored film), raw y top to bottom
    cal = touchcal.solve(_samples(lambda t: (3900 - t[0] * 11, 300 + t[1] * 14)))
    assert not cal.swap
    assert cal.apply(3900 - 100 * 11, 300 + 50 * 14, 320, 240) == (100, 50)


def test_swapped_axes_are_found():
    cal = touchcal.solve(_samples(lambda t: (200 + t[1] * 15, 250 + t[0] * 11)))
    assert cal.swap
    assert cal.apply(200 + 120 * 15, 250 + 70 * 11, 320, 240) == (70, 120)


def test_points_off_the_glass_are_clamped():
    cal = touchcal.solve(_samples(lambda t: (t[0] * 10, t[1] * 10)))
    assert cal.apply(-500, 99999, 320, 240) == (0, 239)


def test_too_few_or_unmoving_touches_are_refused():
    for samples in ([((0, 0), (1, 1)), ((10, 10), (2, 2))],
                    [((0, 0), (5, 5)), ((100, 0), (5, 5)), ((0, 100), (5, 5))]):
        try:
            touchcal.solve(samples)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (samples,))


def test_calibration_survives_a_reboot_and_a_bad_file_means_none():
    d = support.fresh_dir("touchcal")
    path = d + "/touch_cal.json"
    assert touchcal.load(path) is None
    cal = touchcal.solve(_samples(lambda t: (t[0] * 12 + 7, t[1] * 13 + 9)))
    touchcal.save(cal, path)
    again = touchcal.load(path)
    assert again.apply(12 * 50 + 7, 13 * 60 + 9, 320, 240) == cal.apply(12 * 50 + 7, 13 * 60 + 9, 320, 240)
    with open(path, "w") as f:
        f.write("{not json")
    assert touchcal.load(path) is None
