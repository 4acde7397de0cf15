# The panel under the MicroPython unix port: the simulator's and the tests'
# entry point. Same boot as main.py, with the headless UI on stdout and the
# console (shopper's taps) on stdin.
#   MICROPYPATH=.frozen:firmware/unix_port_stubs:firmware \
#       micropython firmware/unix_main.py path/to/panel.json
import asyncio
import sys

import machine
import network

from lbpanel import app, console
from lbpanel.ui import HeadlessUI


def main():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: unix_main.py PANEL_JSON\n")
        sys.exit(2)
    asyncio.run(app.start(sys.argv[1], HeadlessUI(), network=network,
                          reset=machine.reset, wdt=machine.WDT(timeout=10000),
                          console=console.run))


main()
