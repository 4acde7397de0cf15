# Seeded mutations of valid samples, for the fuzz harness. Runs under
# CPython and MicroPython alike (the panel's parsers are fuzzed on the
# interpreter they ship on), so: no typing, no copy, no random module --
# a small xorshift generator gives the same cases on both for one seed.

# Bytes that tend to matter to a JSON or MQTT reader.
TOKENS = (b"", b"\x00", b"\xff", b"\x7f", b"\x80", b"[", b"{", b"]", b"}", b'"', b"\\",
          b"\\u", b"\\udcff", b"\\ud83d", b"-", b"0", b"-1", b"1e999", b"9" * 40, b"null",
          b"true", b"[]", b"{}", b",", b":", b"\xed\xb3\xbf", b"\xc3", b"\xf0\x9f\x98",
          b"[" * 64, b"{\"a\":" * 20, b" " * 300, b"\n", b"\r\nsig=", b"\xff\xff\xff\x7f")


class Rng:
    def __init__(self, seed):
        self.state = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def next(self):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x

    def below(self, n):
        return self.next() % n if n > 0 else 0

    def chance(self, one_in):
        return self.below(one_in) == 0

    def pick(self, seq):
        return seq[self.below(len(seq))]


def mutate_bytes(rng, data, pool=()):
    """One to four edits of `data`: bit flips, byte sets, tokens inserted,
    spans cut, repeated or spliced in from another sample of `pool`.
    (Plain bytes and slices: MicroPython's bytearray cannot change size.)"""
    out = bytes(data)
    for _ in range(1 + rng.below(4)):
        n = len(out)
        op = rng.below(8)
        at = rng.below(n + 1)
        if op == 0 and n:
            at = rng.below(n)
            out = out[:at] + bytes([out[at] ^ (1 << rng.below(8))]) + out[at + 1:]
        elif op == 1 and n:
            at = rng.below(n)
            out = out[:at] + bytes([rng.below(256)]) + out[at + 1:]
        elif op == 2:
            out = out[:at] + rng.pick(TOKENS) + out[at:]
        elif op == 3 and n:
            out = out[:at] + out[at + 1 + rng.below(16):]
        elif op == 4 and n:
            span = out[at:at + 1 + rng.below(32)]
            out = out[:at] + span * (1 + rng.below(4)) + out[at:]
        elif op == 5 and pool:
            other = rng.pick(pool)
            start = rng.below(len(other) + 1)
            out = out[:at] + other[start:start + 1 + rng.below(64)] + out[at:]
        elif op == 6:
            out = out[:at]
        else:
            out = out[:at] + bytes([rng.below(256) for _ in range(1 + rng.below(8))]) + out[at:]
    return out
