"""A cap on the connections an HTTP listener holds: in all, and from one
address. Each connection is an open file; a LAN client opening idle
connections by the thousand would otherwise use up the files the service
may hold (systemd's LimitNOFILE) and with them the POS receipts, the
database and the log. A connection over a cap is closed as soon as it is
accepted, counted, and logged at most a few times a minute.

Also here: the event loop's handler for the errors asyncio reports by
itself (`socket.accept() out of system resource` when the files run out):
logged at the same limited rate, instead of a traceback per attempt."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from aiohttp import web

from ..loglimit import LogLimiter

log = logging.getLogger(__name__)
_limited = LogLimiter(burst=3, period_s=60.0, logger=log)


class ConnectionCap:
    def __init__(self, name: str, total: int, per_address: int,
                 counters: Counter | None = None):
        self.name, self.total, self.per_address = name, total, per_address
        self.counters = counters if counters is not None else Counter()
        self.open: Counter[str] = Counter()

    def admit(self, peer: str) -> bool:
        held = sum(self.open.values())
        if held >= self.total or self.open[peer] >= self.per_address:
            self.counters[f"{self.name}_connections_refused"] += 1
            _limited(f"{self.name} connection cap", logging.WARNING,
                     "%s: refused a connection from %s (%d open from it, %d in all; caps %d "
                     "and %d)", self.name, peer, self.open[peer], held, self.per_address,
                     self.total)
            return False
        self.open[peer] += 1
        return True

    def release(self, peer: str) -> None:
        self.open[peer] -= 1
        if self.open[peer] <= 0:
            del self.open[peer]

    def install(self, runner: web.AppRunner) -> None:
        """Cap the connections of `runner` (after its setup(), before its
        sites start): its protocol factory is wrapped."""
        runner._server = _CappedServer(runner.server, self)


class _CappedServer:
    """aiohttp's protocol factory, each protocol it makes behind the cap."""

    def __init__(self, inner, cap: ConnectionCap):
        self._inner, self._cap = inner, cap

    def __call__(self) -> asyncio.Protocol:
        return _Capped(self._inner(), self._cap)

    def __getattr__(self, name):  # shutdown(), connections, ... as aiohttp's
        return getattr(self._inner, name)


class _Capped(asyncio.Protocol):
    def __init__(self, inner: asyncio.Protocol, cap: ConnectionCap):
        self.inner, self.cap, self.peer, self.admitted = inner, cap, "?", False

    def connection_made(self, transport) -> None:
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "?"
        self.admitted = self.cap.admit(self.peer)
        self.inner.connection_made(transport)
        if not self.admitted:
            transport.abort()  # its file is given back now, not at a timeout

    def connection_lost(self, exc) -> None:
        if self.admitted:
            self.cap.release(self.peer)
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.admitted:
            self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def quiet_loop_errors(loop: asyncio.AbstractEventLoop) -> None:
    """The loop's accept errors (files run out) logged a few times a minute
    with how many were not; every other report as asyncio's own handler
    gives it, traceback and all."""
    def handler(loop, context: dict) -> None:
        message = context.get("message", "")
        if message.startswith("socket.accept()"):
            exc = context.get("exception")
            _limited("accept errors", logging.ERROR, "%s%s", message,
                     f": {exc!r}" if exc else "")
        else:
            loop.default_exception_handler(context)
    loop.set_exception_handler(handler)
