"""Rate-limited logging for floods of bad input."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class LogLimiter:
    """At most `burst` lines per `period_s` for one kind of problem: a flood
    of garbage must not bury the log. The counters still count all."""

    def __init__(self, burst: int = 5, period_s: float = 10.0,
                 logger: logging.Logger | None = None):
        self.burst, self.period_s = burst, period_s
        self.log = logger or log
        self._window: dict[str, list] = {}

    def __call__(self, key: str, level: int, text: str, *args) -> None:
        now = time.monotonic()
        start, n, dropped = self._window.get(key, (now, 0, 0))
        if now - start > self.period_s:
            if dropped:
                self.log.warning("%d more %s messages were not logged", dropped, key)
            start, n, dropped = now, 0, 0
        if n < self.burst:
            self.log.log(level, text, *args)
            n += 1
        else:
            dropped += 1
        self._window[key] = (start, n, dropped)
