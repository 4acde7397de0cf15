"""The dashboard's users file (`dashboard.users_file`): `name:scrypt$salt$hash`
per line, like htpasswd; 0600, the service's. The dashboard logs its users
in against it, the set-up writes its first manager, a store backup carries
it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from ..settings import write_beside

_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(stored: str, password: str) -> bool:
    try:
        kind, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), dklen=32, **_SCRYPT)
        return hmac.compare_digest(got, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


def read_users(path: Path) -> dict[str, str]:
    """`name:scrypt$salt$hash` per line (like htpasswd)."""
    users = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#") and ":" in line:
            name, stored = line.split(":", 1)
            users[name.strip()] = stored.strip()
    return users


def add_user(path: Path, name: str, password: str) -> None:
    # A line a name: a newline or another control character in it would
    # make a line of the file a second user of the name's choosing.
    if not name or ":" in name or len(name) > 64 or any(ord(c) < 32 or c == "\x7f"
                                                         for c in name) \
            or name != name.strip() or len(password) < 8:
        raise ValueError("a user name without ':', spaces around it or control characters "
                         "(at most 64), and a password of at least 8 characters")
    path = Path(path)
    users = read_users(path) if path.exists() else {}
    users[name] = hash_password(password)
    _write_users(path, users)


def remove_user(path: Path, name: str) -> None:
    """Take a user away; their open sessions end at their next request."""
    users = read_users(path)
    if name not in users:
        raise ValueError(f"no user {name!r} in {path} (users: {', '.join(sorted(users)) or 'none'})")
    del users[name]
    _write_users(Path(path), users)


def _write_users(path: Path, users: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_beside(path, "".join(f"{n}:{h}\n" for n, h in users.items()), 0o600)
