# The panel's update signature (lbpanel/ota.py): HMAC-SHA256 written on
# MicroPython's hashlib, held to RFC 4231's test vectors; runs under
# MicroPython and CPython.
from lbpanel import ota


def _hex(raw):
    return "".join(["%02x" % b for b in raw])


def test_hmac_sha256_matches_rfc_4231():
    # Test case 2: a short key.
    assert _hex(ota.hmac_sha256(b"Jefe", b"what do ya want for nothing?")) == \
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    # Test case 6: a key longer than the block is hashed first.
    assert _hex(ota.hmac_sha256(b"\xaa" * 131,
                                b"Test Using Larger Than Block-Size Key - Hash Key First")) == \
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


def test_a_signature_holds_for_its_board_version_and_manifest_only():
    key = "0f" * 32
    sha = "ab" * 32
    sig = _hex(ota.hmac_sha256(bytes([15] * 32), ota.signed_text("cyd", "0.2.0", sha)))
    assert ota.signature_ok(key, "cyd", "0.2.0", sha, sig)
    assert ota.signature_ok(key, "cyd", "0.2.0", sha, sig.upper())
    assert not ota.signature_ok(key, "s3_8048", "0.2.0", sha, sig)
    assert not ota.signature_ok(key, "cyd", "0.2.1", sha, sig)
    assert not ota.signature_ok(key, "cyd", "0.2.0", "cd" * 32, sig)
    assert not ota.signature_ok("1f" * 32, "cyd", "0.2.0", sha, sig)
    assert not ota.signature_ok(key, "cyd", "0.2.0", sha, sig[:-2])
    assert not ota.signature_ok("not hex", "cyd", "0.2.0", sha, sig)
