"""The compiled firmware in a small heap, and the demo as a newcomer runs it."""

from __future__ import annotations

from loyalty_button.bench import reports as bench_reports, store as bench_store
from loyalty_button import cli
from loyalty_button.sim import demo
from loyalty_button.service import reports


def test_compiled_panel_core_runs_a_question_cycle_in_a_108k_heap(link, panels, compiled_firmware):
    # A regression guard for memory: docs/memory.md has the measured minimum
    # (tools/bench heap) and why it is below this on a 32-bit ESP32.
    panel = panels.start(heapsize="108K", firmware=compiled_firmware)
    link.wait_status("p1", "online", timeout=15)
    for i, value in enumerate((0, 10, 7)):
        link.ask("p1", f"s1-H{i}", "nps-main", "nps", "Recommend us?")
        panel.answer(f"s1-H{i}", value)
        assert link.wait_answer(f"s1-H{i}")["value"] == value
    assert panel.alive()
    assert "MemoryError" not in panel.log_tail()
    assert "out of memory" not in panel.log_tail()


def test_demo_runs_a_store_and_prints_a_summary_and_records(tmp_path):
    lines = []
    records = demo.run(workdir=tmp_path, panels=2, rate=2.0, duration=5, timeout_s=3,
                       seed=7, out=lines.append, every=1.0)
    assert len(records) >= 5
    assert len({r["id"] for r in records}) == len(records)
    assert all(r["state"] == "closed" for r in records)
    assert {r["source"] for r in records} == {"udp", "http"}
    assert {r["outcome"] for r in records} <= {"answered", "declined", "timeout", "superseded",
                                               "not_asked"}
    assert any(r["outcome"] == "answered" for r in records)
    text = "\n".join(lines)
    assert "receipts" in text and "NPS" in text and "stopped cleanly" in text


def test_demo_on_lvgl_panels_plays_the_sample_adverts_and_keeps_shots(tmp_path):
    lines = []
    shots = tmp_path / "shots"
    records = demo.run(workdir=tmp_path / "store", panels=2, rate=2.0, duration=5, timeout_s=3,
                       seed=3, out=lines.append, every=1.0, shots=shots)
    # A question that found the panel on an advert (not still thanking the
    # last shopper) names it.
    shown = {r["advert"] for r in records if r["outcome"] in ("answered", "declined")}
    assert shown & {"spring-sale", "fresh-bread"} and shown <= {"spring-sale", "fresh-bread", None}
    assert any(line.startswith("adverts: ") for line in lines)
    for panel in ("till-1", "till-2"):
        assert (shots / f"{panel}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_with_the_probe_fills_emotion_fields_from_an_image_folder(tmp_path):
    lines = []
    records = demo.run(workdir=tmp_path, panels=2, rate=2.0, duration=5, timeout_s=3,
                       seed=3, out=lines.append, every=1.0, probe=True)
    assert records and all(r["probe"] in ("ok", "no_face", "stale") for r in records)
    seen = [r for r in records if r["probe"] == "ok"]
    assert seen, [r["probe"] for r in records]
    for r in seen:
        # The sample frames' shopper is the astronaut, who smiles.
        assert r["emotion"] == "happy" and r["c_value"] > 50 and r["age_band"]
    assert all(r["emotion"] is None for r in records if r["probe"] != "ok")
    assert any(line.startswith("emotion probe: ") and "mean C-Value" in line for line in lines)


def test_store_benchmark_prints_its_figures_and_loses_nothing():
    # A short run: the figures are not checked (benchmarks are not timed
    # tests), only that the benchmark works and counts what it must.
    lines = []
    result = bench_store.run(out=lines.append, panels=2, latency_samples=20, throughput_s=2)
    for key in ("pos_to_question_p50_ms", "pos_to_question_p99_ms", "broker_rtt_p99_ms",
                "tx_per_s", "broker_qos1_per_s", "transactions", "lost"):
        assert key in result
    assert result["lost"] == 0 and result["transactions"] > 0
    assert result["receipts_sent"] >= result["transactions"] + 20
    # (d) the host-only phase with lightweight panels
    assert result["host_only_tx_per_s"] > 0 and result["host_only_lost"] == 0
    assert result["host_only_broker_qos1_per_s"] > 0
    assert 0 < result["host_only_loop_busy"] <= 1.5


def test_reports_benchmark_times_every_command_and_endpoint_on_two_sizes():
    lines = []
    result = bench_reports.run(out=lines.append, sizes=(300, 3000), repeat=1)
    for key in ("worst_growth", "worst_ratio_to_groupby", "export_ratio_to_select",
                "peak_rss_mb"):
        assert result[key] > 0
    timed = result["seconds"][3000]
    n = len(reports.BREAKDOWNS)
    assert len([k for k in timed if k.startswith("report ")]) == 2 + n
    assert len([k for k in timed if k.startswith("GET ")]) == 4 + n + 2
    assert "export" in timed and any("records.csv" in line for line in lines)


def test_concentrator_command_refuses_bad_settings_with_the_problems(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("store: my store\ncatalogue: nope.yaml\n")
    assert cli.main(["concentrator", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert "store: must be an id" in err and "database: is required" in err


def test_probe_benchmark_reports_each_stage_memory_and_answer_latency():
    from loyalty_button.bench import probe as bench
    lines = []
    result = bench.run(out=lines.append, frames=5, requests=5)
    for stage in ("detect", "emotion", "age_gender"):
        assert result[f"probe_{stage}_p50_ms"] > 0 and f"probe_{stage}_x_baseline" in result
    assert result["probe_rss_models_mb"] >= result["probe_rss_start_mb"] > 0
    assert result["probe_answer_p99_ms"] > 0 and result["probe_broker_rtt_p99_ms"] > 0


def test_the_demo_refuses_a_bad_board_or_timeout_at_once(capsys):
    assert cli.main(["demo", "--board", "xyz"]) == 2
    assert "--board xyz: one of cyd, s3_8048" in capsys.readouterr().err
    assert cli.main(["demo", "--timeout", "1"]) == 2
    assert "--timeout 1: the panels take 3 to 300 seconds" in capsys.readouterr().err
