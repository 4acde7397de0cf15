# One place for time, so the logic never reads a clock directly and tests can
# pass their own. MicroPython has wrapping ticks; CPython gets equivalents.
import time

try:
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
except AttributeError:  # CPython
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, delta):
        return a + delta

# Seconds from the port's epoch to 1970-01-01. Ports that count from 2000
# report gmtime(0) as year 2000.
_EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0
# Before NTP (or the host) sets it, an ESP32 wakes up in 2000; any clock that
# says earlier than this is not trusted for timestamps.
_SANE_UNIX = 1735689600  # 2025-01-01
_host_offset = 0


def unix_time():
    """Best known Unix time in whole seconds (an int: single-precision floats
    on the ESP32 cannot hold a timestamp)."""
    return int(time.time()) + _EPOCH_OFFSET + _host_offset


def synced():
    return unix_time() >= _SANE_UNIX


def learn_from_host(host_ts):
    """A panel without NTP borrows the host's clock from message timestamps,
    so its answers carry usable times. A clock already sane is left alone."""
    global _host_offset
    if not synced() and isinstance(host_ts, int) and host_ts >= _SANE_UNIX:
        _host_offset = host_ts - (int(time.time()) + _EPOCH_OFFSET)
