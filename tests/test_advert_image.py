"""The advert image tool: PNG and JPEG in, the panel's LVGL 9 RGB565 file
out, checked by the panel's own header reader."""

from __future__ import annotations

import argparse

import pytest
from PIL import Image

from lbpanel import adverts as panel_adverts
from loyalty_button.adverts import image as advert_image


@pytest.mark.parametrize("board,size", [("cyd", (320, 240)), ("s3_8048", (800, 480))])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_photo_becomes_a_full_screen_rgb565_file(tmp_path, board, size, fmt):
    src = tmp_path / ("in." + fmt.lower())
    # A portrait picture: scaled to cover the screen, the centre kept.
    img = Image.new("RGB", (300, 900), (255, 0, 0))
    img.paste((0, 0, 255), (0, 300, 300, 600))
    img.save(src, fmt)
    data = advert_image.convert(src, board)
    out = tmp_path / "out.bin"
    out.write_bytes(data)
    assert panel_adverts.read_header(str(out)) == size
    assert len(data) == 12 + size[0] * size[1] * 2
    # The middle band (blue) fills the screen: 0x001F in RGB565.
    centre = 12 + ((size[1] // 2) * size[0] + size[0] // 2) * 2
    px = int.from_bytes(data[centre:centre + 2], "little")
    assert px >> 11 <= 1 and (px >> 5) & 0x3F <= 2 and px & 0x1F >= 30


def test_not_an_image_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "advert.png"
    bad.write_bytes(b"this is not a picture")
    with pytest.raises(advert_image.ImageError):
        advert_image.convert(bad, "cyd")
    args = argparse.Namespace(source=str(bad), out=str(tmp_path / "o.bin"), board="cyd")
    assert advert_image.main(args) == 2
    assert "not a PNG or JPEG" in capsys.readouterr().err
    assert not (tmp_path / "o.bin").exists()


def test_a_missing_file_is_named_as_missing_not_as_a_bad_picture(tmp_path, capsys):
    args = argparse.Namespace(source=str(tmp_path / "nowhere.png"), out=str(tmp_path / "o.bin"),
                              board="cyd")
    assert advert_image.main(args) == 2
    err = capsys.readouterr().err
    assert "cannot read it: No such file or directory" in err and "PNG" not in err
