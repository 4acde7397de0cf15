"""Panel fonts: Latin + Cyrillic LVGL `.bin` fonts made from DejaVu Sans
(Debian's fonts-dejavu-core, a free licence) by the npm tool `lv_font_conv`,
in the sizes each board's data asks for (firmware/lbpanel/boards.py).

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


def needed() -> list[tuple[str, int]]:
    """(role, size) of every font file some board uses, each once ("big"
    stands for the digits-only files, "body" for the text ones)."""
    out = set()
    for board in boards.BOARDS.values():
        for role, size in board["fonts"].items():
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
        if target.exists() and target.stat().st_mtime >= TTF.stat().st_mtime:
            made.append(target)
            continue
        subprocess.run([tool, "--font", str(TTF), "-r", _ranges(role), "--size", str(size),
                        "--bpp", str(BPP), "--format", "bin", "--no-compress",
                        "-o", str(target)], check=True, capture_output=True)
        made.append(target)
    return made


def missing(out_dir: Path | None = None) -> list[str]:
    out_dir = Path(out_dir or fonts_dir())
    return [boards.font_file(r, s) for r, s in needed() if not (out_dir / boards.font_file(r, s)).exists()]
