"""The link a shopper's phone opens to answer about one receipt
(docs/phone-survey.md): an opaque token signed by the store host with a
key the chain's central service gave it, checked by the central service
that serves the survey page. One source of truth for both sides.

The token is 21 bytes, base32 without padding (34 characters, upper case):

    1 byte   format (high 4 bits) and key generation (low 4 bits)
    3 bytes  the store's number at the central service
    8 bytes  the receipt's reference: SHA-256 of the record id, cut
    3 bytes  expiry, whole hours since 2024-01-01 00:00 UTC
    6 bytes  HMAC-SHA256 of the 15 bytes before, under the store's key, cut

No loyalty id and nothing about the shopper is in it; the receipt is a
hash, so the link says nothing to whoever reads it. 48 bits of signature
are enough for a check made online behind rate limits (a forger gets a
few guesses a minute, not 2^47).

The URL is upper case (HTTPS://HOST/S/TOKEN): every character is in the
QR code's alphanumeric set, so a QR encoder that uses that mode (a till's
printer, segno) fits it in version 4 at level M (90 characters) for any
host name of up to 45; LVGL's widget on the panels encodes bytes, where
version 4 at M holds 62: a host name of up to 17 characters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

FORMAT = 1
TOKEN_BYTES = 21
TOKEN_CHARS = 34
EPOCH = 1_704_067_200   # 2024-01-01T00:00:00Z
MAX_STORE_NUMBER = (1 << 24) - 1
# A link is taken this long after its hour has passed (clocks differ).
LEEWAY_S = 900
# What a QR at version 4, error correction M, holds (ISO/IEC 18004 table 7).
V4M_ALPHANUMERIC = 90
V4M_BYTES = 62
PATH = "/S/"
_ALNUM = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


class BadToken(ValueError):
    """Why a token is not taken: 'forged' (not ours, or changed),
    'expired'."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def receipt_ref(record_id: str) -> bytes:
    return hashlib.sha256(record_id.encode()).digest()[:8]


def ref_text(ref: bytes) -> str:
    return ref.hex()


def store_key(master: bytes, store: str, generation: int = 0) -> bytes:
    """The key the central service gives store `store` (and can derive
    again on any of its workers from its one secret)."""
    return hmac.new(master, b"lb-phone-link\0%d\0%s" % (generation, store.encode()),
                    hashlib.sha256).digest()


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:6]


def make(key: bytes, store_number: int, record_id: str, expires_at: float,
         generation: int = 0) -> str:
    if not 0 <= store_number <= MAX_STORE_NUMBER or not 0 <= generation < 16:
        raise ValueError("store number or key generation out of range")
    hours = -(-(int(expires_at) - EPOCH) // 3600)  # rounded up: never shorter than asked
    body = bytes([FORMAT << 4 | generation]) + store_number.to_bytes(3, "big") \
        + receipt_ref(record_id) + max(0, hours).to_bytes(3, "big")
    raw = body + _mac(key, body)
    return base64.b32encode(raw).decode().rstrip("=")


def url(base: str, token: str) -> str:
    return (base.rstrip("/") + PATH + token).upper()


def for_panel(link: str) -> str:
    """The same link with its scheme and host in lower case, for the
    panel's QR: the panel's widget encodes bytes, where case costs nothing,
    and a panel on firmware from before phone links checks the scheme in
    lower case only."""
    at = link.find(PATH)
    return link[:at].lower() + link[at:] if at > 0 else link


def parse(token: str) -> dict:
    """The token's fields, unchecked: {format, generation, store_number,
    ref, expires_at, body, mac}. Raises BadToken('forged') for anything
    that is not a token of this format."""
    token = token.strip().upper()
    if len(token) != TOKEN_CHARS:
        raise BadToken("forged")
    try:
        raw = base64.b32decode(token + "=" * (-len(token) % 8))
    except (ValueError, base64.binascii.Error):
        raise BadToken("forged") from None
    if len(raw) != TOKEN_BYTES or raw[0] >> 4 != FORMAT:
        raise BadToken("forged")
    # The unused low bits of the last character must be 0: otherwise two
    # strings would be the same token (one character changed, still taken).
    if base64.b32encode(raw).decode().rstrip("=") != token:
        raise BadToken("forged")
    number = int.from_bytes(raw[1:4], "big")
    (hours,) = struct.unpack(">I", b"\0" + raw[12:15])
    return {"format": raw[0] >> 4, "generation": raw[0] & 15, "store_number": number,
            "ref": raw[4:12], "expires_at": EPOCH + hours * 3600, "body": raw[:15],
            "mac": raw[15:]}


def verify(fields: dict, key: bytes, now: float) -> None:
    """Raises BadToken: 'forged' for a wrong signature, 'expired' after
    the expiry (and its leeway). The signature is checked first, so an
    'expired' answer is never given to a forgery."""
    if not hmac.compare_digest(_mac(key, fields["body"]), fields["mac"]):
        raise BadToken("forged")
    if now > fields["expires_at"] + LEEWAY_S:
        raise BadToken("expired")


def fits_v4m(link: str) -> dict:
    """Does `link` fit a QR of version 4 at level M, in the alphanumeric
    mode a printer's encoder picks for it and in the byte mode of the
    panels' LVGL widget?"""
    return {"alphanumeric": set(link) <= _ALNUM and len(link) <= V4M_ALPHANUMERIC,
            "bytes": len(link.encode()) <= V4M_BYTES}
