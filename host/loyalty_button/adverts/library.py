"""The store's adverts on the host: a folder of PNG/JPEG pictures and its
playlist.yaml, converted per board into the panels' image format, served
by the POS HTTP listener at /adverts/<board>/<sha256>.bin, and announced to
each panel in its retained manifest (docs/adverts.md).

    adverts/playlist.yaml
      adverts:
        - {id: spring, file: spring.jpg, seconds: 8}
        - {id: bakery, file: bakery.png, seconds: 10, panels: [till-1, till-2]}

The folder is polled: a changed playlist or picture is picked up without a
restart. A playlist that does not parse is refused as a whole and the last
good one stays in force (like the question catalogue). A picture that
cannot be read is left out of the manifests, logged, counted, and listed in
the concentrator's status; the other adverts go on."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from lbpanel import boards, protocol

from . import image as advert_image
from ..loglimit import LogLimiter
from ..settings import Checker, Field, SettingsError

log = logging.getLogger(__name__)

PLAYLIST = "playlist.yaml"
SECONDS = (1, 3600)          # the panel's own limit for duration_s
MAX_PICTURE = 40 << 20       # a bigger source file is a mistake, not an advert
_NAME = re.compile(r"^[0-9a-f]{64}\.bin$")


class PlaylistError(SettingsError):
    """An advert playlist that cannot be used."""


_ENTRY = [Field("id", "id", required=True), Field("file", "str", required=True),
          Field("seconds", "int", SECONDS, required=True)]  # plus `panels`, checked by hand


@dataclass(frozen=True)
class Entry:
    id: str
    file: str
    seconds: int
    panels: frozenset | None = None   # None: every panel


def parse_playlist(doc, source: str = PLAYLIST) -> list[Entry]:
    """Check a playlist document; every problem is listed with its place."""
    if doc is None:
        doc = {"adverts": []}   # an empty file: no adverts
    if not isinstance(doc, dict) or set(doc) - {"adverts"}:
        raise PlaylistError([f"{source}: must be a mapping with one key, 'adverts', "
                             "holding a list of {id, file, seconds}"])
    items = doc.get("adverts") or []
    if not isinstance(items, list):
        raise PlaylistError([f"{source}: adverts: must be a list of {{id, file, seconds}}"])
    check, entries, seen = Checker(), [], set()
    if not check.unicode(source, doc):
        raise PlaylistError(check.problems)
    for n, item in enumerate(items, 1):
        where = f"{source}: adverts[{n}]"
        v = check.fields(item, _ENTRY, where, lists=("panels",))
        if not isinstance(item, dict):
            continue
        ident, file = v.get("id"), v.get("file")
        if ident in seen:
            check.fail(f"{where}.id", f"{ident!r} is used twice")
        seen.add(ident)
        if file is not None and ("/" in file or "\\" in file or file.startswith(".")):
            check.fail(f"{where}.file", f"must be a picture's name in the adverts folder "
                                        f"(no folders), got {file!r}")
        panels = item.get("panels")
        if panels is not None and (not isinstance(panels, list) or not panels
                                   or not all(protocol.valid_id(p) for p in panels)):
            check.fail(f"{where}.panels", f"must be a list of panel ids, got {panels!r}")
            panels = None
        entries.append(Entry(ident, file, v.get("seconds"),
                             frozenset(panels) if panels else None))
    # A panel keeps at most MAX_ADVERTS in its manifest: check the busiest.
    common = sum(1 for e in entries if e.panels is None)
    named = Counter(p for e in entries if e.panels for p in e.panels)
    busiest = max([common] + [common + n for n in named.values()])
    if busiest > protocol.MAX_ADVERTS:
        check.fail(source, f"a panel would get {busiest} adverts; a panel plays at most "
                           f"{protocol.MAX_ADVERTS} (split them with 'panels:')")
    if check.problems:
        raise PlaylistError(check.problems)
    return entries


def _stat(path: Path):
    try:
        st = path.stat()
        return (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        return None


class AdvertLibrary:
    """The playlist in force, its pictures converted per board, and the
    files the HTTP listener may serve. `refresh` and `items` read and
    convert files: call them from a worker thread, never the event loop."""

    def __init__(self, folder: Path, cache: Path, counters: Counter | None = None):
        self.folder = Path(folder)
        self.cache = Path(cache)
        self.counters = counters if counters is not None else Counter()
        self.limit = LogLimiter(logger=log)
        self.entries: list[Entry] = []
        self.error: str | None = None       # why the playlist on disk is refused
        self.problems: dict[str, str] = {}  # advert id -> why it is left out
        self._playlist_stat = "unread"
        self._failed_stat = None
        self._pictures = None
        # (board, file, stat) -> item fields, or the reason it failed
        self._converted: dict[tuple, dict | str] = {}
        self._lock = threading.Lock()

    # --- what is on disk ------------------------------------------------------

    def refresh(self) -> bool:
        """Read the playlist again if it changed. True when the playlist in
        force or one of its pictures changed (manifests must be redone)."""
        with self._lock:
            changed = False
            path = self.folder / PLAYLIST
            stat = _stat(path)
            if stat != self._playlist_stat and stat != self._failed_stat:
                changed = self._load(path, stat)
            pictures = tuple(_stat(self.folder / e.file) for e in self.entries)
            if pictures != self._pictures:
                self._pictures = pictures
                changed = True
            return changed

    def _load(self, path: Path, stat) -> bool:
        if stat is None:
            if self._playlist_stat == "unread":
                log.warning("adverts: no %s in %s yet: the panels show no adverts", PLAYLIST,
                            self.folder)
            self._playlist_stat = None
            self.error = None
            was, self.entries = self.entries, []
            return bool(was)
        try:
            try:
                doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as e:
                raise PlaylistError([f"{path}: cannot read: {e}"]) from None
            except yaml.YAMLError as e:
                raise PlaylistError([f"{path}: not valid YAML: {e}"]) from None
            entries = parse_playlist(doc, str(path))
        except PlaylistError as e:
            self._failed_stat = stat
            self.error = str(e)
            self.counters["adverts_playlist_rejected"] += 1
            log.error("adverts: playlist refused, the last good one (%d adverts) stays: %s",
                      len(self.entries), "; ".join(e.problems))
            return False
        self._playlist_stat, self._failed_stat, self.error = stat, None, None
        if entries == self.entries:
            return False
        self.entries = entries
        ids = {e.id for e in entries}
        self.problems = {k: v for k, v in self.problems.items() if k in ids}
        self.counters["adverts_playlist_loaded"] += 1
        log.info("adverts: playlist of %d (%s)", len(entries),
                 ", ".join(f"{e.id} {e.seconds}s" for e in entries) or "empty")
        return True

    # --- per board --------------------------------------------------------------

    def items(self, board: str, panel: str) -> list[dict]:
        """The manifest items for one panel on one board, converting what is
        not converted yet. Pictures that fail are left out (see problems)."""
        with self._lock:
            out = []
            for entry in self.entries:
                if entry.panels is not None and panel not in entry.panels:
                    continue
                got = self._convert(board, entry)
                if isinstance(got, dict):
                    out.append({"id": entry.id, **got, "duration_s": entry.seconds})
            return out

    def _convert(self, board: str, entry: Entry):
        src = self.folder / entry.file
        key = (board, entry.file, _stat(src))
        got = self._converted.get(key)
        if got is None:
            try:
                got = self._write(board, src)
            except (OSError, ValueError) as e:
                got = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                self.counters["adverts_picture_bad"] += 1
                self.limit("adverts_picture_bad", logging.ERROR,
                           "adverts: %s (%s) left out for %s: %s", entry.id, entry.file, board,
                           got)
            self._converted[key] = got
        if isinstance(got, str):
            self.problems[entry.id] = f"{entry.file}: {got}"
        else:
            self.problems.pop(entry.id, None)
        return got

    def _write(self, board: str, src: Path) -> dict:
        if src.stat().st_size > MAX_PICTURE:
            raise ValueError(f"{src.stat().st_size} bytes; pictures over {MAX_PICTURE >> 20} MB "
                             "are refused")
        data = advert_image.convert(src.read_bytes(), board)
        sha = hashlib.sha256(data).hexdigest()
        folder = self.cache / board
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{sha}.bin"
        if not final.exists():
            tmp = folder / f".{sha}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, final)   # a reader never sees half a file
        self.counters["adverts_converted"] += 1
        spec = boards.get(board)
        log.info("adverts: %s converted for %s (%d bytes, %s)", src.name, board, len(data),
                 sha[:12])
        return {"sha256": sha, "size": len(data), "w": spec["width"], "h": spec["height"]}

    def prune(self) -> int:
        """Delete converted files no current picture needs. Returns how many."""
        with self._lock:
            files = {e.file for e in self.entries}
            self._converted = {key: v for key, v in self._converted.items()
                               if key[1] in files and key[2] == _stat(self.folder / key[1])}
            keep = {(key[0], f"{v['sha256']}.bin") for key, v in self._converted.items()
                    if isinstance(v, dict)}
            gone = 0
            for folder in self.cache.glob("*"):
                for f in folder.glob("*.bin"):
                    if (folder.name, f.name) not in keep:
                        f.unlink(missing_ok=True)
                        gone += 1
            return gone

    def file(self, board: str, name: str) -> Path | None:
        """A converted file the HTTP listener may serve, or None."""
        if board not in boards.BOARDS or not _NAME.match(name):
            return None
        path = self.cache / board / name
        return path if path.is_file() else None

    def status(self) -> dict:
        return {"folder": str(self.folder), "error": self.error,
                "playlist": [e.id for e in self.entries],
                "left_out": dict(sorted(self.problems.items()))}
