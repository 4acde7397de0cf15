"""The contract between a forwarding worker and a destination (a CRM, the
central PostgreSQL, the store's alert channels). The worker owns the
outbox, the backoff and the dead letters; an adapter only delivers."""

from __future__ import annotations

from typing import Protocol, Union

from . import http

# One record to deliver: its payload, the attempts made so far, and what the
# destination kept of an earlier attempt (`ref`, e.g. a CRM note's id).
Item = tuple[dict, int, Union[str, None]]
# Per item, in order: a ref to keep (or None) when it was delivered, or the
# http.Refused that says it never will be (it goes to the dead letters).
Result = Union[str, None, http.Refused]


class Adapter(Protocol):
    def send_batch(self, items: list[Item]) -> list[Result]:
        """Deliver the items. Raise http.Retry when the destination should
        be tried again later, with `done` set to the results of the items
        before the one that failed."""

    def close(self) -> None:
        """Let go of connections; called once, when the worker stops."""


class OneByOne:
    """The batch contract for destinations that take one record per
    request: a subclass writes `send`."""

    def send(self, payload: dict, attempts: int, ref: str | None) -> str | None:
        raise NotImplementedError

    def send_batch(self, items: list[Item]) -> list[Result]:
        results: list[Result] = []
        for payload, attempts, ref in items:
            try:
                results.append(self.send(payload, attempts, ref))
            except http.Refused as e:
                results.append(e)
            except http.Retry as e:
                e.done = results  # sent what went through; the rest waits
                raise
        return results

    def close(self) -> None:
        pass
