# Stand-in for the ESP32 `network` module under the MicroPython unix port:
# the host's loopback is the panel's "Wi-Fi". See README.md beside this file.
# LB_SIM_WIFI (comma-separated names) lists the networks in the air: only
# these can be joined; "name=password" also wants that password. Unset: any
# name joins. status() answers with the ESP32 port's codes.
import os

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_CONNECT_FAIL = 203


class WLAN:
    def __init__(self, interface=STA_IF):
        self._active = False
        self._ssid = None
        self._password = None

    def active(self, value=None):
        if value is not None:
            self._active = value
        return self._active

    def connect(self, ssid=None, password=None):
        self._ssid = ssid
        self._password = password

    def _state(self):
        air = os.getenv("LB_SIM_WIFI")
        if air is None:
            return STAT_GOT_IP
        for entry in air.split(","):
            name, sep, password = entry.partition("=")
            if name == self._ssid:
                return STAT_WRONG_PASSWORD if sep and password != self._password \
                    else STAT_GOT_IP
        return STAT_NO_AP_FOUND

    def isconnected(self):
        return self._state() == STAT_GOT_IP

    def ifconfig(self):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def status(self, param=None):
        if param == "rssi":
            return -58  # a fair signal, for the installer's report
        return self._state() if self._ssid is not None else STAT_IDLE
