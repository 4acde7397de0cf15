"""The language a page is shown in, from the browser's Accept-Language (by
its q weights) among the languages the page has: one reading for the
set-up page and the shopper's phone survey."""

from __future__ import annotations


def best_language(accept: str, have, default: str, asked: str | None = None) -> str:
    """`asked` (a `?lang=`) when the page has it, else the browser's most
    wanted language the page has (the first of equal weights), else
    `default`."""
    if asked in have:
        return asked
    best, best_q = None, 0.0
    for part in (accept or "")[:400].split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip().lower().split("-")[0]
        if lang in have and q > best_q:
            best, best_q = lang, q
    return best or default
