# Counters and the status message: how an installer or the dashboard sees
# what a panel has been through (rejected messages, outbox trouble, ...).
import gc

from lbpanel import VERSION, protocol


class Counters:
    def __init__(self):
        self.values = {}

    def add(self, name, n=1):
        self.values[name] = self.values.get(name, 0) + n

    def get(self, name):
        return self.values.get(name, 0)


def heap_free():
    try:
        gc.collect()
        return gc.mem_free()  # MicroPython
    except AttributeError:
        return None  # CPython has no fixed heap to report


def status_message(identity, uptime_s, outbox_depth, counters, extra=None):
    msg = protocol.envelope("status", identity.new_id(), identity.unix_time(),
                            identity.store, identity.panel)
    msg["state"] = "online"
    msg["fw"] = VERSION
    msg["uptime_s"] = uptime_s
    msg["outbox"] = outbox_depth
    msg["counters"] = counters.values
    if extra:
        for key in extra:
            msg[key] = extra[key]
    return msg


def offline_message(identity):
    """The last will: the broker publishes it (retained) when the panel
    vanishes without saying goodbye. Its ts is the moment it was registered,
    i.e. the connection time; receivers time the change themselves."""
    msg = protocol.envelope("status", identity.new_id(), identity.unix_time(),
                            identity.store, identity.panel)
    msg["state"] = "offline"
    return msg
