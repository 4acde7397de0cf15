"""tools/build-image: the ESP32 image recipe. ESP-IDF and a full
lvgl_micropython checkout cannot exist on this machine, so the tool is run
twice: bare, where it must say what to install; and on a stand-in checkout
(lvgl_micropython's real lib/lv_conf.h from the vendored tarball or the
build cache, a make.py
that records its arguments, ESP-IDF's idf.py as an empty file), where what it
puts into the tree must be what the unix binary the tests run was built
with."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lbpanel import boards
from loyalty_button.panels import fonts, image, lvgl_recipe, lvgl_unix

REPO = Path(__file__).resolve().parents[1]

RECORDING_MAKE = """import json, pathlib, sys
pathlib.Path("argv.json").write_text(json.dumps(sys.argv[1:]))
pathlib.Path("build").mkdir(exist_ok=True)
pathlib.Path("build/lvgl_micropy_ESP32_GENERIC-4.bin").write_bytes(b"\\xe9image")
"""


def _args(**kw):
    ns = dict(board="cyd", lvgl_micropython=None, out=None, print=False)
    ns.update(kw)
    return argparse.Namespace(**ns)


def test_without_esp_idf_it_says_what_to_install(monkeypatch, capsys):
    monkeypatch.delenv("IDF_PATH", raising=False)
    monkeypatch.delenv("LB_LVGL_MICROPYTHON", raising=False)
    run = subprocess.run([str(REPO / ".venv/bin/loyalty-button"), "build-image", "cyd"],
                         capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    assert run.returncode == 2
    assert "cannot build the cyd image on this machine" in run.stderr
    assert "ESP-IDF" in run.stderr and "IDF_PATH" in run.stderr
    assert "lvgl_micropython checkout" in run.stderr
    # ... and the line it would run once they are there.
    assert f"FROZEN_MANIFEST={lvgl_recipe.MANIFEST}" in run.stderr
    assert "DISPLAY=ili9341" in run.stderr
    assert image.cli(_args(board="cyd9")) == 2
    assert "unknown board 'cyd9'" in capsys.readouterr().err


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    root = tmp_path / "lvgl_micropython"
    (root / "lib").mkdir(parents=True)
    tarball = lvgl_unix.vendor_dir() / lvgl_unix.TARBALL
    if tarball.is_file():
        with tarfile.open(tarball) as tar:
            member = tar.getmember("lvgl_micropython/lib/lv_conf.h")
            (root / "lib/lv_conf.h").write_bytes(tar.extractfile(member).read())
    else:
        # A clone away from ../shared/vendor builds from the cache: the
        # cached tree's lv_conf.h (changed already, for every board's fonts)
        # must be changed again for the CYD's alone.
        (root / "lib/lv_conf.h").write_bytes(
            (lvgl_unix.build_dir() / "src/lib/lv_conf.h").read_bytes())
    (root / "lib/micropython/ports/esp32").mkdir(parents=True)
    (root / "make.py").write_text(RECORDING_MAKE)
    idf = tmp_path / "esp-idf"
    (idf / "tools").mkdir(parents=True)
    (idf / "tools/idf.py").write_text("")
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("git", "cmake", "ninja"):
        (tools / name).write_text("#!/bin/sh\nexit 0\n")
        (tools / name).chmod(0o755)
    monkeypatch.setenv("IDF_PATH", str(idf))
    monkeypatch.setenv("PATH", f"{tools}:/usr/bin:/bin")
    return root


def test_the_image_freezes_the_tests_manifest_with_their_lv_conf_and_the_boards_fonts(
        checkout, tmp_path):
    import json
    assert image.cli(_args(lvgl_micropython=str(checkout), out=str(tmp_path / "dist"))) == 0
    argv = json.loads((checkout / "argv.json").read_text())
    assert argv[0] == "esp32" and "BOARD=ESP32_GENERIC" in argv and "DISPLAY=ili9341" in argv
    # The manifest the unix binary freezes is this one too.
    assert f"FROZEN_MANIFEST={lvgl_recipe.MANIFEST}" in argv
    assert f'include("{lvgl_recipe.MANIFEST}")' in lvgl_unix.manifest_text()
    # The CYD's three fonts, compiled in and declared; not the S3's.
    cyd = sorted(f.name for f in (checkout / lvgl_recipe.FONT_SUBDIR).iterdir())
    assert cyd == sorted(fonts.c_name(r, s) + ".c" for r, s in fonts.needed(["cyd"]))
    conf = (checkout / "lib/lv_conf.h").read_text()
    declare = next(line for line in conf.splitlines()
                   if line.split()[:2] == ["#define", "LV_FONT_CUSTOM_DECLARE"])
    assert "LV_FONT_DECLARE(lv_font_lb_text_18)" in declare and "text_34" not in declare
    # Every lv_conf change is the same line as in the unix binary's tree.
    unix_conf = (lvgl_unix.build_dir() / "src/lib/lv_conf.h").read_text().splitlines()
    for name in lvgl_recipe.lv_conf_changes():
        ours = [line.strip() for line in conf.splitlines() if line.split()[:2] == ["#define", name]]
        theirs = [line.strip() for line in unix_conf if line.split()[:2] == ["#define", name]]
        assert ours and ours == theirs, name
    assert (tmp_path / "dist/loyalty-button-panel-cyd.bin").read_bytes() == b"\xe9image"


def test_print_gives_the_line_for_the_s3_board(capsys):
    assert image.cli(_args(board="s3_8048", print=True)) == 0
    line = capsys.readouterr().out
    assert "BOARD=ESP32_GENERIC_S3" in line and "BOARD_VARIANT=SPIRAM_OCT" in line
    assert "INDEV=gt911" in line and sys.executable in line


def test_the_compiled_in_fonts_advance_as_the_bin_files_do():
    """A C font's advances are the .bin's whole pixels (docs/panel-ui.md,
    binding differences): otherwise text on the panel drifts a pixel from
    the reviewed screens. A font made without them is refused, not built."""
    for role, size in fonts.needed():
        c_text = (fonts.C_DIR / (fonts.c_name(role, size) + ".c")).read_text()
        advances = fonts.bin_advances((fonts.fonts_dir() / boards.font_file(role, size))
                                      .read_bytes())
        written = [int(line.split(".adv_w = ")[1].split(",")[0])
                   for line in c_text.splitlines() if ".adv_w = " in line]
        assert written[1:] == [a * 16 for a in advances[1:]], (role, size)
        with pytest.raises(ValueError, match="glyphs"):
            fonts._whole_pixels(c_text, advances[:-1])
