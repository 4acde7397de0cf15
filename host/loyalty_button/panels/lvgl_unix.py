"""lvgl_micropython's unix port, built here offline: the real MicroPython
with LVGL bound in by the same generator as the ESP32 image, 32-bit like an
ESP32, with the panel firmware frozen in by firmware/manifest.py and LVGL
configured by hardware/lvgl/lv_conf.changes (both shared with the ESP32
image build). No SDL: the panel's display is made from MicroPython
(sim/lvgl_display.py), headless.

The sources come from ../shared/vendor/lvgl-micropython-unix-src.tar.xz
(pinned commits, see its SOURCES.txt). A build lives in a cache outside the
clone (`$LB_CACHE`, default ~/.cache/loyalty-button), keyed on the tarball,
this recipe and the lv_conf changes: the first build takes minutes, later
ones only refreeze the firmware when it changed (make does that). The
binary is copied into the clone (build/lvgl_micropython).

    loyalty-button build-lvgl-unix      # prints the binary's path

What lvgl_micropython's own make.py does for the unix port is done here by
calling its builder functions, leaving out what needs the network (git
submodules, SDL's cmake build, micropython-lib)."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .firmware_build import FIRMWARE_DIR
from .lvgl_recipe import (LV_CONF_CHANGES, MANIFEST, BuildError, font_sources, manifest_text,
                           prepare_tree)

__all__ = ["BuildError", "MANIFEST", "build", "binary_path", "manifest_text"]

log = logging.getLogger(__name__)

ROOT = FIRMWARE_DIR.parent
TARBALL = "lvgl-micropython-unix-src.tar.xz"
TARBALL_SHA256 = "d6832913d118295ae77e6c56d317e65f9a3069befe2d9666250bb92b90290bba"
# Bump when the recipe below changes in a way that needs a clean build.
RECIPE = 1
# The interpreter's default heap; a panel is run with -X heapsize=... .
DEFAULT_HEAP = 4 * 1024 * 1024

_STUB_SDL = """// No SDL in the headless simulator: the display is made from MicroPython.
#include "machine_sdl.h"
void init_sdl(void) {}
void deinit_sdl(void) {}
"""


def vendor_dir() -> Path:
    return Path(os.environ.get("LB_VENDOR") or ROOT.parent / "shared" / "vendor")


def cache_dir() -> Path:
    return Path(os.environ.get("LB_CACHE") or Path.home() / ".cache" / "loyalty-button")


# The simulator runs either board: every board's fonts are compiled in.
BOARDS = ("cyd", "s3_8048")


def _key(font_files: list[Path]) -> str:
    h = hashlib.sha256()
    h.update(f"{TARBALL_SHA256} recipe {RECIPE} heap {DEFAULT_HEAP}\n".encode())
    h.update(LV_CONF_CHANGES.read_bytes())
    for f in font_files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def build_dir(font_files: list[Path] | None = None) -> Path:
    return cache_dir() / f"lvgl-unix-{_key(font_files or font_sources(BOARDS))}"


def binary_path() -> Path:
    """This clone's binary. The build tree in the cache is shared by every
    clone, but the firmware frozen into it is each clone's own: make
    refreezes it for whichever clone builds, and the result is copied here."""
    return ROOT / "build" / "lvgl_micropython"


def _unpack(dest: Path) -> None:
    tarball = vendor_dir() / TARBALL
    if not tarball.is_file():
        raise BuildError(
            f"{tarball} is missing: it holds lvgl_micropython's sources (pinned commits in "
            f"../shared/vendor/README.md). Put it there, or set LB_VENDOR to its folder.")
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if digest != TARBALL_SHA256:
        raise BuildError(f"{tarball}: sha256 {digest}, expected {TARBALL_SHA256}")
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".unpack-"))
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp, filter="data")
    (tmp / "lvgl_micropython").rename(dest)
    shutil.rmtree(tmp)


def _prepare(src: Path, font_files: list[Path]) -> None:
    """Patch the unix port as lvgl_micropython's make.py would, headless."""
    cwd = os.getcwd()
    os.chdir(src)
    sys.path.insert(0, str(src))
    try:
        from builder import copy_micropy_updates, update_mphalport
        from builder import unix
        unix.heap_size = DEFAULT_HEAP
        update_mphalport("unix")
        for step in (unix.update_makefile, unix.update_modmachine, unix.update_main,
                     unix.update_mpconfigvariant_common, unix.update_input,
                     unix.update_unix_mphal):
            step()
        copy_micropy_updates("unix")
    finally:
        sys.path.remove(str(src))
        for name in [m for m in sys.modules if m == "builder" or m.startswith("builder.")]:
            del sys.modules[name]
        os.chdir(cwd)
    port = src / "lib/micropython/ports/unix"
    (port / "machine_sdl.c").write_text(_STUB_SDL)
    prepare_tree(src, font_files)
    (src / "build").mkdir(exist_ok=True)
    (src / "build/lvgl_header.h").write_text(
        f'#include "{src}/lib/lvgl/lvgl.h"\n#include "{src}/lib/lvgl/src/lvgl_private.h"\n')
    # lcd_bus's unix driver needs SDL: out of the user modules.
    (src / "ext_mod_unused").mkdir(exist_ok=True)
    (src / "ext_mod/lcd_bus").rename(src / "ext_mod_unused/lcd_bus")
    # The unix variants' manifests pull micropython-lib, which is not here.
    (src / "no-mpy-lib").mkdir(exist_ok=True)
    (src / "no-mpy-lib/README.md").write_text("micropython-lib is not used\n")


