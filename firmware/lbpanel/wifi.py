# The panel's Wi-Fi link, around MicroPython's `network` module passed in
# (the unix simulator passes a stub from firmware/unix_port_stubs).
import asyncio

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
        """Join the network; returns True when connected."""
        self.wlan.active(True)
        if self.wlan.isconnected():
            return True
        if not self.ssid:
            log.error(_TAG, "no wifi.ssid in panel.json and no network")
            return False
        log.info(_TAG, "joining Wi-Fi %r" % self.ssid)
        self.wlan.connect(self.ssid, self.password)
        # Why it is not joining, read from the driver while waiting; the
        # words are loaded only then and dropped once joined (the heap).
        from lbpanel import wifiwhy
        self.why = None
        for _ in range(timeout_s * 4):
            if self.wlan.isconnected():
                log.info(_TAG, "connected to %s as %s" % (self.ssid, self.ip()))
                wifiwhy.forget()
                return True
            self.why = wifiwhy.reason(self.network, self.wlan)
            if self.why in wifiwhy.FINAL:
                break  # the access point said no: waiting changes nothing
            await asyncio.sleep(0.25)
        self.why = self.why or "no_answer"
        log.error(_TAG, "could not join %r: %s" % (self.ssid, wifiwhy.REASONS[self.why]))
        return False

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
