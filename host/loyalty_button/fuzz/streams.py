# A socket's two ends over fixed bytes, for driving the panel's MQTT reader
# without a network: the fuzz harness and the panel's packet tests use them.
# MicroPython and CPython alike.


class Stream:
    """The reading end: the given bytes, then end of stream."""

    def __init__(self, data):
        self.data = data
        self.at = 0

    async def read(self, n):
        chunk = self.data[self.at:self.at + n]
        self.at += len(chunk)
        return chunk

    async def readinto(self, buf):
        chunk = self.data[self.at:self.at + len(buf)]
        buf[:len(chunk)] = chunk
        self.at += len(chunk)
        return len(chunk)


class Sink:
    """The writing end: takes everything, keeps nothing."""

    def write(self, data):
        pass

    async def drain(self):
        pass

    def close(self):
        pass
