"""How every `loyalty-button` command logs. On a terminal or into a file:
time, level, logger, message. Under systemd, whose journal takes the
service's stderr (it says so in $JOURNAL_STREAM, the device and inode of
that stream), each line starts with its syslog priority, `<4>` for a
warning (sd-daemon(3)): journald files it at that priority, so
`journalctl -u loyalty-button -p warning` shows the warnings and errors
only. The journal keeps its own time, so the line carries none."""

from __future__ import annotations

import logging
import os
import sys

# logging's levels as syslog priorities (sd-daemon's SD_ERR, SD_WARNING...).
PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
            logging.DEBUG: 7}
PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JournalFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prio = PRIORITY.get(record.levelno, 3 if record.levelno > logging.WARNING else 7)
        # A traceback's lines are one record: each gets the priority, or
        # journald would file its lines as the unit's default (info).
        return "\n".join(f"<{prio}>{line}" for line in super().format(record).splitlines())


def to_journal(stream=None) -> bool:
    """Whether `stream` (stderr) is connected to the journal."""
    want = os.environ.get("JOURNAL_STREAM", "")
    if not want:
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return want == f"{st.st_dev}:{st.st_ino}"


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter() if to_journal() else logging.Formatter(PLAIN))
    logging.basicConfig(level=level.upper(), handlers=[handler])
