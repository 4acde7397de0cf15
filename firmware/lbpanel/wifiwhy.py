# Why a panel is not on the Wi-Fi, from the driver's status, in the words
# its log and problem screen use (the installer's station reads them:
# panels/station.py). Loaded only while joining; lbpanel.wifi drops it
# once joined, so a running panel does not keep it in its heap.
import sys

REASONS = {"wrong_password": "wrong password", "not_found": "network not found",
           "failed": "the access point refused the connection",
           "no_answer": "no answer within the time"}
FINAL = ("wrong_password", "not_found")
# The ESP32 port's network.STAT_* codes, by name (another port may lack some).
_CODES = (("STAT_WRONG_PASSWORD", "wrong_password"), ("STAT_NO_AP_FOUND", "not_found"),
          ("STAT_CONNECT_FAIL", "failed"), ("STAT_ASSOC_FAIL", "failed"),
          ("STAT_HANDSHAKE_TIMEOUT", "wrong_password"), ("STAT_BEACON_TIMEOUT", "not_found"))


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
