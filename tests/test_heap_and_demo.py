"""The compiled firmware in a small heap, and the demo as a newcomer runs it."""

from __future__ import annotations

from loyalty_button import demo


def test_compiled_panel_core_runs_a_question_cycle_in_a_96k_heap(link, panels, compiled_firmware):
    # A regression guard for memory: docs/memory.md has the measured minimum
    # (tools/bench heap) and why it is below this on a 32-bit ESP32.
    panel = panels.start(heapsize="96K", firmware=compiled_firmware)
    link.wait_status("p1", "online", timeout=15)
    for i, value in enumerate((0, 10, 7)):
        link.ask("p1", f"s1-H{i}", "nps-main", "nps", "Recommend us?")
        panel.answer(f"s1-H{i}", value)
        assert link.wait_answer(f"s1-H{i}")["value"] == value
    assert panel.alive()
    assert "MemoryError" not in panel.log_tail()


def test_demo_prints_merged_records_for_an_answer_and_a_timeout(tmp_path):
    lines = []
    records = demo.run(workdir=tmp_path, timeout_s=3, out=lines.append)
    assert [(r["outcome"], r["value"]) for r in records] == [("answered", 9), ("timeout", None)]
    assert records[0]["loyalty_id"] == "7700123" and records[0]["receipt"] == "R-1001"
    assert records[1]["loyalty_id"] is None
    assert any(line.startswith("merged record:") for line in lines)
