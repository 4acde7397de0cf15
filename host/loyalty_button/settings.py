"""Checking the host's files (concentrator.yaml, probe.yaml, the catalogue,
the advert playlist): the one way they are all checked. A file is refused as
a whole with every problem listed at once, each with its place in the file
(`rules[2].when.hours`, `forwarding.destinations[0].url`) and what to write
instead, so a person fixes it in one go.

A settings table is a list of `Field`s; `Checker.fields` applies one to a
mapping. Parts a table cannot say (lists of destinations, catalogue texts)
use the same `Checker` by hand, so their problems read the same way.

The panel checks its panel.json with its own small table
(firmware/lbpanel/config.py): MicroPython cannot import this module."""

from __future__ import annotations

import logging
import os
import tempfile
import zoneinfo
from pathlib import Path

import yaml

from lbpanel import protocol
from lbpanel.config import lookup

from .problems import ProblemsError

log = logging.getLogger(__name__)


def private(path: Path, mode: int = 0o640) -> None:
    """Create `path` (empty) with `mode` if it is not there; a file that is
    there and readable by every user is tightened to `mode`, with a log line.
    For what the host writes: the record store, its logs."""
    path = Path(path)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
        return
    except FileExistsError:
        pass
    have = path.stat().st_mode & 0o777
    if have & 0o007:
        os.chmod(path, have & mode)
        log.warning("%s was readable by every user of this machine (mode %03o); now %03o",
                    path, have, have & mode)


def own_like(path: Path, model: Path) -> None:
    """Run as root (an installer's sudo), `path` takes `model`'s owner and
    group: what root makes in the service's folders stays the service's."""
    if os.geteuid() == 0:
        st = Path(model).stat()
        os.chown(path, st.st_uid, st.st_gid)


def replace_owned(tmp: Path, path: Path) -> None:
    """Rename `tmp` over `path`. Run as root (an installer's sudo), the file
    keeps the owner it had, or takes its folder's: a settings file the
    service must read stays the service's."""
    path = Path(path)
    own_like(tmp, path if path.exists() else path.parent)
    os.replace(tmp, path)


def new_file_beside(path: Path, mode: int = 0o600) -> tuple[int, Path]:
    """A new, empty file in `path`'s folder under a name nobody could have
    chosen (random, O_EXCL): the file for a write that then takes `path`'s
    name by a rename. Root writes into folders the service's user owns (an
    installer's `setup`, `restore`, `dashboard add-user`); a link that user
    planted at a fixed temporary name would send root's write anywhere.
    Returns the open descriptor and the path."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, mode)
    return fd, Path(name)


def draft_beside(path: Path, data: bytes | str, mode: int = 0o600) -> Path:
    """`data` in a new file beside `path` (new_file_beside), to be checked
    and then put in place with replace_owned."""
    fd, tmp = new_file_beside(path, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_beside(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Replace `path` with `data` at once (a reader sees the old file or the
    new one), by way of a file nobody could have planted."""
    replace_owned(draft_beside(path, data, mode), path)


def warn_if_loose(path: Path, what: str) -> bool:
    """Log a warning when a file holding a secret may be read by every user
    of this machine. Returns whether it was loose. A warning, not a refusal:
    the store keeps running, and the line says what to do."""
    try:
        mode = Path(path).stat().st_mode & 0o777
    except OSError:
        return False
    if mode & 0o004:
        log.warning("%s %s can be read by every user of this machine (mode %03o): "
                    "chmod 600 %s (or 640, group of the service)", what, path, mode, path)
        return True
    return False


def _surrogates(where: str, node, bad: list) -> None:
    if isinstance(node, str):
        try:
            node.encode("utf-8")
        except UnicodeEncodeError:
            bad.append(where)
    elif isinstance(node, dict):
        for key, value in node.items():
            place = _join(where, str(key).encode("utf-8", "backslashreplace").decode())
            _surrogates(place, key, bad)
            _surrogates(place, value, bad)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _surrogates(f"{where}[{i}]", value, bad)


# What a field may hold. `secret` is a shared key written in the file,
# `secret_file` one read from the file it names; `list` is a list of texts
# (one text alone is taken as a list of one).
KINDS = ("id", "bool", "str", "path", "secret", "secret_file", "int", "num", "tz", "level",
         "list")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_MIN_SECRET = 16


