"""A small blocking HTTP client for the forwarder's threads, and how an
answer maps onto "sent", "try again later" and "will never work"."""

from __future__ import annotations

import json
import random
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass


class Retry(Exception):
    """Not delivered, worth trying again: the destination is down, slow,
    rate-limiting (after_s: when it said to come back) or failing (5xx)."""

    def __init__(self, message: str, after_s: float | None = None, ref: str | None = None):
        super().__init__(message)
        self.after_s = after_s
        self.ref = ref  # progress to keep (e.g. which alert channels have it)
        self.done: list = []  # results of a batch's items before this one


class Refused(Exception):
    """The destination refused this record for good (a 4xx other than 401,
    403, 408 and 429): retrying cannot help, so it goes to the dead letters, where a
    person can look at it and re-send it after fixing the cause."""


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise Retry(f"HTTP {self.status}: the answer is not JSON: {self.body[:100]!r}")


def request(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
            timeout_s: float = 10.0, context=None) -> Response:
    """context: an ssl.SSLContext (e.g. trusting a chain's own CA)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s, context=context) as resp:
            return Response(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers or {}), e.read() or b"")
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise Retry(f"{method} {_site(url)}: {reason}") from None


def _site(url: str) -> str:
    # Never log a secret in a URL (Bitrix24's webhook carries one).
    parts = url.split("/")
    return "/".join(parts[:3]) if len(parts) > 3 else url


def retry_after(headers: dict) -> float | None:
    value = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def check(resp: Response, what: str) -> Response:
    """Raise Retry or Refused unless the answer is a 2xx."""
    if 200 <= resp.status < 300:
        return resp
    detail = resp.body[:200].decode("utf-8", "replace")
    if resp.status in (408, 425, 429) or resp.status >= 500:
        raise Retry(f"{what}: HTTP {resp.status} {detail}", retry_after(resp.headers))
    if resp.status in (401, 403):
        # Credentials are a setting a person fixes; the records wait for it.
        raise Retry(f"{what}: HTTP {resp.status} {detail}: check the credentials")
    raise Refused(f"{what}: HTTP {resp.status} {detail}")


def backoff_s(failures: int, base: float, cap: float, after_s: float | None = None) -> float:
    """Exponential with 'equal jitter' (half fixed, half random), so many
    store hosts that lost the same destination do not come back in step.
    A Retry-After from the destination is honoured (within the cap)."""
    delay = min(cap, base * 2 ** max(0, failures - 1))
    delay = delay / 2 + random.uniform(0, delay / 2)
    if after_s is not None:
        delay = max(delay, min(after_s, cap))
    return delay
