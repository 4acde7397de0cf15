# Boot on the ESP32: config -> board -> UI -> network -> app.
# Until the LVGL UI lands, the headless UI reports screens on the console.
import asyncio

import machine
import network

from lbpanel import app, console
from lbpanel.ui import HeadlessUI

asyncio.run(app.start("panel.json", HeadlessUI(), network=network,
                      reset=machine.reset, wdt=machine.WDT(timeout=10000),
                      console=console.run))
