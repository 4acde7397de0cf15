# Line commands on the panel's console: the simulator's shopper and an
# installer on the serial port (mpremote) use the same words.
#   tap 9 | tap yes | tap opt-b   pick an answer
#   reasons queue,price           finish the "why?" follow-up ("reasons" alone: none)
#   decline                       press "no thanks"
#   status                        show the service info
#   quit                          go offline cleanly and stop
import asyncio
import sys

from lbpanel import log

_TAG = "console"


def parse_value(text):
    text = text.strip()
    if text.isdigit():
        return int(text)
    return text


MAX_LINE = 200  # longer lines are noise on the port, dropped


async def read_line(reader, buf):
    """The next line (bytes, without its end) or None at the end of input.
    Byte by byte: asyncio's readline() waits for the end of the line inside
    the stream's own blocking readline, so a stray byte on the serial port
    (mpremote's Ctrl-B as it leaves, line noise) would freeze the panel's
    whole event loop until a newline came."""
    while True:
        ch = await reader.read(1)
        if not ch:
            return None
        if isinstance(ch, str):
            ch = ch.encode()
        if ch in (b"\n", b"\r"):
            if buf:
                line = bytes(buf)
                buf[:] = b""
                return line
            continue
        if ch[0] < 32 or len(buf) >= MAX_LINE:
            continue  # control characters and runaway lines are not words
        buf.extend(ch)


async def run(app, stream=None):
    reader = asyncio.StreamReader(stream if stream is not None else sys.stdin)
    buf = bytearray()
    while True:
        line = await read_line(reader, buf)
        if line is None:
            return  # console closed; the panel goes on
        try:
            words = line.decode().strip().split(None, 1)
        except UnicodeError:
            continue
        if not words:
            continue
        cmd = words[0]
        arg = words[1] if len(words) > 1 else ""
        if cmd == "tap" and arg:
            app.touch(parse_value(arg))
        elif cmd == "reasons":
            app.reasons([r for r in arg.replace(" ", "").split(",") if r])
        elif cmd == "decline":
            app.decline()
        elif cmd == "status":
            app.ui.show_status(app.service_info())
        elif cmd == "quit":
            await app.stop()
            return
        else:
            log.warning(_TAG, "unknown command %r (tap N, reasons a,b, decline, status, quit)" % cmd)
