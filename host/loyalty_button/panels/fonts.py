"""Panel fonts: Latin + Cyrillic LVGL fonts made from DejaVu Sans (Debian's
fonts-dejavu-core, a free licence) by the npm tool `lv_font_conv`, in the
sizes each board's data asks for (firmware/lbpanel/boards.py), in two forms:

- `.bin` files a panel parses at boot (`lv.binfont_create_from_buffer`: the
  font then lives in the heap), for images without compiled-in fonts and
  for the CPython simulator;
- C sources (`lv_font_lb_text_14.c`, ...) compiled into the firmware image:
  the font stays in flash and costs no heap (lv.font_lb_text_14, ...).

    tools/fonts [OUT_DIR]      (default build/fonts)

The files are build output, not committed: tools/bootstrap makes them."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from lbpanel import boards

log = logging.getLogger("fonts")

TTF = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
LV_FONT_CONV = "lv_font_conv@1.5.3"
ROOT = Path(__file__).resolve().parents[3]
DEFAULT_OUT = ROOT / "build" / "fonts"
# 4 bits per pixel: 16 levels of anti-aliasing; 2 bpp saves about 45 % but
# the strokes of Cyrillic letters at 14-18 px turn ragged.
BPP = 4


def fonts_dir() -> Path:
    """Where the simulator and the firmware build find the fonts."""
    return Path(os.environ.get("LB_FONTS") or DEFAULT_OUT)


def needed(board_names=None) -> list[tuple[str, int]]:
    """(role, size) of every font the boards (default: all) use, each once
    ("big" stands for the digits-only fonts, "body" for the text ones)."""
    out = set()
    for name in board_names or boards.BOARDS:
        for role, size in boards.get(name)["fonts"].items():
            out.add(("big" if role == "big" else "body", size))
    return sorted(out)


def converter(node_dir: Path) -> str:
    """lv_font_conv from the npm registry, installed once under build/."""
    tool = node_dir / "node_modules" / ".bin" / "lv_font_conv"
    if not tool.exists():
        npm = shutil.which("npm")
        if not npm:
            raise RuntimeError("npm is missing: install Debian's nodejs and npm (tools/bootstrap does)")
        node_dir.mkdir(parents=True, exist_ok=True)
        log.info("installing %s with npm", LV_FONT_CONV)
        subprocess.run([npm, "install", "--prefix", str(node_dir), "--no-audit", "--no-fund",
                        "--silent", LV_FONT_CONV], check=True)
    return str(tool)


def _ranges(role: str) -> str:
    return ",".join("0x%X-0x%X" % (lo, hi) for lo, hi in boards.font_ranges(role))


def build(out_dir: Path | None = None, node_dir: Path | None = None) -> list[Path]:
    out_dir = Path(out_dir or fonts_dir())
    if not TTF.exists():
        raise RuntimeError(f"{TTF} is missing: apt-get install fonts-dejavu-core")
    tool = converter(Path(node_dir or ROOT / "build" / "node"))
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for role, size in needed():
        target = out_dir / boards.font_file(role, size)
        if _fresh(target, role, size):
            made.append(target)
            continue
        subprocess.run([tool, "--font", str(TTF), "-r", _ranges(role), "--size", str(size),
                        "--bpp", str(BPP), "--format", "bin", "--no-compress",
                        "-o", str(target)], check=True, capture_output=True)
        _stamp(target).write_text(_recipe(role, size))
        made.append(target)
    return made


def _recipe(role: str, size: int) -> str:
    """What a .bin font is made from: made again when this changes (a glyph
    range added to boards.TEXT_RANGES, another converter)."""
    return f"{LV_FONT_CONV} -r {_ranges(role)} --size {size} --bpp {BPP}\n"


def _stamp(target: Path) -> Path:
    return target.with_name(target.name + ".recipe")


def _fresh(target: Path, role: str, size: int) -> bool:
    stamp = _stamp(target)
    return (target.exists() and target.stat().st_mtime >= TTF.stat().st_mtime
            and stamp.exists() and stamp.read_text() == _recipe(role, size))


C_DIR = ROOT / "build" / "fonts-c"


def c_name(role: str, size: int) -> str:
    """The C variable (and file stem) of a compiled-in font."""
    return "lv_" + boards.font_symbol(role, size)


def _c_args(role: str, size: int) -> list[str]:
    # Output named relative to its folder, so the file's "Opts:" line (and
    # the build cache key made from it) is the same in every clone.
    name = c_name(role, size)
    return ["--font", str(TTF), "-r", _ranges(role), "--size", str(size), "--bpp", str(BPP),
            "--format", "lvgl", "--no-compress", "--lv-font-name", name, "-o", name + ".c"]


# Marks a C font whose advances were set from the .bin file (see _whole_pixels).
_WHOLE_PIXELS = " * Advances: whole pixels, as in the .bin file"


def _bin_tables(data: bytes) -> dict[str, int]:
    """Where each table of an lv_font_conv .bin font starts: 4 bytes of
    size, 4 of name, the rest."""
    tables = {}
    off = 0
    while off + 8 <= len(data):
        size = int.from_bytes(data[off:off + 4], "little")
        if size < 8:
            raise ValueError(f"bad table size {size} at {off}")
        tables[data[off + 4:off + 8].decode("ascii")] = off
        off += size
    return tables


def bin_line_height(data: bytes) -> int:
    """An lv_font_conv .bin font's line height, as LVGL's loader sets it:
    ascent - descent from the head table."""
    head = _bin_tables(data)["head"]
    ascent = int.from_bytes(data[head + 16:head + 18], "little", signed=True)
    descent = int.from_bytes(data[head + 18:head + 20], "little", signed=True)
    return ascent - descent


def bin_advances(data: bytes) -> list[int]:
    """Each glyph's advance (whole pixels, glyph id order, id 0 first) from
    an lv_font_conv .bin font: its head table says how many bits the
    advance takes at the start of each glyph in the glyf table (format 0:
    whole pixels, as lv_font_conv writes a font without kerning)."""
    tables = _bin_tables(data)
    head, loca, glyf = tables["head"], tables["loca"], tables["glyf"]
    if data[head + 36] != 0:
        raise ValueError("advances are not in whole pixels (a font with kerning)")
    loc32, adv_bits = data[head + 34], data[head + 40]
    count = int.from_bytes(data[loca + 8:loca + 12], "little")
    width = 4 if loc32 else 2
    advances = []
    for i in range(count):
        at = loca + 12 + i * width
        start = glyf + int.from_bytes(data[at:at + width], "little")
        # The glyph's fields are packed big-endian, bit by bit.
        bits = int.from_bytes(data[start:start + 4], "big")
        advances.append(bits >> (32 - adv_bits) if adv_bits else 0)
    return advances


def _whole_pixels(c_text: str, advances: list[int]) -> str:
    """lv_font_conv writes a C font's advances in 1/16 px and a .bin font's
    (without kerning, as DejaVu comes out) in whole pixels, so text set in
    one drifts from the other by a pixel here and there. The C font takes
    the .bin's advances: the panel then draws exactly what the CPython
    simulator and the reviewed reference screens show."""
    out = []
    glyph = 0
    for line in c_text.splitlines(keepends=True):
        if ".adv_w = " in line and "id = 0 reserved" in line:
            glyph += 1  # no glyph: the .bin's loca points it at glyph 1
        elif ".adv_w = " in line and ".bitmap_index" in line:
            head, rest = line.split(".adv_w = ", 1)
            old, tail = rest.split(",", 1)
            if glyph >= len(advances):
                raise ValueError("the C font has more glyphs than the .bin")
            if abs(int(old) - advances[glyph] * 16) > 16:
                raise ValueError(f"glyph {glyph}: advance {old}/16 px against "
                                 f"{advances[glyph]} px in the .bin")
            line = f"{head}.adv_w = {advances[glyph] * 16},{tail}"
            glyph += 1
        elif line.startswith(" * Opts: "):
            line = line + _WHOLE_PIXELS + "\n"
        out.append(line)
    if glyph != len(advances):
        raise ValueError(f"the C font has {glyph} glyphs, the .bin {len(advances)}")
    return "".join(out)


def build_c(fonts: list[tuple[str, int]], out_dir: Path | None = None,
            node_dir: Path | None = None) -> list[Path]:
    """C sources of the given (role, size) fonts; a file is made again when
    the options it was made with (its "Opts:" line) are not today's. Their
    advances come from the .bin files (build() makes them first)."""
    out_dir = Path(out_dir or C_DIR)
    if not TTF.exists():
        raise RuntimeError(f"{TTF} is missing: apt-get install fonts-dejavu-core")
    tool = None
    out_dir.mkdir(parents=True, exist_ok=True)
    bins = {p.name: p for p in build(node_dir=node_dir)}
    made = []
    for role, size in fonts:
        args = _c_args(role, size)
        target = out_dir / args[-1]
        head = [" * Opts: " + " ".join(args), _WHOLE_PIXELS]
        if not (target.exists() and target.read_text().splitlines()[3:5] == head):
            tool = tool or converter(Path(node_dir or ROOT / "build" / "node"))
            subprocess.run([tool, *args], cwd=out_dir, check=True, capture_output=True)
            advances = bin_advances(bins[boards.font_file(role, size)].read_bytes())
            target.write_text(_whole_pixels(target.read_text(), advances))
        made.append(target)
    return made


def missing(out_dir: Path | None = None) -> list[str]:
    """Fonts not made yet, or made from another recipe (see _recipe)."""
    out_dir = Path(out_dir or fonts_dir())
    return [boards.font_file(r, s) for r, s in needed()
            if not _fresh(out_dir / boards.font_file(r, s), r, s)]
