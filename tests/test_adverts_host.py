"""The store's adverts from the host's folder to the glass: the concentrator
converts the playlist's pictures per board, serves them over its HTTP
listener, publishes each panel's retained manifest, and the LVGL panels
fetch, check and play them; an answer carries the advert on screen into
the record. Bad playlists and pictures are refused, logged and counted."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from loyalty_button.adverts import image as advert_image
from loyalty_button.service import config as host_config
from loyalty_button.adverts.library import AdvertLibrary, PlaylistError, parse_playlist

from conftest import Host, receipt_doc


def _picture(path: Path, title: str, size=(640, 480)) -> Path:
    advert_image.sample(*size, title=title).save(path)
    return path


def _playlist(folder: Path, *entries: dict) -> None:
    (folder / "playlist.yaml").write_text(yaml.safe_dump({"adverts": list(entries)}))


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# --- the playlist file ------------------------------------------------------------

def test_a_playlist_lists_every_problem_with_its_place():
    with pytest.raises(PlaylistError) as e:
        parse_playlist({"adverts": [
            {"id": "ok", "file": "a.jpg", "seconds": 5},
            {"id": "ok", "file": "../etc/passwd", "seconds": 0},
            {"id": "bad id!", "file": "b.png", "seconds": True, "colour": "red"},
            {"id": "c", "file": "c.png", "seconds": 5, "panels": "till-1"},
            "not a mapping"]}, "pl.yaml")
    text = "\n".join(e.value.problems)
    assert "adverts[2].id: 'ok' is used twice" in text
    assert "adverts[2].file: must be a picture's name" in text
    assert "adverts[2].seconds: must be a whole number 1..3600, got 0" in text
    assert "adverts[3].colour: unknown setting" in text
    assert "adverts[3].id: must be an id" in text
    assert "adverts[3].seconds: must be a whole number 1..3600, got True" in text
    assert "adverts[4].panels: must be a list of panel ids" in text
    assert "adverts[5]: must be a mapping" in text
    with pytest.raises(PlaylistError, match="must be a mapping with one key"):
        parse_playlist(["a.jpg"])
    assert parse_playlist(None) == []


def test_a_panel_gets_at_most_six_adverts_counting_its_own():
    common = [{"id": f"c{i}", "file": f"c{i}.jpg", "seconds": 5} for i in range(5)]
    one_each = [{"id": "a", "file": "a.jpg", "seconds": 5, "panels": ["till-1"]},
                {"id": "b", "file": "b.jpg", "seconds": 5, "panels": ["till-2"]}]
    assert len(parse_playlist({"adverts": common + one_each})) == 7
    two_for_one = one_each + [{"id": "x", "file": "x.jpg", "seconds": 5, "panels": ["till-1"]}]
    with pytest.raises(PlaylistError, match="a panel would get 7 adverts"):
        parse_playlist({"adverts": common + two_for_one})


def test_library_converts_per_board_and_keeps_the_last_good_playlist(tmp_path):
    folder = tmp_path / "ads"
    folder.mkdir()
    _picture(folder / "spring.jpg", "Весна")
    (folder / "broken.png").write_bytes(b"this is not a picture")
    _playlist(folder, {"id": "spring", "file": "spring.jpg", "seconds": 8},
              {"id": "broken", "file": "broken.png", "seconds": 8},
              {"id": "ghost", "file": "ghost.jpg", "seconds": 8})
    lib = AdvertLibrary(folder, tmp_path / "cache")
    assert lib.refresh() is True and lib.refresh() is False
    cyd = lib.items("cyd", "till-1")
    assert [(i["id"], i["w"], i["h"], i["duration_s"]) for i in cyd] == [("spring", 320, 240, 8)]
    s3 = lib.items("s3_8048", "till-1")[0]
    assert (s3["w"], s3["h"], s3["size"]) == (800, 480, 12 + 800 * 480 * 2)
    assert set(lib.problems) == {"broken", "ghost"}
    assert "not a PNG or JPEG" in lib.problems["broken"]
    assert lib.counters["adverts_picture_bad"] == 4          # two pictures, two boards
    assert lib.file("cyd", cyd[0]["sha256"] + ".bin").stat().st_size == cyd[0]["size"]
    assert lib.file("cyd", "../../etc/passwd") is None
    assert lib.file("nope", cyd[0]["sha256"] + ".bin") is None
    # A broken edit is refused; the playlist in force stays.
    (folder / "playlist.yaml").write_text("adverts: [ {id: x, file: ")
    assert lib.refresh() is False
    assert lib.error and "not valid YAML" in lib.error
    assert [e.id for e in lib.entries] == ["spring", "broken", "ghost"]
    assert lib.counters["adverts_playlist_rejected"] == 1
    assert lib.refresh() is False and lib.counters["adverts_playlist_rejected"] == 1
    # A picture fixed in place is converted again.
    _picture(folder / "broken.png", "Починили")
    assert lib.refresh() is True
    assert [i["id"] for i in lib.items("cyd", "till-1")] == ["spring", "broken"]
    assert "broken" not in lib.problems
    # Dropped from the playlist: its converted file goes too.
    _playlist(folder, {"id": "broken", "file": "broken.png", "seconds": 3})
    assert lib.refresh() is True and lib.error is None
    kept = lib.items("cyd", "till-1")
    lib.items("s3_8048", "till-1")
    assert lib.prune() == 2                                   # spring on both boards
    assert sorted(p.name for p in (tmp_path / "cache" / "cyd").iterdir()) == \
        [kept[0]["sha256"] + ".bin"]
    assert lib.problems == {}


# --- the concentrator's settings -------------------------------------------------------

def _host_cfg(tmp_path: Path, pos: dict, adverts: dict):
    doc = {"store": "s1", "catalogue": "c.yaml", "database": "db/records.db",
           "pos": pos, "adverts": adverts}
    return host_config.parse(doc, tmp_path)


def test_adverts_settings_are_checked_and_completed(tmp_path):
    (tmp_path / "ads").mkdir()
    cfg = _host_cfg(tmp_path, {"bind": "192.168.1.10", "http_port": 8080}, {"folder": "ads"})
    assert cfg.adverts_url == "http://192.168.1.10:8080/"
    assert cfg.adverts_cache == tmp_path / "db" / "advert-cache"
    cfg = _host_cfg(tmp_path, {"http_port": 8080}, {"folder": "ads", "url": "http://pi.lan:8080"})
    assert cfg.adverts_url == "http://pi.lan:8080/"
    with pytest.raises(host_config.HostConfigError) as e:
        _host_cfg(tmp_path, {"http_port": 8080}, {"folder": "ads"})
    assert "adverts.url: is required when pos.bind is 0.0.0.0" in str(e.value)
    assert "http://192.168.1.10:8080/" in str(e.value)
    with pytest.raises(host_config.HostConfigError) as e:
        _host_cfg(tmp_path, {"http_port": 0}, {"folder": "missing", "url": "https://x/",
                                               "poll_s": 0})
    text = str(e.value)
    assert "is not a folder" in text and "needs pos.http_port" in text
    assert "must start with http://" in text and "adverts.poll_s: must be a number" in text
    with pytest.raises(host_config.HostConfigError, match="adverts.folder: is required"):
        _host_cfg(tmp_path, {}, {"url": "http://x/"})
    with pytest.raises(host_config.HostConfigError, match="adverts.colour: unknown setting"):
        _host_cfg(tmp_path, {"bind": "10.0.0.1"}, {"folder": "ads", "colour": 1})


# --- end to end ------------------------------------------------------------------------

def test_store_adverts_reach_both_boards_and_the_record_says_which_was_on(tmp_path, broker,
                                                                            panels):
    folder = tmp_path / "ads"
    folder.mkdir()
    _picture(folder / "spring.jpg", "Весна")
    _picture(folder / "bakery.png", "Выпечка", size=(300, 400))
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    _playlist(folder, {"id": "bakery", "file": "bakery.png", "seconds": 1, "panels": ["till-2"]},
              {"id": "spring", "file": "spring.jpg", "seconds": 30},
              {"id": "broken", "file": "broken.png", "seconds": 5},
              {"id": "ghost", "file": "ghost.jpg", "seconds": 5})
    host = Host(tmp_path / "host", broker, adverts={"folder": str(folder), "poll_s": 0.5}).start()
    try:
        cyd = panels.start("till-1", board="cyd")
        s3 = panels.start("till-2", board="s3_8048")
        cyd.wait_screen("adverts", advert="spring", timeout=30)
        s3.wait_screen("adverts", advert="bakery", timeout=30)
        s3.wait_screen("adverts", advert="spring", timeout=10)  # it loops

        status = host.thread.status()
        ads = status["adverts"]
        assert ads["panels"] == {"till-1": "cyd", "till-2": "s3_8048"}
        assert sorted(ads["left_out"]) == ["broken", "ghost"]
        assert "not a PNG or JPEG" in ads["left_out"]["broken"]
        assert status["fleet"]["till-1"]["board"] == "cyd"
        c = status["counters"]
        assert c["adverts_manifests_sent"] == 2 and c["adverts_picture_bad"] == 4
        assert c["http_advert_sent"] == 3        # spring twice (two boards), bakery once
        cache = host.cfg.adverts_cache
        assert len(list((cache / "cyd").glob("*.bin"))) == 1
        assert len(list((cache / "s3_8048").glob("*.bin"))) == 2

        # A shopper answers while spring is on: the record says so.
        host.pos.send_udp(receipt_doc("1", "R-1"))
        cyd.answer("s1-R-1", 4)
        rec = host.wait_record("s1-R-1")
        assert (rec["outcome"], rec["value"], rec["advert"]) == ("answered", 4, "spring")

        # The store swaps the picture: new manifests, and the old file goes.
        _picture(folder / "autumn.jpg", "Осень")
        _playlist(folder, {"id": "autumn", "file": "autumn.jpg", "seconds": 30})
        cyd.wait_screen("adverts", advert="autumn", timeout=30)
        host.wait_counter("adverts_manifests_sent", 4)
        host.wait(lambda: len(list((cache / "s3_8048").glob("*.bin"))) == 1,
                  "old converted files pruned")
        # A broken edit changes nothing on the panels.
        (folder / "playlist.yaml").write_text("adverts:\n  - {id: autumn, seconds: -1}\n")
        host.wait_counter("adverts_playlist_rejected")
        time.sleep(1.5)  # three polls
        status = host.thread.status()
        assert "seconds: must be a whole number" in status["adverts"]["error"]
        assert status["adverts"]["playlist"] == ["autumn"]
        assert status["counters"]["adverts_manifests_sent"] == 4

        # What the HTTP listener will not serve.
        base = f"http://127.0.0.1:{host.cfg.http_port}/adverts/"
        for path in ("cyd/" + "0" * 64 + ".bin", "mars/" + "0" * 64 + ".bin",
                     "cyd/..%2F..%2Frecords.db", "cyd/playlist.yaml"):
            code, body = _get(base + path)
            assert code == 404 and json.loads(body)["error"]["code"] == "not_found", path
        autumn = next((cache / "cyd").glob("*.bin"))
        code, body = _get(base + "cyd/" + autumn.name)
        assert code == 200 and body == autumn.read_bytes()

        # A broker restart: every manifest goes out again (a broker without
        # persistence would have lost them).
        broker.restart()
        host.wait_counter("adverts_manifests_sent", 6, timeout=20)
        # A panel on a board the host has no picture size for gets none.
        panels.start("till-3", config=panels.config("till-3", board="cyd-v9"))
        host.wait_counter("adverts_unknown_board")
        assert "till-3" not in host.thread.status()["adverts"]["panels"]
    finally:
        host.stop()
