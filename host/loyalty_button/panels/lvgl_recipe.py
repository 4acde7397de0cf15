"""What a panel's lvgl_micropython firmware is built from, shared by the
unix simulator binary (lvgl_unix.py) and the ESP32 images (image.py,
tools/build-image), so the tests run what an image holds:

- the frozen manifest, firmware/manifest.py (bytecode in flash);
- the lv_conf.h changes, hardware/lvgl/lv_conf.changes;
- the board's fonts as C (panels/fonts.py), copied into LVGL's source tree
  and declared through LV_FONT_CUSTOM_DECLARE: they are then
  lv.font_lb_text_14 and so on, read from flash, costing no heap."""

from __future__ import annotations

import shutil
from pathlib import Path

from . import fonts
from .firmware_build import FIRMWARE_DIR

ROOT = FIRMWARE_DIR.parent
LV_CONF_CHANGES = ROOT / "hardware" / "lvgl" / "lv_conf.changes"
MANIFEST = FIRMWARE_DIR / "manifest.py"
# Where in lvgl_micropython's tree the fonts go: LVGL's own sources, which
# both its unix Makefile and its ESP32 CMake file compile by wildcard.
FONT_SUBDIR = "lib/lvgl/src/font/lb"


class BuildError(Exception):
    pass


def lv_conf_changes() -> dict[str, str]:
    """NAME -> value from hardware/lvgl/lv_conf.changes."""
    out = {}
    for n, line in enumerate(LV_CONF_CHANGES.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition(" ")
        if not value.strip():
            raise BuildError(f"{LV_CONF_CHANGES}:{n}: want 'NAME value', got {line!r}")
        out[name] = value.strip()
    return out


def apply_lv_conf(text: str, changes: dict[str, str]) -> str:
    """lv_conf.h with each changed #define's value replaced; a name the file
    does not define is an error (a typo would otherwise change nothing)."""
    lines = text.splitlines(keepends=True)
    for name, value in changes.items():
        hits = [i for i, line in enumerate(lines)
                if line.split()[:2] == ["#define", name]]
        if not hits:
            raise BuildError(f"lv_conf.h has no '#define {name}' to change")
        for i in hits:
            indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
            lines[i] = f"{indent}#define {name} {value}\n"
    return "".join(lines)


def font_sources(board_names) -> list[Path]:
    """The C fonts the boards use, made (or found up to date) in build/fonts-c."""
    try:
        return fonts.build_c(fonts.needed(board_names))
    except (RuntimeError, OSError) as e:
        raise BuildError(f"cannot make the C fonts: {e}") from e


def changes_for(font_files: list[Path]) -> dict[str, str]:
    """The lv_conf changes of a build that compiles these fonts in."""
    changes = lv_conf_changes()
    changes["LV_FONT_CUSTOM_DECLARE"] = " ".join(
        f"LV_FONT_DECLARE({f.stem})" for f in font_files)
    return changes


def prepare_tree(src: Path, font_files: list[Path]) -> None:
    """Put the project's LVGL inputs into an lvgl_micropython tree: the
    fonts into LVGL's sources and the changes into lib/lv_conf.h."""
    dest = src / FONT_SUBDIR
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in font_files:
        shutil.copy(f, dest / f.name)
    conf = src / "lib/lv_conf.h"
    conf.write_text(apply_lv_conf(conf.read_text(), changes_for(font_files)))


def manifest_text() -> str:
    """An image's frozen manifest: the interpreter's asyncio (part of every
    ESP32 port manifest) and the firmware's own manifest."""
    return f'include("$(MPY_DIR)/extmod/asyncio")\ninclude("{MANIFEST}")\n'
