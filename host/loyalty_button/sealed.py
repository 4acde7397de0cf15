"""A file sealed with a passphrase: what a store backup is wrapped in
(appliance/store_backup.py), so that the POS key, the panels' logins, the
broker's CA and the shoppers' loyalty ids in it are nobody's who finds the
file on a USB stick or in a mailbox.

The layout (docs/install.md, "Moving a store"):

    MAGIC, then one line of JSON (the header: what the file is, for whom,
    the key derivation's parameters and salt; nothing secret), then chunks:
    4 bytes big-endian (the plaintext's length; the top bit marks the last
    chunk), then that many bytes encrypted with AES-256-GCM and its 16-byte
    tag.

The key is scrypt(passphrase, salt) (n=2^15, r=8, p=1: 32 MiB and a fraction
of a second on a Raspberry Pi 4, so each guess costs as much). Every chunk's
nonce is its number, and the header, the number and the last-chunk mark are
its associated data: a changed header, reordered, dropped or added chunks and
a file cut short all fail to open. Chunks keep memory flat whatever the size
of the records database inside. A check value beside the salt tells a wrong
passphrase from a damaged file before anything is decrypted."""

from __future__ import annotations

import io
import json
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"LOYALTY-BUTTON-SEALED\n"
CHUNK = 1 << 20
_LAST = 0x80000000
_SCRYPT = {"n": 2 ** 15, "r": 8, "p": 1}
MAX_HEADER = 16 * 1024
MIN_PASSPHRASE = 8


class SealedError(ValueError):
    """The file cannot be opened; the message says why, in words."""


class WrongPassphrase(SealedError):
    pass


def _keys(passphrase: str, salt: bytes, kdf: dict) -> tuple[bytes, bytes]:
    derived = Scrypt(salt=salt, length=64, **kdf).derive(passphrase.encode("utf-8"))
    return derived[:32], derived[32:48]


def _nonce(number: int) -> bytes:
    return number.to_bytes(12, "big")


def _aad(header: bytes, number: int, last: bool) -> bytes:
    return header + struct.pack(">Q?", number, last)


def check_passphrase(passphrase: str) -> str | None:
    """Why a passphrase cannot seal a backup, or None."""
    if len(passphrase or "") < MIN_PASSPHRASE:
        return f"the passphrase: at least {MIN_PASSPHRASE} characters"
    return None


class SealWriter(io.RawIOBase):
    """A file object that seals what is written into `out` (opened for
    binary writing). close() writes the last chunk; an exception before it
    leaves a file that does not open (cut short), never one that opens to
    half a backup."""

    def __init__(self, out, passphrase: str, about: dict):
        why = check_passphrase(passphrase)
        if why:
            raise SealedError(why)
        salt = os.urandom(16)
        key, check = _keys(passphrase, salt, _SCRYPT)
        header = dict(about, sealed={"cipher": "AES-256-GCM", "chunk": CHUNK,
                                     "kdf": {"name": "scrypt", **_SCRYPT, "salt": salt.hex()},
                                     "check": check.hex()})
        self._header = json.dumps(header, sort_keys=True, ensure_ascii=False).encode() + b"\n"
        self._out, self._aead, self._buf, self._number = out, AESGCM(key), bytearray(), 0
        out.write(MAGIC + self._header)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._buf += data
        while len(self._buf) > CHUNK:  # keep one back: it may turn out to be the last
            self._chunk(bytes(self._buf[:CHUNK]), last=False)
            del self._buf[:CHUNK]
        return len(data)

    def _chunk(self, plain: bytes, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._number), plain,
                                    _aad(self._header, self._number, last))
        self._out.write(struct.pack(">I", len(plain) | (_LAST if last else 0)) + sealed)
        self._number += 1

    def close(self) -> None:
        if not self.closed:
            self._chunk(bytes(self._buf), last=True)
            self._buf.clear()
        super().close()


def read_header(f) -> tuple[dict, bytes]:
    """The header of the sealed file `f` (positioned at its start), as a
    dict and as its bytes; SealedError when `f` is not a sealed file."""
    if f.read(len(MAGIC)) != MAGIC:
        raise SealedError("not a Loyalty Button backup (its first bytes are something else)")
    line = f.readline(MAX_HEADER)
    try:
        header = json.loads(line)
        sealed = header["sealed"]
        kdf = sealed["kdf"]
        if sealed["cipher"] != "AES-256-GCM" or kdf["name"] != "scrypt" or \
                not isinstance(header, dict):
            raise ValueError("an unknown cipher or key derivation")
        bytes.fromhex(kdf["salt"]), bytes.fromhex(sealed["check"])
        if not (2 ** 10 <= kdf["n"] <= 2 ** 20 and 1 <= kdf["r"] <= 32 and 1 <= kdf["p"] <= 16):
            raise ValueError("key derivation parameters out of range")
    except (ValueError, KeyError, TypeError) as e:
        raise SealedError(f"the backup's header is damaged ({e})") from None
    return header, line


class OpenSealed(io.RawIOBase):
    """Reads what a SealWriter sealed. Every chunk is checked before a byte
    of it is returned; the end of the file before the last chunk, or bytes
    after it, raise SealedError."""

    def __init__(self, f, passphrase: str):
        self._f = f
        self.header, self._raw = read_header(f)
        sealed = self.header["sealed"]
        kdf = {k: sealed["kdf"][k] for k in ("n", "r", "p")}
        key, check = _keys(passphrase or "", bytes.fromhex(sealed["kdf"]["salt"]), kdf)
        if check.hex() != sealed["check"]:
            raise WrongPassphrase("the passphrase is not the one this backup was made with")
        self._aead, self._number, self._done = AESGCM(key), 0, False
        self._buf, self._at = b"", 0
        self._chunk_max = int(sealed["chunk"])

    def readable(self) -> bool:
        return True

    def _next(self) -> None:
        head = self._f.read(4)
        if len(head) < 4:
            raise SealedError("the backup is cut short (it ends before its last part): copy "
                              "it again from where it was made")
        (word,) = struct.unpack(">I", head)
        last, size = bool(word & _LAST), word & ~_LAST
        if size > self._chunk_max:
            raise SealedError("the backup is damaged (a part larger than it can be)")
        sealed = self._f.read(size + 16)
        if len(sealed) < size + 16:
            raise SealedError("the backup is cut short: copy it again from where it was made")
        try:
            self._buf, self._at = self._aead.decrypt(_nonce(self._number), sealed,
                                           _aad(self._raw, self._number, last)), 0
        except InvalidTag:
            raise SealedError(f"the backup is damaged (part {self._number + 1} does not "
                              f"match its seal)") from None
        self._number += 1
        if last:
            if self._f.read(1):
                raise SealedError("the backup is damaged (bytes after its last part)")
            self._done = True

    def readinto(self, b) -> int:
        while self._at == len(self._buf) and not self._done:
            self._next()
        n = min(len(b), len(self._buf) - self._at)
        b[:n] = self._buf[self._at:self._at + n]
        self._at += n
        return n
