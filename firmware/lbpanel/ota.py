# The panel's updater: takes a signed app bundle from the host into the
# update slot not running, checks every file, and switches to it for a
# trial (lbboot.py keeps the slots; docs/ota.md). Loaded only when an
# update arrives: a panel that is never updated keeps its heap.
#
# The signature is HMAC-SHA256 with the store's key (panel.json `ota.key`)
# over the board, the version and the manifest's sha256; the manifest holds
# every file's sha256. HMAC needs only the sha256 MicroPython already has:
# no big-number arithmetic, no extra heap, a few milliseconds on an ESP32
# without PSRAM (docs/ota.md says what a per-store key does and does not
# protect against).
import hashlib
import json
import os

from lbpanel import httpget, log

_TAG = "ota"
# Files of a bundle that stay with the USB install: the boot itself.
ROOT_ONLY = ("main.py", "lbboot.mpy", "lbboot.py")
MANIFEST = "manifest.json"
_MANIFEST_MAX = 16384
_FILE_MAX = 1 << 20


class UpdateError(Exception):
    pass


def hmac_sha256(key, msg):
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes([b ^ 0x36 for b in key]))
    inner.update(msg)
    outer = hashlib.sha256(bytes([b ^ 0x5C for b in key]))
    outer.update(inner.digest())
    return outer.digest()


def signed_text(kind, fields):
    """What the host signs (panels/rollout.py calls this too): one line, so
    no parser stands between the signature and what it covers. It names
    the store and the panel (a command for one panel is no good on
    another), and a sequence number the panel keeps the highest of (a
    command replayed later is refused)."""
    return ("lb-ota-v2 %s %s" % (kind, " ".join([str(f) for f in fields]))).encode()


def update_text(store, panel, board, version, manifest_sha256, downgrade, seq):
    return signed_text("update", (store, panel, board, version, manifest_sha256,
                                  1 if downgrade else 0, seq))


def health_text(store, panel, version, seq):
    return signed_text("health", (store, panel, version, seq))


def signature_ok(key_hex, text, sig_hex):
    try:
        key = bytes(int(key_hex[i:i + 2], 16) for i in range(0, len(key_hex), 2))
    except ValueError:
        return False
    want = hmac_sha256(key, text)
    got = sig_hex.lower()
    if len(got) != 64:
        return False
    diff = 0  # every byte compared: the time says nothing about the key
    for i in range(32):
        diff |= want[i] ^ int(got[2 * i:2 * i + 2], 16)
    return diff == 0


def version_key(version):
    """'0.10.2+build1' -> (0, 10, 2): numbers compare as numbers; what
    follows + or - is not part of the order."""
    out = []
    for part in version.split("+")[0].split("-")[0].split("."):
        digits = ""
        for c in part:
            if c not in "0123456789":
                break
            digits += c
        out.append(int(digits) if digits else 0)
    return tuple(out)


# The highest sequence number of an update command this panel took (beside
# boot.json, outside the slots: an update does not bring it back).
SEQ_FILE = "ota_seq"


def last_seq():
    try:
        with open(SEQ_FILE) as f:
            return int(f.read().strip() or "0")
    except (OSError, ValueError):
        return 0


def note_seq(seq):
    with open(SEQ_FILE + ".new", "w") as f:
        f.write(str(seq))
    os.rename(SEQ_FILE + ".new", SEQ_FILE)


class Replayed(Exception):
    """The very command taken already (a duplicate delivery): not an error."""


def check_command(key_hex, store, panel, board, running, cmd):
    """Whether the signed `update` command may be taken by this panel;
    raises UpdateError (or Replayed) saying why not."""
    version, sha, sig, seq = cmd["version"], cmd["sha256"], cmd["sig"], cmd["seq"]
    downgrade = bool(cmd.get("downgrade"))
    if not signature_ok(key_hex, update_text(store, panel, board, version, sha, downgrade,
                                             seq), sig):
        raise UpdateError("bad signature: not signed with this store's key for %s %s %s"
                          % (panel, board, version))
    last = last_seq()
    if seq == last:
        raise Replayed()
    if seq < last:
        raise UpdateError("an older command than the last one taken (replayed?)")
    if version_key(version) < version_key(running) and not downgrade:
        raise UpdateError("%s is older than the running %s: a downgrade must be asked for "
                          "(panels update --downgrade)" % (version, running))


def safe_name(rel):
    """A manifest's file name that stays inside the slot."""
    return bool(rel) and not rel.startswith("/") and ".." not in rel.split("/") \
        and "\\" not in rel and "\x00" not in rel


