"""Advert images for the panels: PNG or JPEG in, an LVGL 9 image file out
(12-byte header + RGB565 little-endian pixels), scaled to cover the board's
screen and cropped to its centre.

    loyalty-button advert-image --board cyd in.jpg out.bin

Why RGB565 and no compression: the panel streams the file from flash to
the display in bands of a few lines (firmware/lbpanel/lvui.py), so neither
LVGL nor the heap ever holds the whole image. A 320x240 image is 150 KB on
flash and 5 KB of heap while it is drawn. Compressed formats (LVGL's RLE
or LZ4) would need the whole decoded image in RAM."""

from __future__ import annotations

import struct
from pathlib import Path

from lbpanel import adverts as panel_adverts
from lbpanel import boards


class ImageError(ValueError):
    pass


def _rgb565(img) -> bytes:
    import numpy as np
    a = np.asarray(img.convert("RGB"), dtype=np.uint16)
    # Round to the nearest 5/6/5-bit level rather than truncate.
    r = (a[:, :, 0] * 31 + 127) // 255
    g = (a[:, :, 1] * 63 + 127) // 255
    b = (a[:, :, 2] * 31 + 127) // 255
    return ((r << 11) | (g << 5) | b).astype("<u2").tobytes()


def fit(img, width: int, height: int):
    """Scale to cover width x height, crop the centre."""
    from PIL import Image
    scale = max(width / img.width, height / img.height)
    w, h = max(width, round(img.width * scale)), max(height, round(img.height * scale))
    img = img.resize((w, h), Image.LANCZOS)
    left, top = (w - width) // 2, (h - height) // 2
    return img.crop((left, top, left + width, top + height))


def encode(img) -> bytes:
    header = struct.pack(panel_adverts.HEADER, panel_adverts.MAGIC, panel_adverts.CF_RGB565,
                         0, img.width, img.height, img.width * 2, 0)
    return header + _rgb565(img)


def convert(source: Path | bytes, board_name: str) -> bytes:
    """An image file (path or bytes) as the board's full-screen advert."""
    from PIL import Image, UnidentifiedImageError
    import io
    board = boards.get(board_name)
    try:
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        img.load()
    except UnidentifiedImageError as e:
        raise ImageError("not a PNG or JPEG image (Pillow cannot identify it)") from e
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        raise ImageError(f"cannot read it: {e.strerror}") from e
    except OSError as e:  # a cut-off file, say
        raise ImageError(f"not a PNG or JPEG image: {e}") from e
    return encode(fit(img, board["width"], board["height"]))


def sample(width: int, height: int, title: str = "Весенняя распродажа",
           subtitle: str = "−20% на всю выпечку · Spring sale") -> "Image.Image":
    """A made-up advert for demos and screenshots: a gradient and two lines
    in DejaVu Sans."""
    from PIL import Image, ImageDraw, ImageFont
    import numpy as np
    y = np.linspace(0, 1, height)[:, None]
    x = np.linspace(0, 1, width)[None, :]
    r = (40 + 200 * x * (1 - y) + 15).clip(0, 255)
    g = (90 + 120 * y).clip(0, 255) * np.ones_like(x)
    b = (160 + 80 * (1 - x)).clip(0, 255) * np.ones_like(y)
    img = Image.fromarray(np.dstack((r, g, b)).astype("uint8"), "RGB")
    draw = ImageDraw.Draw(img)
    ttf = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
    size = max(12, height // 9)
    while size > 10 and ImageFont.truetype(ttf, size).getlength(title) > width * 0.86:
        size -= 1
    big = ImageFont.truetype(ttf, size)
    small = ImageFont.truetype(ttf.replace("-Bold", ""), max(10, size * 5 // 9))
    draw.ellipse((width * 0.62, height * 0.08, width * 0.95, height * 0.08 + width * 0.33),
                 fill=(250, 200, 60))
    draw.text((width // 14, height * 0.55), title, font=big, fill=(255, 255, 255))
    draw.text((width // 14, height * 0.55 + big.size * 1.4), subtitle, font=small,
              fill=(255, 240, 200))
    return img


def main(args) -> int:
    import sys
    try:
        data = convert(Path(args.source), args.board)
    except (ImageError, ValueError, OSError) as e:
        print(f"{args.source}: {e}", file=sys.stderr)
        return 2
    Path(args.out).write_bytes(data)
    print(f"{args.out}: {len(data)} bytes for {args.board}")
    return 0
