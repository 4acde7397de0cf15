"""Where the slow things the developer's tools make are kept between runs,
outside the clone so that a fresh clone (CI's) finds them: the .deb's
wheels, the install test's Debian roots. `$LB_CACHE`, default
~/.cache/loyalty-button."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("LB_CACHE") or Path.home() / ".cache" / "loyalty-button")
