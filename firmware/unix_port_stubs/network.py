# Stand-in for the ESP32 `network` module under the MicroPython unix port:
# the host's loopback is the panel's "Wi-Fi". See README.md beside this file.
# LB_SIM_WIFI (comma-separated names) lists the networks in the air: only
# these can be joined. Unset: any name joins.
import os

STA_IF = 0
AP_IF = 1


class WLAN:
    def __init__(self, interface=STA_IF):
        self._active = False
        self._ssid = None

    def active(self, value=None):
        if value is not None:
            self._active = value
        return self._active

    def connect(self, ssid=None, password=None):
        self._ssid = ssid

    def isconnected(self):
        air = os.getenv("LB_SIM_WIFI")
        return air is None or self._ssid in air.split(",")

    def ifconfig(self):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def status(self, param=None):
        if param == "rssi":
            return -58  # a fair signal, for the installer's report
        return None
