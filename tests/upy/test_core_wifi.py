# The Wi-Fi link says why it is not joining (lbpanel/wifi.py, wifiwhy.py);
# runs under MicroPython and CPython, with a driver that answers as the
# ESP32 port's does.
import asyncio
import sys

from lbpanel.wifi import Wifi


class Network:
    STA_IF = 0
    STAT_CONNECTING = 1001
    STAT_GOT_IP = 1010
    STAT_NO_AP_FOUND = 201
    STAT_WRONG_PASSWORD = 202

    def __init__(self, statuses):
        self.statuses = list(statuses)  # what status() says, poll by poll

    def WLAN(self, interface):
        return Wlan(self)


class Wlan:
    def __init__(self, net):
        self.net = net
        self.polls = 0

    def active(self, on=None):
        return True

    def connect(self, ssid, password):
        pass

    def status(self, param=None):
        s = self.net.statuses
        return s[min(self.polls, len(s) - 1)]

    def isconnected(self):
        self.polls += 1
        return self.status() == Network.STAT_GOT_IP

    def ifconfig(self):
        return ("10.0.0.7", "255.255.255.0", "10.0.0.1", "10.0.0.1")


def _up(statuses, timeout_s=5):
    wifi = Wifi(Network(statuses), "store-pos", "secret123")
    ok = asyncio.run(wifi.up(timeout_s))
    return wifi, ok


def test_a_wrong_password_is_said_at_once():
    wifi, ok = _up([Network.STAT_CONNECTING, Network.STAT_WRONG_PASSWORD])
    assert not ok and wifi.why == "wrong_password"
    assert wifi.wlan.polls < 5  # no 5 s wait for an answer that will not change


def test_a_missing_network_and_silence_each_have_their_reason():
    wifi, ok = _up([Network.STAT_NO_AP_FOUND])
    assert not ok and wifi.why == "not_found"
    wifi, ok = _up([Network.STAT_CONNECTING], timeout_s=1)
    assert not ok and wifi.why == "no_answer"


def test_once_joined_the_words_leave_the_heap():
    wifi, ok = _up([Network.STAT_CONNECTING, Network.STAT_GOT_IP])
    assert ok and wifi.why is None
    assert "lbpanel.wifiwhy" not in sys.modules
    import lbpanel
    assert not hasattr(lbpanel, "wifiwhy")

