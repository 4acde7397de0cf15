# The persistent outbox on a real filesystem; runs under MicroPython and CPython.
import os

from lbpanel import protocol
from lbpanel.outbox import Outbox

import support


def test_answer_is_on_disk_until_removed_and_survives_a_restart():
    d = support.fresh_dir("outbox-restart")
    box = Outbox(d, 10, support.Counters())
    assert box.add(support.answer("r1", answer_id="a1"))
    assert box.add(support.answer("r2", answer_id="a2"))
    box2 = Outbox(d, 10, support.Counters())  # as after a reboot
    name, data = box2.peek()
    assert protocol.decode(data)["id"] == "a1"
    box2.remove(name)
    name, data = box2.peek()
    assert protocol.decode(data)["id"] == "a2"
    box2.remove(name)
    assert box2.peek() is None and os.listdir(d) == []


def test_sequence_continues_after_restart_so_order_is_kept():
    d = support.fresh_dir("outbox-order")
    box = Outbox(d, 10, support.Counters())
    box.add(support.answer("r1", answer_id="a1"))
    box = Outbox(d, 10, support.Counters())
    box.add(support.answer("r2", answer_id="a2"))
    assert sorted(os.listdir(d)) == ["0000000001.json", "0000000002.json"]


def test_full_outbox_refuses_new_answer_and_keeps_stored_ones():
    d = support.fresh_dir("outbox-full")
    counters = support.Counters()
    box = Outbox(d, 2, counters)
    assert box.add(support.answer("r1", answer_id="a1"))
    assert box.add(support.answer("r2", answer_id="a2"))
    assert not box.add(support.answer("r3", answer_id="a3"))
    assert counters.get("outbox_full") == 1 and box.depth() == 2
    assert protocol.decode(box.peek()[1])["id"] == "a1"


def test_corrupt_entry_is_quarantined_and_the_rest_still_flow():
    d = support.fresh_dir("outbox-corrupt")
    box = Outbox(d, 10, support.Counters())
    box.add(support.answer("r1", answer_id="a1"))
    box.add(support.answer("r2", answer_id="a2"))
    with open(d + "/0000000001.json", "wb") as f:
        f.write(b"\x00\xffnot json")
    with open(d + "/0000000003.tmp", "wb") as f:
        f.write(b"{\"half")
    counters = support.Counters()
    box = Outbox(d, 10, counters)
    name, data = box.peek()
    assert protocol.decode(data)["id"] == "a2"
    assert counters.get("outbox_corrupt") == 1
    assert counters.get("outbox_partial_discarded") == 1
    assert "0000000001.bad" in os.listdir(d)
    assert "0000000003.tmp" not in os.listdir(d)
    # a new answer is numbered after every stored one, so order holds
    box.add(support.answer("r4", answer_id="a4"))
    assert sorted(n for n in os.listdir(d) if n.endswith(".json")) == [
        "0000000002.json", "0000000003.json"]
    box.remove(name)
    assert protocol.decode(box.peek()[1])["id"] == "a4"


def test_invalid_answer_is_refused_before_touching_flash():
    d = support.fresh_dir("outbox-invalid")
    counters = support.Counters()
    box = Outbox(d, 10, counters)
    bad = support.answer()
    bad["value"] = 42
    assert not box.add(bad)
    assert counters.get("outbox_rejected") == 1 and os.listdir(d) == []
