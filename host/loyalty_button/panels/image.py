"""The panel's ESP32 firmware image: lvgl_micropython built for a board
with the project's frozen manifest, lv_conf changes and compiled-in fonts
(lvgl_recipe.py, the same inputs as the unix simulator binary the tests
run), by lvgl_micropython's own make.py.

    tools/build-image BOARD [--lvgl-micropython DIR] [--print]

It needs what make.py needs for an ESP32: a full lvgl_micropython checkout
(the vendored tarball holds only the unix port) and ESP-IDF, the version
lvgl_micropython's builder pins, with IDF_PATH set (or ESP-IDF in the
checkout's lib/esp-idf, where make.py puts it when it fetches it). Neither
exists on this project's machines; there the tool says what to install and
exits 2. With --print it prepares nothing and prints the build line."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from lbpanel import boards

from .lvgl_recipe import MANIFEST, BuildError, font_sources, prepare_tree

# make.py's arguments per board. DISPLAY and INDEV freeze lvgl_micropython's
# drivers the board modules (firmware/boards/) import; the CYD reads its
# XPT2046 itself, so it needs no INDEV.
BUILD_ARGS = {
    "cyd": ["BOARD=ESP32_GENERIC", "--flash-size=4", "DISPLAY=ili9341"],
    "s3_8048": ["BOARD=ESP32_GENERIC_S3", "BOARD_VARIANT=SPIRAM_OCT", "--flash-size=16",
                "DISPLAY=rgb_display", "INDEV=gt911"],
}
# The chip of each board, as esptool names it, and where lvgl_micropython's
# merged image (build/lvgl_micropy_<BOARD>-<flash>.bin) goes: its make.py
# prints the same esptool line (write_flash --erase-all 0x0).
CHIPS = {"cyd": "esp32", "s3_8048": "esp32s3"}
IMAGE_OFFSET = 0x0
CHECKOUT_URL = "https://github.com/lvgl-micropython/lvgl_micropython"


def build_command(board: str) -> list[str]:
    """make.py's command line for a board (run in the checkout)."""
    if board not in BUILD_ARGS:
        raise BuildError(f"no image recipe for board {board!r}; known: {', '.join(sorted(BUILD_ARGS))}")
    return [sys.executable, "make.py", "esp32", *BUILD_ARGS[board], f"FROZEN_MANIFEST={MANIFEST}"]


def idf_path(checkout: Path | None) -> Path | None:
    env = os.environ.get("IDF_PATH")
    for candidate in ([Path(env)] if env else []) + ([checkout / "lib/esp-idf"] if checkout else []):
        if (candidate / "tools" / "idf.py").is_file():
            return candidate
    return None


def missing(checkout: Path | None) -> list[str]:
    """What this machine lacks to build an image, each with what to do."""
    out = []
    if checkout is None or not (checkout / "make.py").is_file():
        where = f" ({checkout} has no make.py)" if checkout else ""
        out.append(f"an lvgl_micropython checkout{where}: git clone {CHECKOUT_URL}, then pass "
                   f"--lvgl-micropython DIR or set LB_LVGL_MICROPYTHON. The vendored "
                   f"lvgl-micropython-unix-src.tar.xz holds only the unix port.")
    elif not (checkout / "lib/micropython/ports/esp32").is_dir():
        out.append(f"{checkout}/lib/micropython has no ports/esp32: run git submodule update "
                   f"--init in the checkout (make.py also does it when online)")
    if idf_path(checkout) is None:
        out.append("ESP-IDF (the version lvgl_micropython's builder/esp32.py pins): install it "
                   "(Espressif's install.sh esp32,esp32s3) and set IDF_PATH, or let make.py "
                   "fetch it into the checkout's lib/esp-idf when online")
    for tool, package in (("git", "git"), ("cmake", "cmake"), ("ninja", "ninja-build")):
        if shutil.which(tool) is None:
            out.append(f"{tool}: apt-get install {package}")
    return out


def cli(args) -> int:
    board = args.board
    try:
        boards.get(board)
        command = build_command(board)
    except (ValueError, BuildError) as e:
        print(f"build-image: {e}", file=sys.stderr)
        return 2
    checkout = args.lvgl_micropython or os.environ.get("LB_LVGL_MICROPYTHON")
    checkout = Path(checkout).resolve() if checkout else None
    if args.print:
        print(f"cd {checkout or '<lvgl_micropython checkout>'} && {shlex.join(command)}")
        return 0
    lacking = missing(checkout)
    if lacking:
        print(f"cannot build the {board} image on this machine; missing:", file=sys.stderr)
        for item in lacking:
            print(f"  - {item}", file=sys.stderr)
        print(f"the build line, once they are there:\n  {shlex.join(command)}", file=sys.stderr)
        return 2
    try:
        prepare_tree(checkout, font_sources([board]))
    except BuildError as e:
        print(f"build-image: {e}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.setdefault("IDF_PATH", str(idf_path(checkout)))
    print(shlex.join(command), file=sys.stderr)
    run = subprocess.run(command, cwd=checkout, env=env)
    if run.returncode:
        print(f"build-image: make.py failed ({run.returncode})", file=sys.stderr)
        return 2
    images = sorted((checkout / "build").glob("lvgl_micropy_*.bin"), key=lambda p: p.stat().st_mtime)
    if not images:
        print("build-image: make.py made no build/lvgl_micropy_*.bin", file=sys.stderr)
        return 2
    dist = Path(args.out or "dist")
    dist.mkdir(parents=True, exist_ok=True)
    target = dist / f"loyalty-button-panel-{board}.bin"
    shutil.copy(images[-1], target)
    print(target)
    return 0
