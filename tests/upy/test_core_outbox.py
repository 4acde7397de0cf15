# The persistent outbox on a real filesystem; runs under MicroPython and CPython.
import os

from lbpanel import protocol
from lbpanel.outbox import Outbox

import support


def test_answer_is_on_disk_until_the_host_acks_it_and_survives_a_restart():
    d = support.fresh_dir("outbox-restart")
    box = Outbox(d, 10, support.Counters())
    assert box.add(support.answer("r1", answer_id="a1"))
    assert box.add(support.answer("r2", answer_id="a2"))
    box2 = Outbox(d, 10, support.Counters())  # as after a reboot
    name, data = box2.oldest(())
    assert protocol.decode(data)["id"] == "a1"
    # a1 is in flight: the next one to send is a2
    name2, data = box2.oldest((name,))
    assert protocol.decode(data)["id"] == "a2"
    assert box2.oldest((name, name2)) is None
    # acks in any order, each once; an ack for an unknown id changes nothing
    assert box2.acknowledged("a2") == name2
    assert box2.acknowledged("a2") is None and box2.acknowledged("zz") is None
    assert box2.depth() == 1
    assert box2.acknowledged("a1") == name
    assert box2.oldest(()) is None and os.listdir(d) == []


def test_an_answer_written_before_acks_existed_is_still_found_by_its_id():
    d = support.fresh_dir("outbox-legacy")
    with open(d + "/0000000007.json", "wb") as f:
        f.write(protocol.encode(support.answer("r1", answer_id="old1")))
    box = Outbox(d, 10, support.Counters())
    assert os.listdir(d) == ["0000000007.old1.json"]  # renamed to carry its id
    assert protocol.decode(box.oldest(())[1])["id"] == "old1"
    assert box.acknowledged("old1") == "0000000007.old1.json"
    assert os.listdir(d) == []
    box.add(support.answer("r2", answer_id="a2"))
    assert os.listdir(d) == ["0000000008.a2.json"]


def test_sequence_continues_after_restart_so_order_is_kept():
    d = support.fresh_dir("outbox-order")
    box = Outbox(d, 10, support.Counters())
    box.add(support.answer("r1", answer_id="a1"))
    box = Outbox(d, 10, support.Counters())
    box.add(support.answer("r2", answer_id="a2"))
    assert sorted(os.listdir(d)) == ["0000000001.a1.json", "0000000002.a2.json"]


def test_full_outbox_refuses_new_answer_and_keeps_stored_ones():
    d = support.fresh_dir("outbox-full")
    counters = support.Counters()
    box = Outbox(d, 2, counters)
    assert box.add(support.answer("r1", answer_id="a1"))
    assert box.add(support.answer("r2", answer_id="a2"))
    assert not box.add(support.answer("r3", answer_id="a3"))
    assert counters.get("outbox_full") == 1 and box.depth() == 2
    assert protocol.decode(box.oldest(())[1])["id"] == "a1"


def test_corrupt_entry_is_quarantined_and_the_rest_still_flow():
    d = support.fresh_dir("outbox-corrupt")
    box = Outbox(d, 10, support.Counters())
    box.add(support.answer("r1", answer_id="a1"))
    box.add(support.answer("r2", answer_id="a2"))
    with open(d + "/0000000001.a1.json", "wb") as f:
        f.write(b"\x00\xffnot json")
    with open(d + "/0000000003.tmp", "wb") as f:
        f.write(b"{\"half")
    counters = support.Counters()
    box = Outbox(d, 10, counters)
    name, data = box.oldest(())
    assert protocol.decode(data)["id"] == "a2"
    assert counters.get("outbox_corrupt") == 1
    assert counters.get("outbox_partial_discarded") == 1
    assert "0000000001.a1.bad" in os.listdir(d)
    assert "0000000003.tmp" not in os.listdir(d)
    # a new answer is numbered after every stored one, so order holds
    box.add(support.answer("r4", answer_id="a4"))
    assert sorted(n for n in os.listdir(d) if n.endswith(".json")) == [
        "0000000002.a2.json", "0000000003.a4.json"]
    assert box.acknowledged("a2") == name
    assert protocol.decode(box.oldest(())[1])["id"] == "a4"


def test_invalid_answer_is_refused_before_touching_flash():
    d = support.fresh_dir("outbox-invalid")
    counters = support.Counters()
    box = Outbox(d, 10, counters)
    bad = support.answer()
    bad["value"] = 42
    assert not box.add(bad)
    assert counters.get("outbox_rejected") == 1 and os.listdir(d) == []
