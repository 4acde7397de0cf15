"""A full disk under the record store (a real, small tmpfs filled up): a POS
is never told "stored" before the record is on disk, the retry waits on the
same write, and questions still reach the panels at once."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from conftest import Host, receipt_doc


@pytest.fixture
def small_disk(tmp_path: Path):
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(path: Path) -> None:
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_with_the_disk_full_no_receipt_is_called_stored_and_questions_still_go(
        small_disk, broker, panels):
    host = Host(small_disk / "host", broker).start()
    filler = small_disk / "filler"
    try:
        panel = panels.start("till-1")
        host.wait_online("till-1")
        assert host.pos.send_http(receipt_doc("1", "R-1"))[0] == 202
        panel.wait_screen("question", session="s1-R-1")
        _fill(filler)
        replies = []
        first = threading.Thread(
            target=lambda: replies.append(host.pos.send_http(receipt_doc("1", "R-2"))))
        first.start()
        # The question goes out although its record cannot be written...
        panel.wait_screen("question", session="s1-R-2")
        first.join(20)
        # ...but the POS is not told the receipt is stored.
        [(status, body)] = replies
        assert (status, body["error"]["code"]) == (503, "not_stored")
        status, body = host.pos.send_http(receipt_doc("1", "R-2"))
        assert (status, body["error"]["code"]) == (503, "not_stored")
        host.pos.send_udp(receipt_doc("1", "R-3"))
        panel.wait_screen("question", session="s1-R-3")
        assert host.counters()["db_errors"] >= 1
        filler.unlink()  # the installer frees space: the kept writes commit
        status, body = host.pos.send_http(receipt_doc("1", "R-2"))
        assert (status, body["status"]) == (200, "duplicate")
        for n in ("R-1", "R-2", "R-3"):
            assert host.record(f"s1-{n}") is not None
    finally:
        filler.unlink(missing_ok=True)
        host.stop()
