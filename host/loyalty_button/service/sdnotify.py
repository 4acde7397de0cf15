"""systemd's notify protocol (sd_notify(3)), the little of it the services
use: READY=1 once serving, WATCHDOG=1 from the event loop. A datagram to
$NOTIFY_SOCKET; without it (not under systemd, a test) nothing happens.

The watchdog ping comes from a task on the service's asyncio loop, so it
stops when the loop is stuck, which is the hang systemd should restart."""

from __future__ import annotations

import asyncio
import os
import socket


def notify(message: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.connect(address)
            s.sendall(message.encode())
        except OSError:
            return False
    return True


def watchdog_interval() -> float | None:
    """Half of WatchdogSec= (systemd's advice), when the watchdog is on for
    this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2e6, 0.5)
    except ValueError:
        return None


async def ping_watchdog() -> None:
    interval = watchdog_interval()
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def ready(status: str) -> asyncio.Task:
    """READY=1 with a status line; returns the watchdog task (keep it)."""
    notify(f"READY=1\nSTATUS={status}")
    return asyncio.get_running_loop().create_task(ping_watchdog())
