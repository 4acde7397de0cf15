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


def test_a_signature_holds_for_its_store_panel_board_version_manifest_and_seq_only():
    key = "0f" * 32
    sha = "ab" * 32
    fields = ["s1", "till-1", "cyd", "0.2.0", sha, False, 1700000000000]
    sig = _hex(ota.hmac_sha256(bytes([15] * 32), ota.update_text(*fields)))
    assert ota.signature_ok(key, ota.update_text(*fields), sig)
    assert ota.signature_ok(key, ota.update_text(*fields), sig.upper())
    for i, other in enumerate(["s2", "till-2", "s3_8048", "0.2.1", "cd" * 32, True,
                               1700000000001]):
        changed = list(fields)
        changed[i] = other
        assert not ota.signature_ok(key, ota.update_text(*changed), sig)
    assert not ota.signature_ok("1f" * 32, ota.update_text(*fields), sig)
    assert not ota.signature_ok(key, ota.update_text(*fields), sig[:-2])
    assert not ota.signature_ok("not hex", ota.update_text(*fields), sig)
    # A health check is another line: an update's signature is not one.
    assert not ota.signature_ok(key, ota.health_text("s1", "till-1", "0.2.0", 1700000000000),
                                sig)


def test_versions_compare_as_numbers():
    assert ota.version_key("0.10.0") > ota.version_key("0.9.12")
    assert ota.version_key("0.2.0+upgrade1") == ota.version_key("0.2.0")
    assert ota.version_key("1.0") < ota.version_key("1.0.1")
