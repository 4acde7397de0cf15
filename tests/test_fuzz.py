"""The fuzz harness in CI: a few thousand cases per parser, each on the
interpreter it ships on (tools/fuzz runs 100 000). Any exception other than
a parser's own refusal fails the run, with the input that caused it."""

from __future__ import annotations

from loyalty_button.fuzz import run as fuzz
from loyalty_button.fuzz.mutate import Rng, mutate_bytes
from loyalty_button.fuzz.targets import Target

PARSERS = {"pos_datagram", "pos_http_body", "panel_message", "probe_message", "catalogue",
           "playlist", "settings_host", "settings_probe", "settings_panel",
           "panel_message_upy", "mqtt_reader_upy", "setup_form", "ota_manifest",
           "restore_schema", "central_batch", "phone_form"}
# A database file a case (~20 ms): fewer of them here; tools/fuzz runs 100k.
SLOW = {"restore_schema": 300}


def test_every_parser_survives_a_few_thousand_mutated_inputs():
    report = fuzz.run(cases=2000, seed=12, only=sorted(PARSERS - set(SLOW)))
    for name, cases in SLOW.items():
        report["parsers"].update(fuzz.run(cases=cases, seed=12, only=[name])["parsers"])
    assert set(report["parsers"]) == PARSERS
    for name, result in report["parsers"].items():
        assert result["cases"] == SLOW.get(name, 2000), name
        assert result["crashes"] == 0, (name, result["examples"])


def test_the_harness_reports_a_parser_that_crashes():
    # A parser that trips over its own input (a TypeError, not a refusal)
    # must show up as crashes, with the input kept.
    def fragile(data: bytes) -> None:
        if b"[" in data:
            raise TypeError("unhashable type: 'list'")
        raise ValueError("refused")
    target = Target("fragile", lambda rng: mutate_bytes(rng, b'{"a": 1}', [b"[1]"]), fragile,
                    (ValueError,))
    result = fuzz.run_host(target, 500, 3)
    assert result["crashes"] > 0 and "unhashable" in result["examples"][0]["error"]


def test_the_same_seed_gives_the_same_cases_on_every_run():
    a, b = Rng(5), Rng(5)
    assert [mutate_bytes(a, b"hello world") for _ in range(50)] == \
        [mutate_bytes(b, b"hello world") for _ in range(50)]
