# The panel's Wi-Fi link, around MicroPython's `network` module passed in
# (the unix simulator passes a stub from firmware/unix_port_stubs).
import sys

from lbpanel import log

_TAG = "wifi"


class Wifi:
    def __init__(self, network, ssid, password):
        self.network = network
        self.ssid = ssid
        self.password = password
        self.wlan = network.WLAN(network.STA_IF)
        self.why = None  # a wifiwhy.REASONS key while not joined

    async def up(self, timeout_s=30):
        """Join the network; returns True when connected, else False with
        the reason in self.why. The joining itself is lbpanel.wifiwhy's,
        loaded only when not joined, and dropped once joined: a running
        panel does not keep it in its heap."""
        self.wlan.active(True)
        if not self.wlan.isconnected():
            if not self.ssid:
                log.error(_TAG, "no wifi.ssid in panel.json and no network")
                self.why = "no_ssid"
                return False
            from lbpanel import wifiwhy
            if not await wifiwhy.join(self, timeout_s):
                return False
        self.why = None
        loaded = sys.modules.get("lbpanel.wifiwhy")
        if loaded is not None:
            loaded.forget()
        return True

    def ip(self):
        try:
            return self.wlan.ifconfig()[0]
        except Exception:
            return None

    def rssi(self):
        try:
            return self.wlan.status("rssi")
        except Exception:
            return None
