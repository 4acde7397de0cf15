# Joining the Wi-Fi, and why a panel is not on it, from the driver's
# status, in the words its log and problem screen use (the installer's
# station reads them: panels/station.py). Loaded only while joining;
# lbpanel.wifi drops it once joined, so a running panel does not keep it in
# its heap (a 108 KiB panel has no room for it).
import asyncio
import sys

from lbpanel import log

_TAG = "wifi"

REASONS = {"wrong_password": "wrong password", "not_found": "network not found",
           "failed": "the access point refused the connection",
           "no_answer": "no answer within the time",
           "no_ssid": "no wifi.ssid in panel.json"}
FINAL = ("wrong_password", "not_found")
# The ESP32 port's network.STAT_* codes, by name (another port may lack some).
_CODES = (("STAT_WRONG_PASSWORD", "wrong_password"), ("STAT_NO_AP_FOUND", "not_found"),
          ("STAT_CONNECT_FAIL", "failed"), ("STAT_ASSOC_FAIL", "failed"),
          ("STAT_HANDSHAKE_TIMEOUT", "wrong_password"), ("STAT_BEACON_TIMEOUT", "not_found"))


async def join(wifi, timeout_s):
    """Connect `wifi` (lbpanel.wifi.Wifi); True once joined, else False
    with the reason in wifi.why. A final answer of the access point (a
    wrong password, no such network) ends the wait at once."""
    log.info(_TAG, "joining Wi-Fi %r" % wifi.ssid)
    wifi.why = None
    wifi.wlan.connect(wifi.ssid, wifi.password)
    for _ in range(timeout_s * 4):
        if wifi.wlan.isconnected():
            log.info(_TAG, "connected to %s as %s" % (wifi.ssid, wifi.ip()))
            return True
        wifi.why = reason(wifi.network, wifi.wlan)
        if wifi.why in FINAL:
            break
        await asyncio.sleep(0.25)
    wifi.why = wifi.why or "no_answer"
    log.error(_TAG, "could not join %r: %s" % (wifi.ssid, REASONS[wifi.why]))
    return False


def reason(network, wlan):
    """A REASONS key, or None while the driver is still trying (or up)."""
    try:
        code = wlan.status()
    except Exception:
        return None
    if code is None:
        return None
    for name, why in _CODES:
        if code == getattr(network, name, "-"):
            return why
    return None


def forget():
    sys.modules.pop("lbpanel.wifiwhy", None)
    try:  # the package keeps its submodules as attributes too
        delattr(sys.modules["lbpanel"], "wifiwhy")
    except (KeyError, AttributeError, TypeError):
        pass
