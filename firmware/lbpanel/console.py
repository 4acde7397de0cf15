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


async def run(app, stream=None):
    reader = asyncio.StreamReader(stream if stream is not None else sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return  # console closed; the panel goes on
        words = line.decode().strip().split(None, 1)
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