def _manifest(src: Path) -> Path:
    path = src / "build" / "unix_manifest.py"
    text = manifest_text()
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def make_args(src: Path) -> list[str]:
    return ["make", "-C", str(src / "lib/micropython/ports/unix"), f"-j{os.cpu_count() or 2}",
            "VARIANT=standard", "MICROPY_FORCE_32BIT=1", "LV_PORT=unix", "GEN_SCRIPT=python",
            f"USER_C_MODULES={src / 'ext_mod'}", f"FROZEN_MANIFEST={_manifest(src)}",
            f"MPY_LIB_DIR={src / 'no-mpy-lib'}", "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0",
            "MICROPY_SSL_MBEDTLS=0", "MICROPY_PY_FFI=0",
            "LV_CFLAGS=-DMICROPY_COLOR_DEPTH=16",
            "CFLAGS_EXTRA=-Wno-sign-compare -Wno-unused-function -Wno-double-promotion "
            "-Wno-missing-field-initializers -Wno-unterminated-string-initialization"]


def build(out=None) -> Path:
    """Build (or bring up to date) the binary; returns its path. `out`: a
    file object for make's output (default: the log at DEBUG)."""
    font_files = font_sources(BOARDS)
    top = build_dir(font_files)
    top.mkdir(parents=True, exist_ok=True)
    with open(top / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time per cache
        src = top / "src"
        if not (top / ".prepared").exists():
            if src.exists():
                shutil.rmtree(src)  # a build cut short: start again
            _unpack(src)
            _prepare(src, font_files)
            (top / ".prepared").write_text("ok\n")
        # The generator appends to lv_mpy.pp: a stale one breaks a rerun.
        for stale in (src / "lib/micropython/ports/unix/build-standard").glob("**/lv_mpy.pp"):
            if not (stale.parent / "lv_mpy.c").exists():
                stale.unlink()
        # mpy-cross on its own first: the port's make would build it with
        # the port's variables (a frozen manifest it cannot link).
        for args in (["make", "-C", str(src / "lib/micropython/mpy-cross"),
                      f"-j{os.cpu_count() or 2}"], make_args(src)):
            run = subprocess.run(args, stdout=out or subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
            if run.returncode:
                tail = "\n".join((run.stdout or "").splitlines()[-30:])
                raise BuildError(f"{' '.join(args[:3])} failed ({run.returncode}):\n{tail}")
        built = src / "lib/micropython/ports/unix/build-standard/micropython"
        binary = binary_path()
        binary.parent.mkdir(parents=True, exist_ok=True)
        tmp = binary.with_suffix(".tmp")
        shutil.copy2(built, tmp)  # under the lock: the one just made for this clone
        tmp.replace(binary)
    return binary


def cli(args) -> int:
    try:
        path = build(out=sys.stderr if args.verbose else None)
    except BuildError as e:
        print(f"cannot build lvgl_micropython's unix port: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0
