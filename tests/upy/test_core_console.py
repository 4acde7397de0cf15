# The console's line reading (lbpanel.console.read_line): what arrives on a
# panel's serial port byte by byte, noise included; runs under MicroPython
# and CPython.
import asyncio

from lbpanel.console import MAX_LINE, read_line


class Port:
    """A stream reader that hands out the given bytes one read at a time."""

    def __init__(self, data):
        self.data = data

    async def read(self, n):
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


def lines_of(data):
    async def go():
        port = Port(data)
        buf = bytearray()
        out = []
        while True:
            line = await read_line(port, buf)
            if line is None:
                return out
            out.append(line)
    return asyncio.run(go())


def test_words_come_out_line_by_line_whatever_the_line_end():
    assert lines_of(b"tap 9\r\ndecline\nstatus\r") == [b"tap 9", b"decline", b"status"]


def test_control_bytes_and_blank_lines_are_not_words():
    # mpremote's Ctrl-B and Ctrl-D as it leaves, a Ctrl-C, line noise
    assert lines_of(b"\x02\x04\r\n\x03\n\ntap\x01 yes\n") == [b"tap yes"]


def test_a_runaway_line_is_cut_and_the_next_one_is_whole():
    got = lines_of(b"x" * (MAX_LINE * 3) + b"\ntap 3\n")
    assert got == [b"x" * MAX_LINE, b"tap 3"]


def test_an_unfinished_line_at_the_end_is_not_a_command():
    assert lines_of(b"tap 9\ntap 1") == [b"tap 9"]
