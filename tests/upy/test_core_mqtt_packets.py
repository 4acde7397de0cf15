# MQTT 3.1.1 packet encoding, byte for byte; runs under MicroPython and CPython.
import sys

from lbpanel import mqtt

# The byte-stream doubles the fuzz harness drives the reader with.
_ROOT = __file__.rsplit("/", 3)[0]  # the repository (tests/upy/<this file>)
sys.path.append(_ROOT + "/host/loyalty_button/fuzz")
from streams import Sink, Stream  # noqa: E402


def test_remaining_length_uses_mqtt_variable_length_encoding():
    assert mqtt._varint(0) == b"\x00"
    assert mqtt._varint(127) == b"\x7f"
    assert mqtt._varint(128) == b"\x80\x01"
    assert mqtt._varint(16383) == b"\xff\x7f"
    assert mqtt._varint(16384) == b"\x80\x80\x01"


def test_connect_packet_carries_will_and_credentials():
    pkt = mqtt.connect_packet("c1", 30, "u", "pw", ("t/s", b"off", 1, True))
    assert pkt[0] == 0x10
    body = pkt[2:]
    assert body[:6] == b"\x00\x04MQTT" and body[6] == 4
    # user, password, will retain, will QoS 1, will flag, clean session
    assert body[7] == 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02
    assert body[8:10] == b"\x00\x1e"
    assert body[10:] == b"\x00\x02c1" + b"\x00\x03t/s" + b"\x00\x03off" + b"\x00\x01u" + b"\x00\x02pw"


def test_publish_qos1_has_packet_id_and_flags():
    pkt = mqtt.publish_packet("a/b", b"hi", 1, True, 0x0102)
    assert pkt == b"\x33\x09\x00\x03a/b\x01\x02hi"
    assert mqtt.publish_packet("a", b"", 0, False, 0) == b"\x30\x03\x00\x01a"


def test_a_control_packet_claiming_a_megabyte_is_read_past_not_held():
    import asyncio
    got = []
    client = mqtt.Client("t", "127.0.0.1", on_message=lambda t, p, r: got.append((t, p)))
    head = b"\x90" + mqtt._varint(1000000)  # a "SUBACK" of 1 MB
    tail = mqtt.publish_packet("a/b", b"hi", 0, False, 0)
    # One allocation: the test's own megabyte, twice, did not fit the
    # unix port's default heap once the client's code grew.
    wire = bytearray(len(head) + 1000000 + len(tail))
    wire[:len(head)] = head
    wire[-len(tail):] = tail
    reader = mqtt._Buffered(Stream(wire))
    asked = []
    exactly = reader.exactly

    async def recording(n):
        asked.append(n)
        return await exactly(n)
    reader.exactly = recording
    client._reader, client._writer, client.up = reader, Sink(), True
    asyncio.run(client._read_loop())
    # no buffer the size of the claim was ever asked for, and the link
    # went on to the next packet
    assert max(asked) < 1024
    assert got == [("a/b", b"hi")]
