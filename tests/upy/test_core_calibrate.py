# The on-panel touch calibration's steps (lbpanel.calibrate.Calibrator):
# presses at the crosses through a made-up resistive film; runs under
# MicroPython and CPython.
from lbpanel.calibrate import MIN_READS, Calibrator


def film(x, y):
    """A CYD-like film: axes swapped, raw x falling as the screen y grows."""
    return 3900 - y * 15, 200 + x * 11


def press(steps, x, y, reads=5, wobble=3):
    """Readings while the finger is down (a little noise, one wild reading
    as the film makes contact), then the release."""
    event = None
    for i in range(reads):
        rx, ry = film(x, y)
        if i == 0:
            rx += 400  # the first contact bounces
        else:
            rx += (i % 3 - 1) * wobble
        assert steps.feed((rx, ry)) is None
    event = steps.feed(None)
    return event


def test_five_crosses_learn_the_film_and_the_middle_one_checks_it():
    steps = Calibrator(320, 240)
    events = []
    for _ in range(5):
        x, y = steps.target()
        events.append(press(steps, x + 1, y - 1))
    assert events == ["next", "next", "next", "next", "done"]
    assert steps.cal.swap
    for x, y in ((0, 0), (160, 120), (319, 239), (40, 200)):
        gx, gy = steps.cal.apply(*film(x, y), 320, 240)
        assert abs(gx - x) <= 2 and abs(gy - y) <= 2, (x, y, gx, gy)


def test_a_brush_is_not_a_touch():
    steps = Calibrator(320, 240)
    assert steps.feed(None) is None  # nothing pressed yet
    assert press(steps, 5, 5, reads=MIN_READS - 1) == "short"
    assert steps.step == 0
    assert press(steps, *steps.target()) == "next" and steps.step == 1


def test_a_careless_check_touch_starts_again():
    steps = Calibrator(320, 240)
    for _ in range(4):
        press(steps, *steps.target())
    x, y = steps.target()
    event = press(steps, x + 30, y)
    assert event[0] == "retry" and "px off" in event[1]
    assert steps.step == 0 and steps.samples == []


def test_touching_one_spot_for_every_cross_starts_again():
    steps = Calibrator(320, 240)
    events = [press(steps, 100, 100) for _ in range(4)]
    assert events[:3] == ["next", "next", "next"]
    assert events[3][0] == "retry" and "did not move" in events[3][1]
    assert steps.step == 0