class SettingsError(ProblemsError):
    """A settings file that cannot be used."""


class Field:
    """One setting: its dotted name in the file, what it holds, its range
    (numbers), the attribute it fills (default: the name with `.` -> `_`),
    and whether the file must give it."""

    __slots__ = ("name", "kind", "limits", "attr", "required")

    def __init__(self, name: str, kind: str, limits: tuple | None = None, attr: str | None = None,
                 required: bool = False):
        if kind not in KINDS:
            raise ValueError(f"setting {name}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
        if (kind in ("int", "num")) != (limits is not None):
            raise ValueError(f"setting {name}: numbers, and only numbers, take limits")
        self.name, self.kind, self.limits = name, kind, limits
        self.attr = attr or name.replace(".", "_")
        self.required = required

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.kind!r})"


# The store broker's login: the same keys in every service's settings file.
BROKER_FIELDS = [
    Field("broker.host", "str"),
    Field("broker.port", "int", (1, 65535)),
    Field("broker.user", "str"),
    Field("broker.password", "str"),
    Field("broker.keepalive_s", "int", (5, 600)),
]


class Checker:
    """Collects the problems of one file. `base` is the folder relative
    paths in the file are read from."""

    def __init__(self, base: Path | None = None):
        self.base = Path(base) if base is not None else Path(".")
        self.problems: list[str] = []

    def fail(self, where: str, why: str) -> None:
        self.problems.append(f"{where}: {why}" if where else why)

    def unicode(self, where: str, node) -> bool:
        """Every text in `node` (keys too) can be written as UTF-8. YAML's
        "\\udcff" escape makes a lone surrogate, which passes every other
        check and fails only when a message is encoded: refuse it here,
        with its place."""
        bad = []
        _surrogates(where, node, bad)
        for place in bad[:5]:
            self.fail(place, "has a character that is not valid Unicode (a lone surrogate, "
                             "written as an escape like \\udcff)")
        return not bad

    def mapping(self, where: str, node, what: str = "key: value lines") -> dict:
        if not isinstance(node, dict):
            self.fail(where, f"must be a mapping ({what})")
            return {}
        return node

    def keys(self, where: str, node: dict, allowed) -> None:
        for key in node:
            if key not in allowed:
                self.fail(_join(where, str(key)),
                          f"unknown setting (known: {', '.join(sorted(allowed))})")

    def ident(self, where: str, value) -> bool:
        if not protocol.valid_id(value):
            self.fail(where, f"must be an id of 1-{protocol.MAX_ID} characters "
                             f"A-Z a-z 0-9 . _ -, got {value!r}")
            return False
        return True

    def number(self, where: str, value, lo, hi, integer: bool = False):
        """The value, or None (and a problem) when it is not a number in lo..hi."""
        ok = int if integer else (int, float)
        if not isinstance(value, ok) or isinstance(value, bool) or not lo <= value <= hi:
            what = "a whole number" if integer else "a number"
            self.fail(where, f"must be {what} {lo}..{hi}, got {value!r}")
            return None
        return value

    def one_of(self, where: str, doc: dict, names: tuple) -> bool:
        """Exactly one of `names` is given (a value or the file holding it)."""
        given = [k for k in names if doc.get(k) is not None]
        if len(given) == 1:
            return True
        if given:
            self.fail(where, f"give one of {', '.join(given)}, not both")
        else:
            self.fail(where, f"needs {' or '.join(names)}")
        return False

    def value(self, where: str, kind: str, value, limits=None):
        """One value checked against its kind: (True, the value to use) or
        (False, None) with the problem recorded."""
        bad = (False, None)
        if kind == "id":
            return (True, value) if self.ident(where, value) else bad
        if kind == "bool":
            if not isinstance(value, bool):
                self.fail(where, f"must be true or false, got {value!r}")
                return bad
            return True, value
        if kind in ("int", "num"):
            value = self.number(where, value, *limits, integer=(kind == "int"))
            return (value is not None), value
        if kind == "list":
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not value \
                    or not all(isinstance(v, str) and v for v in value):
                self.fail(where, "must be a list of texts")
                return bad
            return True, value
        if kind == "tz":
            try:
                return True, zoneinfo.ZoneInfo(str(value))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                self.fail(where, f"unknown time zone {value!r} (e.g. Europe/Moscow)")
                return bad
        if kind == "level":
            value = str(value).upper()
            if value not in LEVELS:
                self.fail(where, f"must be {', '.join(LEVELS[:-1])} or {LEVELS[-1]}")
                return bad
            return True, value
        # str, path, secret, secret_file: text first
        if not isinstance(value, str) or not value:
            self.fail(where, "must be a non-empty text")
            return bad
        if kind == "path":
            return True, (self.base / value).resolve()
        if kind == "secret":
            if len(value) < _MIN_SECRET:
                self.fail(where, f"a shared key needs at least {_MIN_SECRET} characters")
                return bad
            return True, value.encode()
        if kind == "secret_file":
            path = self.base / value
            try:
                secret = path.read_bytes().strip()
            except OSError as e:
                self.fail(where, f"cannot read {path}: {e.strerror}")
                return bad
            warn_if_loose(path, f"{where}: the secret file")
            if len(secret) < _MIN_SECRET:
                self.fail(where, f"the key in {path} needs at least {_MIN_SECRET} characters")
                return bad
            return True, secret
        return True, value

    def fields(self, doc, fields: list[Field], where: str = "", lists=()) -> dict:
        """Check a mapping against a table: unknown keys (`lists` are keys
        the caller checks itself), missing required ones, kinds and ranges.
        Returns {attribute: value} of the settings that are given and good."""
        if not isinstance(doc, dict):
            self.fail(where, "must be a mapping of settings")
            return {}
        if not self.unicode(where, doc):
            return {}
        sections: dict[str, set] = {}
        for f in fields:
            head, _, rest = f.name.partition(".")
            sections.setdefault(head, set())
            if rest:
                sections[head].add(rest)
        known = set(sections) | set(lists)
        for key, value in doc.items():
            if key not in known:
                self.keys(where, {key: value}, known)
            elif sections.get(key):
                sub = self.mapping(_join(where, key), value)
                self.keys(_join(where, key), sub, sections[key])
        values = {}
        for f in fields:
            present, value = lookup(doc, f.name)
            if not present or value is None:
                if f.required:
                    self.fail(_join(where, f.name), "is required")
                continue
            if f.kind == "tz":
                ok, zone = self.value(_join(where, f.name), f.kind, value)
                if ok:
                    values[f.attr], values["tz"] = value, zone
                continue
            ok, value = self.value(_join(where, f.name), f.kind, value, f.limits)
            if ok:
                values[f.attr] = value
        return values


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


