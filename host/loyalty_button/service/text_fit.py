"""Will a catalogue's text fit the panels' screens? Measured with the
panels' own fonts (the LVGL .bin files the bundles carry: the same advance
widths the firmware's compiled-in fonts use) in the boxes the panel's
layout gives each text (lbpanel.layout), word-wrapped as a label wraps.

A text that does not fit is a warning with its place ("questions.nps-main
.text (ru): needs 4 lines on the cyd, 2 fit"): the panel shows it cut,
but the catalogue still works. Characters the fonts lack are refused by the
catalogue itself (catalogue._glyphs): the shopper would see '?'."""

from __future__ import annotations

import logging
from pathlib import Path

from lbpanel import boards, layout

from ..panels import fonts as font_files

log = logging.getLogger(__name__)


class FontMetrics:
    """One LVGL .bin font's advance widths by character, and its line height."""

    def __init__(self, data: bytes, ranges):
        advances = font_files.bin_advances(data)
        self.line_h = font_files.bin_line_height(data)
        codes = [c for lo, hi in ranges for c in range(lo, hi + 1)]
        if len(codes) != len(advances) - 1:
            raise ValueError(f"{len(advances) - 1} glyphs for {len(codes)} characters")
        self.advance = dict(zip(codes, advances[1:]))
        self.fallback = self.advance.get(ord("?"), 8)

    def width(self, text: str) -> int:
        return sum(self.advance.get(ord(c), self.fallback) for c in text)


def wrap(text: str, font: FontMetrics, width: int) -> tuple[int, int]:
    """(lines, widest word) for text wrapped at spaces into `width`."""
    lines, line_w = 1, 0
    space = font.width(" ")
    widest = 0
    for word in text.split():
        w = font.width(word)
        widest = max(widest, w)
        if line_w and line_w + space + w > width:
            lines += 1
            line_w = w
        else:
            line_w += (space if line_w else 0) + w
    return lines, widest


def font_dirs(bundles: Path | None) -> list[Path]:
    """Where the panels' .bin fonts are: the build's fonts folder (a
    development machine), else the fonts of the bundles the host serves
    (the appliance: /opt/loyalty-button/bundles/<board>-<version>/fonts)."""
    dirs = [font_files.fonts_dir()]
    if bundles is not None and Path(bundles).is_dir():
        dirs += sorted(Path(bundles).glob("*/fonts"), reverse=True)
    return dirs


def board_fonts(board_name: str, dirs: list[Path]) -> dict[str, FontMetrics] | None:
    board = boards.get(board_name)
    out = {}
    for role in ("small", "body"):
        name = boards.font_file(role, board["fonts"][role])
        for d in dirs:
            path = Path(d) / name
            if path.is_file():
                out[role] = FontMetrics(path.read_bytes(), boards.font_ranges(role))
                break
        else:
            return None
    return out


def warnings(questions: dict, dirs: list[Path]) -> list[str]:
    """Texts of the catalogue's questions ({(qid, lang): fields}) that a
    board's screen cannot show whole. Boards whose fonts are not on this
    machine are skipped (said once in the log)."""
    out = []
    for board_name in sorted(boards.BOARDS):
        try:
            f = board_fonts(board_name, dirs)
        except (OSError, ValueError) as e:
            log.warning("catalogue: cannot read the %s panel's fonts (%s): its texts are "
                        "not measured", board_name, e)
            continue
        if f is None:
            log.info("catalogue: no %s panel fonts in %s: its texts are not measured",
                     board_name, ", ".join(str(d) for d in dirs))
            continue
        m = layout.Metrics(boards.get(board_name))
        for (qid, lang), q in sorted(questions.items()):
            where = f"questions.{qid}"
            boxes = [(f"{where}.text ({lang})", q["text"], layout.question_text_box(
                m, q["kind"], len(q.get("options") or ()), f["body"].line_h), ("body", "small"))]
            if q.get("why"):
                boxes.append((f"{where}.why.text ({lang})", q["why"]["text"],
                              layout.why_text_box(m, f["small"].line_h), ("small",)))
            for place, text, (width, height), roles in boxes:
                best = None
                for role in roles:
                    lines, widest = wrap(text, f[role], width)
                    fit = max(1, height // f[role].line_h)
                    if lines <= fit and widest <= width:
                        best = None
                        break
                    best = (lines, fit, widest > width)
                if best:
                    lines, fit, too_wide = best
                    why = (f"a word is wider than the {board_name} screen's line" if too_wide
                           else f"needs {lines} lines on the {board_name} screen, {fit} fit")
                    out.append(f"{place}: {why}: the panel shows it cut; shorten it")
    return out
