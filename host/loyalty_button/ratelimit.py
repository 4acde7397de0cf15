"""Token buckets by key: how much of something one source may send."""

from __future__ import annotations

import time


class Buckets:
    """`rate` per second for each key, up to `burst` at once. take() says
    whether one more may pass. A source that stays under the rate never
    meets the limit; the keys are bounded (`max_keys`): the quietest go."""

    def __init__(self, rate: float, burst: float, max_keys: int = 4096):
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> bool:
        now = time.monotonic()
        tokens, at = self._state.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        ok = tokens >= 1
        self._state[key] = (tokens - 1 if ok else tokens, now)
        if len(self._state) > self.max_keys:  # full buckets carry no memory worth keeping
            for k in sorted(self._state, key=lambda k: -self._state[k][0])[:self.max_keys // 4]:
                del self._state[k]
        return ok