# libyaml's safe loader where PyYAML has it (Debian's does): the same
# documents and errors, several times faster (a catalogue is re-read on
# every edit, and the fuzz harness parses hundreds of thousands).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str):
    """yaml.safe_load, with libyaml when there is one."""
    return yaml.load(text, Loader=_LOADER)


def read_yaml(path: Path, error=SettingsError):
    """A YAML settings file, or `error([problem])` raised saying why not."""
    path = Path(path)
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise error([f"{path}: cannot read: {e.strerror}"]) from None
    except UnicodeDecodeError as e:
        raise error([f"{path}: is not UTF-8 text ({e.reason} at byte {e.start})"]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise error([f"{path}: not valid YAML{at}: {problem}"]) from None


def clock_span(text) -> tuple[int, int] | None:
    """'08:00-22:30' -> (480, 1350), minutes since midnight; 24:00 is the
    end of the day, and a span may cross midnight ('22:00-06:00'). None if
    the text is not such a span. The catalogue's hours and the alerts'
    opening hours both read spans this way."""
    try:
        start, end = str(text).split("-")
        out = []
        for part in (start, end):
            h, m = part.strip().split(":")
            h, m = int(h), int(m)
            if not (0 <= h <= 24 and 0 <= m < 60 and h * 60 + m <= 1440):
                return None
            out.append(h * 60 + m)
        return out[0], out[1]
    except ValueError:
        return None


def in_span(minute: int, span: tuple[int, int]) -> bool:
    """Is this minute of the day inside [start, end)? A span that ends
    before it starts crosses midnight."""
    start, end = span
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end
