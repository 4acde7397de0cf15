# The panel's clock helper; runs under MicroPython and CPython.
from lbpanel import clock


def test_unsynced_panel_borrows_the_host_clock_and_a_synced_one_does_not():
    saved = clock._SANE_UNIX, clock._host_offset
    try:
        now = clock.unix_time()
        clock.learn_from_host(now + 500)
        assert abs(clock.unix_time() - now) <= 2  # a sane clock is left alone
        # pretend the panel woke up with no NTP: its clock is "before" sane
        clock._SANE_UNIX = now + 10 ** 6
        host_time = now + 10 ** 6 + 100
        clock.learn_from_host(host_time)
        assert abs(clock.unix_time() - host_time) <= 2
        clock.learn_from_host("not a time")
        assert abs(clock.unix_time() - host_time) <= 2
    finally:
        clock._SANE_UNIX, clock._host_offset = saved


def test_ticks_helpers_measure_elapsed_time():
    a = clock.ticks_ms()
    b = clock.ticks_add(a, 1500)
    assert clock.ticks_diff(b, a) == 1500
