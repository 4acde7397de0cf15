# Stand-in for the ESP32 `network` module under the MicroPython unix port:
# the host's loopback is the panel's "Wi-Fi". See README.md beside this file.
STA_IF = 0
AP_IF = 1


class WLAN:
    def __init__(self, interface=STA_IF):
        self._active = False

    def active(self, value=None):
        if value is not None:
            self._active = value
        return self._active

    def connect(self, ssid=None, password=None):
        pass

    def isconnected(self):
        return True

    def ifconfig(self):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def status(self, param=None):
        return None
