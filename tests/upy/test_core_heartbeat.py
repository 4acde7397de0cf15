# The panel's heartbeat outlives a status that fails (lbpanel/app.py); runs
# under MicroPython and CPython.
import asyncio


def test_a_status_that_fails_does_not_end_the_heartbeat():
    # A MemoryError on a full heap while one status is built (seen at
    # 108 KiB after a 60 KiB message): counted, and the next one is sent.
    from lbpanel import app, telemetry

    class Panel:
        pass
    panel = Panel()
    panel._heartbeat_now = asyncio.Event()
    panel.settings = {"heartbeat_s": 0.01}
    panel.client = Panel()
    panel.client.up = True
    panel.counters = telemetry.Counters()
    sent = []

    async def publish_status():
        sent.append(len(sent))
        if len(sent) == 1:
            raise MemoryError("memory allocation failed")
    panel.publish_status = publish_status

    async def run_a_while():
        try:
            await asyncio.wait_for(app.PanelApp._heartbeat(panel), 0.2)
        except asyncio.TimeoutError:
            pass
    asyncio.run(run_a_while())
    assert len(sent) >= 3 and panel.counters.get("status_error") == 1
