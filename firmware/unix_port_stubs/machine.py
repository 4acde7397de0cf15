# Stand-in for the ESP32 `machine` module under the MicroPython unix port.
# See README.md beside this file.
import os
import sys

RESET_EXIT_CODE = 3


def reset():
    # A chip restarts at once, whatever Python is doing. Under `micropython
    # -i main.py` (a simulated serial panel, whose Ctrl-C must give mpremote
    # the REPL) SystemExit from the app only lands at the REPL: a moment
    # later the process is ended from outside (the shell's parent is this
    # process). At the REPL itself SystemExit ends it first, as mpremote
    # expects.
    if os.getenv("LB_SIM_RESET") == "kill":
        os.system("(sleep 0.3; kill -TERM $PPID 2>/dev/null) &")
    sys.exit(RESET_EXIT_CODE)


def unique_id():
    return b"unixsim"


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        pass


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2

    def __init__(self, pin, mode=-1, pull=-1, value=None):
        self.pin = pin
        self._value = value or 0

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = v
