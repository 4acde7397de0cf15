# Panel config validation; runs under MicroPython and CPython.
import json

from lbpanel import config

import support

GOOD = {"panel_id": "till-1", "store": "s1", "broker": {"host": "10.0.0.2"}}


def _problems(doc):
    try:
        config.parse(doc)
    except config.ConfigError as e:
        return e.problems
    return []


def test_minimal_config_gets_defaults():
    settings, warnings = config.parse(GOOD)
    assert settings["broker.port"] == 1883
    assert settings["thanks_s"] == 3
    assert warnings == []


def test_missing_required_fields_are_all_named_at_once():
    problems = _problems({"store": "s1"})
    text = " ".join(problems)
    assert len(problems) == 2
    assert "'panel_id' is missing" in text and "'broker.host' is missing" in text


def test_wrong_required_field_is_fatal_with_the_reason():
    doc = json.loads(json.dumps(GOOD))
    doc["panel_id"] = "till 1/a"
    (problem,) = _problems(doc)
    assert "panel_id" in problem and "letters, digits" in problem


def test_wrong_optional_field_falls_back_with_a_warning():
    doc = json.loads(json.dumps(GOOD))
    doc["broker"]["port"] = "1883"
    doc["thanks_s"] = 99
    settings, warnings = config.parse(doc)
    assert settings["broker.port"] == 1883 and settings["thanks_s"] == 3
    assert len(warnings) == 2
    assert "broker.port must be a whole number" in warnings[0]


def test_unknown_setting_is_flagged_as_a_possible_typo():
    doc = json.loads(json.dumps(GOOD))
    doc["brokr"] = {"host": "x"}
    settings, warnings = config.parse(doc)
    assert "unknown setting 'brokr'" in warnings[0]


def test_unreadable_and_invalid_files_say_what_to_do():
    d = support.fresh_dir("config")
    try:
        config.load(d + "/missing.json")
        assert False
    except config.ConfigError as e:
        assert "copy a panel.json" in str(e)
    with open(d + "/bad.json", "w") as f:
        f.write("{\"panel_id\": ")
    try:
        config.load(d + "/bad.json")
        assert False
    except config.ConfigError as e:
        assert "not valid JSON" in str(e)


def test_host_may_change_only_its_settings_and_only_to_valid_values():
    settings, _ = config.parse(GOOD)
    applied, rejected = config.apply_host_settings(
        settings, {"thanks_s": 5, "heartbeat_s": 0, "broker.host": "evil"})
    assert applied == ["thanks_s"] and settings["thanks_s"] == 5
    assert settings["broker.host"] == "10.0.0.2"
    assert len(rejected) == 2
