"""settings.py: the one way the host's files are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from loyalty_button.settings import Checker, Field, clock_span, in_span

TABLE = [
    Field("store", "id", required=True),
    Field("port", "int", (1, 65535)),
    Field("share", "num", (0.0, 1.0)),
    Field("mail.to", "list"),
    Field("mail.tls", "bool"),
    Field("key_file", "secret_file", attr="key"),
]


def test_a_table_with_an_unknown_kind_or_misplaced_limits_is_refused_when_written():
    with pytest.raises(ValueError, match="unknown kind 'lst'"):
        Field("to", "lst")
    with pytest.raises(ValueError, match="only numbers"):
        Field("port", "int")
    with pytest.raises(ValueError, match="only numbers"):
        Field("name", "str", (1, 2))


def test_every_problem_is_listed_with_its_place(tmp_path: Path):
    (tmp_path / "short.key").write_text("abc")
    check = Checker(tmp_path)
    values = check.fields({"port": 0, "share": "half", "mail": {"to": [], "tls": "yes",
                                                                  "cc": "x"},
                           "key_file": "short.key", "colour": "red"}, TABLE, "site")
    assert values == {}
    assert check.problems == [
        "site.mail.cc: unknown setting (known: tls, to)",
        "site.colour: unknown setting (known: key_file, mail, port, share, store)",
        "site.store: is required",
        "site.port: must be a whole number 1..65535, got 0",
        "site.share: must be a number 0.0..1.0, got 'half'",
        "site.mail.to: must be a list of texts",
        "site.mail.tls: must be true or false, got 'yes'",
        f"site.key_file: the key in {tmp_path / 'short.key'} needs at least 16 characters",
    ]


def test_good_values_fill_their_attributes(tmp_path: Path):
    (tmp_path / "k").write_text("0123456789abcdef\n")
    check = Checker(tmp_path)
    values = check.fields({"store": "s1", "port": 8080, "mail": {"to": "a@b"},
                           "key_file": "k"}, TABLE)
    assert check.problems == []
    assert values == {"store": "s1", "port": 8080, "mail_to": ["a@b"],
                      "key": b"0123456789abcdef"}


def test_clock_spans_end_at_24_00_and_may_cross_midnight():
    assert clock_span("08:00-12:30") == (480, 750)
    assert clock_span("22:00-24:00") == (1320, 1440)
    assert [clock_span(t) for t in ("25:00-26:00", "8-12", "late", None)] == [None] * 4
    night = clock_span("22:00-06:00")
    assert [in_span(m, night) for m in (21 * 60 + 59, 22 * 60, 3 * 60, 6 * 60)] == \
        [False, True, True, False]


def test_a_lone_surrogate_is_refused_with_its_place_even_without_libyaml():
    from loyalty_button.settings import Checker
    check = Checker()
    assert not check.unicode("", {"pos": {"token": "ok\udcff"}, "list": ["a", "\udcff"]})
    assert check.problems[0].startswith("pos.token: has a character that is not valid Unicode")
    assert check.problems[1].startswith("list[1]:")


def test_a_settings_file_that_is_not_utf8_is_a_clear_problem(tmp_path):
    import pytest
    from loyalty_button.service import config as host_config
    path = tmp_path / "concentrator.yaml"
    path.write_bytes(b"store: s1\ncashier: \xff\xfe\n")
    with pytest.raises(host_config.HostConfigError) as e:
        host_config.load(path)
    assert "is not UTF-8 text" in str(e.value)
