# The panel's Wi-Fi link, around MicroPython's `network` module passed in
# (the unix simulator passes a stub from firmware/unix_port_stubs).
import asyncio

from lbpanel import log

_TAG = "wifi"
# Why a panel is not on the Wi-Fi, in the words its log and service screen
# use (the installer's station reads them: panels/station.py).
REASONS = {"wrong_password": "wrong password", "not_found": "network not found",
           "failed": "the access point refused the connection",
           "no_answer": "no answer within the time"}
# The ESP32 port's network.STAT_* codes (by name: another port may lack some).
_CODES = (("STAT_WRONG_PASSWORD", "wrong_password"), ("STAT_NO_AP_FOUND", "not_found"),
          ("STAT_CONNECT_FAIL", "failed"), ("STAT_ASSOC_FAIL", "failed"),
          ("STAT_HANDSHAKE_TIMEOUT", "wrong_password"), ("STAT_BEACON_TIMEOUT", "not_found"))
_FINAL = ("wrong_password", "not_found")


class Wifi:
    def __init__(self, network, ssid, password):
        self.network = network
        self.ssid = ssid
        self.password = password
        self.wlan = network.WLAN(network.STA_IF)
        self.why = None

    async def up(self, timeout_s=30):
        """Join the network; returns True when connected."""
        self.wlan.active(True)
        if self.wlan.isconnected():
            return True
        if not self.ssid:
            log.error(_TAG, "no wifi.ssid in panel.json and no network")
            return False
        log.info(_TAG, "joining Wi-Fi %r" % self.ssid)
        self.why = None
        self.wlan.connect(self.ssid, self.password)
        for _ in range(timeout_s * 4):
            if self.wlan.isconnected():
                log.info(_TAG, "connected to %s as %s" % (self.ssid, self.ip()))
                return True
            why = self.reason()
            if why in _FINAL:
                # The access point said no: waiting changes nothing.
                self.why = why
                break
            await asyncio.sleep(0.25)
        self.why = self.why or self.reason() or "no_answer"
        log.error(_TAG, "could not join %r: %s" % (self.ssid, REASONS[self.why]))
        return False

    def reason(self):
        """Why the link is not up, from the driver's status: a REASONS key,
        or None while it is still trying (or up)."""
        try:
            code = self.wlan.status()
        except Exception:
            return None
        for name, why in _CODES:
            if code is not None and code == getattr(self.network, name, "-"):
                return why
        return None

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