def _makedirs(path):
    built = ""
    for part in path.split("/"):
        built = built + "/" + part if built else part
        try:
            os.mkdir(built)
        except OSError:
            pass


def _exists_with(path, sha):
    try:
        return httpget.file_sha256(path) == sha
    except OSError:
        return False


def slot_too_big(board):
    """Why this board cannot run an update slot, or None."""
    if board and board["heap_kb"] < board.get("slot_heap_kb", 0):
        return ("an app from an update slot needs %d KB of heap, this board has %d KB: "
                "flash the new firmware image over USB (docs/ota.md)"
                % (board["slot_heap_kb"], board["heap_kb"]))
    return None


def read_manifest(data, board, version):
    """The (file, sha256) pairs a bundle's manifest.json lists for the slot
    (the boot's own files left out); UpdateError for anything else: a
    manifest of another board or version, not JSON, or naming a file
    outside the slot. Its bytes are signed, but it is read as if they were
    not."""
    try:
        manifest = json.loads(data)
    except ValueError:
        raise UpdateError("the manifest is not JSON")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise UpdateError("the manifest has no files")
    if manifest.get("board") != board or manifest.get("version") != version:
        raise UpdateError("the bundle is %s %s, not %s %s" % (
            manifest.get("board"), manifest.get("version"), board, version))
    files = []
    for rel in sorted([k for k in manifest["files"]]):
        entry = manifest["files"][rel]
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(sha, str) or len(sha) != 64:
            raise UpdateError("the manifest's entry for %r has no sha256" % (rel,))
        if not safe_name(rel):
            raise UpdateError("the manifest names %r, outside the update slot" % (rel,))
        if rel not in ROOT_ONLY:
            files.append((rel, sha))
    return files


class Updater:
    """One update at a time; `report(state, **fields)` tells the host
    (through the status message) how it goes."""

    def __init__(self, key_hex, board, report, safe=False, board_info=None, store="",
                 panel="", running="0"):
        self.key_hex = key_hex
        self.board = board
        self.store, self.panel, self.running = store, panel, running
        self.board_info = board_info
        self.report = report
        self.safe = safe

    async def run(self, cmd):
        """Download and check into the spare slot; returns that slot, ready
        for switch(). Raises UpdateError saying why it is not."""
        version, url, sha = cmd["version"], cmd["url"], cmd["sha256"]
        if not self.key_hex:
            raise UpdateError("this panel has no ota.key: flash it once more over USB")
        why = slot_too_big(self.board_info)
        if why:
            raise UpdateError(why)
        check_command(self.key_hex, self.store, self.panel, self.board, self.running, cmd)
        note_seq(cmd["seq"])  # before anything else: this command is not taken twice
        import lbboot  # the panel's boot selector (not on the host)
        slot = lbboot.spare()
        _makedirs(slot)
        # The slot is incomplete from here until its manifest is written
        # last: lbboot never switches to a slot without one.
        try:
            os.remove(slot + "/" + MANIFEST)
        except OSError:
            pass
        tmp = slot + "/" + MANIFEST + ".new"
        try:
            await httpget.fetch_to_file(url + MANIFEST, tmp, sha, _MANIFEST_MAX)
        except httpget.FetchError as e:
            raise UpdateError("manifest: %s" % e)
        with open(tmp, "rb") as f:
            files = read_manifest(f.read(), self.board, version)
        total = len(files)
        for n, (rel, want) in enumerate(files):
            path = slot + "/" + rel
            if "/" in rel:
                _makedirs(path.rsplit("/", 1)[0])
            if _exists_with(path, want):
                continue  # already here: an interrupted update resumes
            log.info(_TAG, "downloading %d of %d: %s" % (n + 1, total, rel))
            try:
                await httpget.fetch_to_file(url + rel, path, want, _FILE_MAX)
            except httpget.FetchError as e:
                raise UpdateError("%s: %s" % (rel, e))
            if (n + 1) * 4 // total != n * 4 // total:
                await self.report("downloading", version=version, pct=(n + 1) * 100 // total)
        # Read back from flash: what is there now is what will boot.
        for rel, want in files:
            if not _exists_with(slot + "/" + rel, want):
                raise UpdateError("%s differs from the manifest after writing" % rel)
        os.rename(tmp, slot + "/" + MANIFEST)
        log.info(_TAG, "verified %d files of %s in %s" % (total, version, slot))
        return slot

    def switch(self, slot, version):
        """The verified slot boots next, on trial."""
        import lbboot
        lbboot.switch(slot, self.safe)
        log.info(_TAG, "switched to %s for a trial of %s" % (slot, version))
