# The boot selector: which copy of the app a panel runs, and the state of an
# update, kept in boot.json on the panel's flash (docs/ota.md).
#
# The flash holds the app installed over USB (the "base": lbpanel/, boards/,
# fonts/ at the root, or frozen into the image) and two update slots,
# ota_a/ and ota_b/, each a whole app bundle. An update is downloaded and
# checked into the slot not running, then boot.json switches to it for a
# trial; the app confirms the trial once it is healthy. A trial boot that
# ends before confirming (a crash, a hang the watchdog resets, the window
# running out) makes the next boot go back to the slot before it, and
# remember why. A boot is good once the app has run GOOD_AFTER_S (as in
# ESPHome); after more than SAFE_AFTER boots in a row that were not, the
# panel starts in safe mode: the image's own app, headless, which reports
# itself and takes an update, and tries the normal app again after
# SAFE_FOR_S.
#
# This module is never part of an update (the updater skips it): it is the
# one thing that must work for an update to be undone. It is small on
# purpose, imports only what MicroPython always has, and writes boot.json by
# rename, so a power cut leaves the old state or the new one, never half.
import json
import os
import sys

STATE = "boot.json"
SLOTS = ("ota_a", "ota_b")
BASE = ""  # the app at the root of the flash (and frozen in the image)
# ESPHome waits for 10 boots; a till cannot wait that long, and a store's
# power may still flicker a few times in a row.
SAFE_AFTER = 5
GOOD_AFTER_S = 60
SAFE_FOR_S = 600


def _default():
    return {"slot": BASE, "prev": BASE, "trial": False, "tries": 0, "fails": 0,
            "failure": None, "why": None}


def read():
    """The state; a missing or unreadable file is the factory state (the
    base app), so a panel never fails to boot over its own bookkeeping."""
    state = _default()
    try:
        with open(STATE) as f:
            saved = json.load(f)
        for key in state:
            if key in saved:
                state[key] = saved[key]
    except (OSError, ValueError):
        pass
    if state["slot"] not in SLOTS:
        state["slot"] = BASE
    if state["prev"] not in SLOTS:
        state["prev"] = BASE
    return state


def write(state):
    tmp = STATE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    try:
        os.remove(STATE)  # FAT cannot rename over a file
    except OSError:
        pass
    os.rename(tmp, STATE)


def version_of(slot):
    """The version a slot holds, from its manifest ('' when unknown)."""
    try:
        with open((slot + "/" if slot else "") + "manifest.json") as f:
            return json.load(f).get("version") or ""
    except (OSError, ValueError):
        return ""


def select():
    """Decide this boot: returns (slot, mode) with mode "normal", "trial"
    or "safe", and counts the boot. Called once, first thing in main.py."""
    state = read()
    if state["trial"] and state["tries"] >= 1:
        # The trial already had its boot and never confirmed: go back.
        state["failure"] = {"version": version_of(state["slot"]),
                            "reason": state["why"] or "not confirmed: it crashed, hung "
                                                      "or lost the host before confirming"}
        state["slot"], state["trial"], state["tries"], state["why"] = \
            state["prev"], False, 0, None
    elif state["trial"]:
        state["tries"] += 1
    state["fails"] += 1
    write(state)
    if state["fails"] > SAFE_AFTER:
        return BASE, "safe"
    return state["slot"], "trial" if state["trial"] else "normal"


def import_path(slot, safe=False):
    """sys.path for this boot. The image's frozen modules come before the
    root's files: the base app's .mpy files would load their bytecode into
    the heap, which a CYD cannot spare (docs/memory.md). An update slot
    comes before both, as its code is the update. Safe mode runs the
    frozen app alone where there is one."""
    path = [p for p in sys.path if p not in (".frozen", "") and p not in SLOTS]
    lead = [".frozen"] + ([] if safe and _has_frozen_app() else [""])
    if slot and not safe:
        lead.insert(0, slot)
    return lead + path


def _has_frozen_app():
    saved = sys.path[:]
    sys.path[:] = [".frozen"]
    try:
        import lbpanel  # noqa: F401 (only whether the image holds it)
        return True
    except ImportError:
        return False
    finally:
        sys.path[:] = saved


def confirm():
    """The running trial is healthy: it becomes the slot to come back to."""
    state = read()
    if state["trial"]:
        state["trial"], state["tries"], state["prev"] = False, 0, state["slot"]
        state["failure"] = None
        state["fails"] = 0
        write(state)


def healthy():
    """A boot went well (the app has run GOOD_AFTER_S): the failed-boot
    count starts again. Written only when it changes (flash wear)."""
    state = read()
    if state["fails"] and not state["trial"]:
        state["fails"] = 0
        write(state)


def leave_safe():
    """Safe mode is over without an update: the next boot tries the app
    again (and counts anew)."""
    state = read()
    state["fails"] = 0
    write(state)


def failed(why):
    """The app is going down before confirming: say why for the next boot
    (which goes back when this boot was a trial)."""
    state = read()
    if state["trial"]:
        state["why"] = why[:200]
        write(state)


def switch(slot, safe=False):
    """Boot `slot` next, on trial, coming back to the running one (from
    safe mode: to the base app, as the running slot is the broken one)."""
    state = read()
    state["prev"] = BASE if safe else state["slot"]
    state["slot"], state["trial"], state["tries"], state["why"] = slot, True, 0, None
    state["failure"] = None
    state["fails"] = 0  # a new app gets its own count (and leaves safe mode)
    write(state)


def spare():
    """The update slot not running (the one an update may overwrite)."""
    state = read()
    return SLOTS[1] if state["slot"] == SLOTS[0] else SLOTS[0]
