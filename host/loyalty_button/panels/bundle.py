"""The app bundle: the exact set of files one board's panel keeps on its
flash, with a manifest of their sha256s and the firmware version. The
installer copies it (panels/station.py) and checks every file on the device
against the manifest; OTA updates will deliver the same bundle.

    loyalty-button panels bundle --board cyd [--out dist/bundles]

What is in it, for board B:
- `main.py` and `lbboot.mpy` (the boot: slot -> config -> board -> UI ->
  app); they stay at the root of the flash and an update never replaces
  them (docs/ota.md);
- `lbpanel/*.mpy`, the panel core and UI compiled by mpy-cross (a panel
  without PSRAM cannot compile them itself), for a stock image. The
  project's own image freezes the same modules, and main.py puts the frozen
  ones first: loaded from files their bytecode would sit in the heap, and
  the CYD's does not hold it (docs/memory.md). So on that image these
  files are a fallback. An update (docs/ota.md) puts a whole bundle in an
  update slot, whose files come before the frozen ones;
- `boards/__init__.mpy` and `boards/B.mpy`, the board's driver, no other;
- `fonts/*.bin`, the board's fonts only (a stock image has no compiled-in
  fonts and parses these);
- `manifest.json`: name, version, board, per file its sha256 and size, and
  the bundle's id (a sha256 over the list): two builds with one version and
  different files have different ids.

The simulators' touch words (lbpanel/touchwords) stay out: no panel needs
them."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import lbpanel
from lbpanel import boards, ota

from . import firmware_build, fonts

MANIFEST = "manifest.json"
SIM_ONLY = {"lbpanel/touchwords.mpy"}


class BundleError(RuntimeError):
    pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            h.update(block)
    return h.hexdigest()


def _wanted(board: str, compiled: Path) -> list[str]:
    """The bundle's files, relative to the compiled firmware folder."""
    files = ["main.py", "lbboot.mpy"]
    files += sorted(f"lbpanel/{p.name}" for p in (compiled / "lbpanel").glob("*.mpy")
                    if f"lbpanel/{p.name}" not in SIM_ONLY)
    files += ["boards/__init__.mpy", f"boards/{board}.mpy"]
    names = sorted({boards.font_file(role, size)
                    for role, size in boards.get(board)["fonts"].items()})
    files += [f"fonts/{n}" for n in names]
    return files


def build(board: str, out_root: Path, version: str | None = None) -> Path:
    """Build the bundle of `board` into out_root/<board>-<version>/ (made
    anew) and return that folder. version: the firmware's, when not the
    checkout's (tools/package --version)."""
    if board not in boards.BOARDS:
        raise BundleError(f"unknown board {board!r}; known: {', '.join(sorted(boards.BOARDS))}")
    missing = fonts.missing()
    if missing:
        raise BundleError(f"fonts not made yet ({', '.join(missing)}): run tools/fonts")
    version = version or lbpanel.VERSION
    out = Path(out_root) / f"{board}-{version}"
    with tempfile.TemporaryDirectory() as tmp:
        compiled = firmware_build.build(Path(tmp), version)
        files = _wanted(board, compiled)
        absent = [f for f in files if not (compiled / f).exists()]
        if absent:
            raise BundleError(f"the firmware build lacks {', '.join(absent)}")
        if out.exists():
            shutil.rmtree(out)
        for rel in files:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(compiled / rel, out / rel)
    write_manifest(out, board, version, files)
    return out


def write_manifest(folder: Path, board: str, version: str, files) -> dict:
    """The manifest of the files (paths relative to folder) as they are
    now, written into folder."""
    entries = {rel: {"sha256": sha256_file(folder / rel), "size": (folder / rel).stat().st_size}
               for rel in files}
    listing = "".join(f"{rel} {e['sha256']}\n" for rel, e in sorted(entries.items()))
    manifest = {"name": "loyalty-button-panel", "version": version, "board": board,
                "id": hashlib.sha256(listing.encode()).hexdigest()[:16], "files": entries}
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def load(folder: Path) -> dict:
    """The manifest of a bundle folder, checked against the files beside
    it: a bundle that was edited or half copied is refused here, before
    anything goes to a panel."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        board = manifest["board"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BundleError(f"{folder}: not a panel bundle ({e}); build one with "
                          f"'loyalty-button panels bundle --board BOARD'") from None
    outside = [rel for rel in files if not ota.safe_name(rel)]
    if outside:  # the host signs the manifest: it names nothing outside a slot
        raise BundleError(f"{folder}: its manifest names {', '.join(map(repr, outside[:3]))}, "
                          f"outside a panel's update slot; build the bundle again")
    bad = [rel for rel, e in sorted(files.items())
           if not (folder / rel).is_file() or sha256_file(folder / rel) != e["sha256"]]
    if bad:
        raise BundleError(f"{folder}: {len(bad)} file(s) differ from its manifest "
                          f"({', '.join(bad[:3])}); build the bundle again")
    if board not in boards.BOARDS:
        raise BundleError(f"{folder}: unknown board {board!r}")
    return manifest


def cli(args) -> int:
    try:
        out = build(args.board, Path(args.out))
    except BundleError as e:
        print(f"panels bundle: {e}")
        return 2
    manifest = load(out)
    size = sum(e["size"] for e in manifest["files"].values())
    print(f"{len(manifest['files'])} files, {size} bytes, version {manifest['version']}, "
          f"id {manifest['id']}")
    print(out)
    return 0
