# A small asyncio MQTT 3.1.1 client with what the panel needs: CONNECT with
# credentials and a last will, PUBLISH at QoS 0/1 with PUBACK tracking,
# SUBSCRIBE, keepalive pings, clean DISCONNECT. One connection per instance
# lifetime is not assumed: connect() may be called again after the link is
# lost; reconnect policy (backoff) belongs to the caller (app.py, _link).
#
# micropython-lib's umqtt and mqtt_as cannot be installed here, and umqtt is
# blocking; this one shares the panel's single asyncio loop with the UI.
# Runs under MicroPython and CPython.
import asyncio
import struct
import sys

from lbpanel import log
from lbpanel.clock import ticks_diff, ticks_ms

_TAG = "mqtt"
# Linux and lwIP agree on these; MicroPython's socket module lacks the names.
_IPPROTO_TCP = 6
_TCP_NODELAY = 1

CONNACK_REASONS = {
    1: "the broker does not speak MQTT 3.1.1",
    2: "the broker rejected the client id",
    3: "the broker is unavailable",
    4: "bad user name or password",
    # Mosquitto answers a wrong password with 5, not 4.
    5: "not authorised: check broker.user and broker.password in panel.json",
}


class MQTTError(Exception):
    pass


def _why(exc):
    # mbedTLS's messages start with a newline under MicroPython.
    return str(exc).strip() or type(exc).__name__


def _varint(n):
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _str(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def _packet(first, body):
    return bytes([first]) + _varint(len(body)) + body


def connect_packet(client_id, keepalive, user=None, password=None, will=None, clean=True):
    """will = (topic, payload bytes, qos, retain) or None."""
    flags = 0x02 if clean else 0
    payload = _str(client_id)
    if will:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _str(topic) + _str(message)
    if user is not None:
        flags |= 0x80
        payload += _str(user)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
    body = _str(b"MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload
    return _packet(0x10, body)


def publish_packet(topic, payload, qos, retain, pid, dup=False):
    first = 0x30 | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    body = _str(topic) + (struct.pack("!H", pid) if qos else b"") + payload
    return _packet(first, body)


class _Buffered:
    """Serves exact lengths from one receive buffer allocated at start.

    On a 96 KB heap, reading by freshly allocated pieces (and joining them)
    fragmented the heap until a 512-byte allocation failed with 18 KB free
    and took the link down. Here the stream is read into the same buffer
    (`readinto`, where the stream has it: MicroPython's does), and only what
    a caller keeps is allocated, at its exact size. One MQTT packet usually
    costs one read."""

    def __init__(self, stream, size=256):
        self.stream = stream
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.start = 0
        self.end = 0
        self._readinto = getattr(stream, "readinto", None)

    async def _fill(self, into):
        if self._readinto is not None:
            got = await self._readinto(into)
        else:  # CPython's StreamReader has no readinto
            data = await self.stream.read(len(into))
            got = len(data)
            into[:got] = data
        if not got:
            raise EOFError("connection closed")
        return got

    async def _refill(self):
        self.start = 0
        self.end = await self._fill(self.mv)

    async def byte(self):
        if self.start == self.end:
            await self._refill()
        self.start += 1
        return self.buf[self.start - 1]

    async def exactly(self, n):
        avail = self.end - self.start
        if avail >= n:
            self.start += n
            return bytes(self.mv[self.start - n:self.start])
        out = bytearray(n)
        view = memoryview(out)
        view[:avail] = self.mv[self.start:self.end]
        got = avail
        self.start = self.end = 0
        while got < n:
            if n - got >= len(self.buf):
                got += await self._fill(view[got:])
            else:
                await self._refill()
                take = min(self.end, n - got)
                view[got:got + take] = self.mv[:take]
                self.start = take
                got += take
        return out

    async def skip(self, n):
        """Read past n bytes without keeping any of them."""
        while True:
            take = min(self.end - self.start, n)
            self.start += take
            n -= take
            if not n:
                return
            await self._refill()


class Client:
    def __init__(self, client_id, host, port=1883, user=None, password=None,
                 keepalive=30, will=None, on_message=None, on_oversized=None,
                 max_packet=2048, ca_file=None):
        self.client_id = client_id
        # The store's CA (DER) on flash: set, the link is TLS and the
        # broker must hold a certificate from that CA for `host`.
        self.ca_file = ca_file
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.will = will
        self.on_message = on_message  # (topic str, payload bytes, retained)
        self.on_oversized = on_oversized  # (topic str, size)
        # A packet larger than this is read past in small chunks and never
        # held in memory whole: an ESP32 heap cannot take a stray megabyte.
        self.max_packet = max_packet
        self.up = False
        self.lost_reason = None
        self._reader = None
        self._writer = None
        self._lock = asyncio.Lock()
        self._pid = 0
        self._pending = {}  # pid -> [Event, acked, kind]
        self._tasks = []
        self._down = asyncio.Event()
        self._last_rx = 0
        self._last_tx = 0

    # --- connection ---------------------------------------------------------

    async def connect(self, timeout_s=5):
        """Open the link and complete the MQTT handshake, or raise
        MQTTError/OSError saying why."""
        self._close_socket()
        self._down = asyncio.Event()
        self.lost_reason = None
        ctx = self._tls_context() if self.ca_file else None
        try:
            if ctx is not None and sys.implementation.name == "micropython":
                # MicroPython: TCP_NODELAY goes on the TCP socket before
                # the TLS layer wraps it (its SSLSocket has no setsockopt);
                # the handshake runs with the first write.
                stream, self._writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), timeout_s)
                self._set_nodelay()
                stream.s = ctx.wrap_socket(stream.s, server_hostname=self.host,
                                           do_handshake_on_connect=False)
            else:
                kw = {"ssl": ctx, "server_hostname": self.host} if ctx is not None else {}
                stream, self._writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, **kw), timeout_s)
                self._set_nodelay()
            self._reader = _Buffered(stream)
        except asyncio.TimeoutError:
            raise MQTTError("no answer from %s:%d within %ds" % (self.host, self.port, timeout_s))
        except ValueError as e:  # MicroPython's TLS errors; CPython's are OSErrors
            raise MQTTError("TLS to %s:%d failed: %s" % (self.host, self.port, _why(e)))
        pkt = connect_packet(self.client_id, self.keepalive, self.user, self.password, self.will)
        try:
            # Under TLS the first write also runs the handshake: bounded too.
            await asyncio.wait_for(self._send(pkt), timeout_s)
            head = await asyncio.wait_for(self._reader.exactly(4), timeout_s)
        except asyncio.TimeoutError:
            self._close_socket()
            raise MQTTError("broker %s:%d did not answer CONNECT" % (self.host, self.port))
        except (OSError, EOFError, ValueError) as e:
            self._close_socket()
            raise MQTTError("connection to %s:%d failed: %s" % (self.host, self.port, _why(e)))
        if head[0] != 0x20 or head[1] != 2:
            self._close_socket()
            raise MQTTError("broker sent %r instead of CONNACK" % head)
        if head[3] != 0:
            self._close_socket()
            raise MQTTError("broker refused the connection: %s"
                            % CONNACK_REASONS.get(head[3], "code %d" % head[3]))
        self.up = True
        self._last_rx = ticks_ms()
        self._tasks = [asyncio.create_task(self._read_loop()),
                       asyncio.create_task(self._keepalive_loop())]

    def _tls_context(self):
        """A client context that trusts only the store's CA. Made per
        connection and dropped with it: a panel keeps no TLS state between
        links (heap)."""
        import ssl  # only a panel on TLS pays for the module
        try:
            with open(self.ca_file, "rb") as f:
                ca = f.read()
        except OSError as e:
            raise MQTTError("TLS: cannot read the store's CA %s: %s" % (self.ca_file, _why(e)))
        try:
            if hasattr(ssl, "create_default_context"):  # CPython
                return ssl.create_default_context(cadata=ca)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            # MicroPython's client context verifies nothing unless told.
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=ca)
            return ctx
        except (ValueError, OSError) as e:
            raise MQTTError("TLS: %s is not a CA certificate in DER form: %s"
                            % (self.ca_file, _why(e)))

    def _set_nodelay(self):
        # Without TCP_NODELAY every small MQTT packet waits ~40 ms for the
        # peer's delayed ACK (measured on this project's loopback).
        sock = getattr(self._writer, "s", None)  # MicroPython stream
        if sock is None:
            sock = self._writer.get_extra_info("socket")  # CPython
        try:
            sock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        except (OSError, AttributeError) as e:
            log.warning(_TAG, "TCP_NODELAY not set: %s" % e)

    async def disconnect(self):
        """Say goodbye: the broker then does not publish the will."""
        if self.up:
            try:
                await self._send(b"\xe0\x00")
            except OSError:
                pass
        self._lost("disconnected")

    async def wait_down(self):
        await self._down.wait()

    def _lost(self, reason):
        if self.up and reason != "disconnected":
            log.warning(_TAG, "link down: %s" % reason)
        self.up = False
        if self.lost_reason is None:
            self.lost_reason = reason
        for waiter in self._pending.values():
            waiter[0].set()  # wake publishers; acked stays False
        self._pending = {}
        current = asyncio.current_task() if hasattr(asyncio, "current_task") else None
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._tasks = []
        self._close_socket()
        self._down.set()

    def _close_socket(self):
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:
                pass
        self._writer = None
        self._reader = None

    # --- sending ------------------------------------------------------------

    async def _send(self, data):
        async with self._lock:
            if self._writer is None:
                raise OSError("not connected")
            self._writer.write(data)
            await self._writer.drain()
            self._last_tx = ticks_ms()

    def _next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    async def _send_and_wait(self, data, pid, kind, timeout_s):
        waiter = [asyncio.Event(), False, kind]
        self._pending[pid] = waiter
        try:
            await self._send(data)
            await asyncio.wait_for(waiter[0].wait(), timeout_s)
        except asyncio.TimeoutError:
            raise MQTTError("no %s for packet %d within %ds" % (kind, pid, timeout_s))
        except OSError as e:
            self._lost("send failed: %s" % e)
            raise MQTTError("send failed: %s" % e)
        finally:
            self._pending.pop(pid, None)
        if not waiter[1]:
            raise MQTTError("link lost before %s" % kind)

    async def publish(self, topic, payload, qos=0, retain=False, timeout_s=10):
        """QoS 1 returns only once the broker acknowledged (PUBACK); on any
        failure it raises and the message must be considered unsent."""
        if not self.up:
            raise MQTTError("not connected")
        if qos == 0:
            try:
                await self._send(publish_packet(topic, payload, 0, retain, 0))
            except OSError as e:
                self._lost("send failed: %s" % e)
                raise MQTTError("send failed: %s" % e)
            return
        pid = self._next_pid()
        await self._send_and_wait(publish_packet(topic, payload, 1, retain, pid),
                                  pid, "PUBACK", timeout_s)

    async def subscribe(self, topics, timeout_s=10):
        """topics: list of (filter, qos)."""
        if not self.up:
            raise MQTTError("not connected")
        pid = self._next_pid()
        body = struct.pack("!H", pid)
        for topic, qos in topics:
            body += _str(topic) + bytes([qos])
        await self._send_and_wait(_packet(0x82, body), pid, "SUBACK", timeout_s)

    # --- receiving ----------------------------------------------------------

    async def _read_loop(self):
        try:
            while True:
                first = await self._reader.byte()
                length = 0
                shift = 0
                while True:
                    byte = await self._reader.byte()
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                    if shift > 21:
                        raise MQTTError("bad packet length")
                self._last_rx = ticks_ms()
                if first >> 4 == 3:
                    await self._on_publish(first, length)
                    continue
                if length > 64:
                    # The broker's control packets (PUBACK, SUBACK,
                    # PINGRESP) are a few bytes: never allocate for a
                    # claimed megabyte, read past it.
                    await self._reader.skip(length)
                    log.warning(_TAG, "skipped a %d-byte packet of type %d"
                                % (length, first >> 4))
                    continue
                body = await self._reader.exactly(length) if length else b""
                self._on_control(first >> 4, body)
        except asyncio.CancelledError:
            raise
        except (OSError, EOFError) as e:
            self._lost("connection closed (%s)" % _why(e))
        except Exception as e:
            self._lost("protocol error: %s" % e)

    def _on_control(self, ptype, body):
        if ptype in (4, 9) and len(body) >= 2:  # PUBACK, SUBACK
            pid = struct.unpack("!H", body[:2])[0]
            waiter = self._pending.get(pid)
            if waiter is not None:
                if ptype == 9 and 0x80 in body[2:]:
                    log.error(_TAG, "broker refused a subscription (ACL?)")
                else:
                    waiter[1] = True
                waiter[0].set()
        elif ptype == 13:  # PINGRESP
            pass
        else:
            log.warning(_TAG, "ignored packet type %d" % ptype)

    async def _on_publish(self, first, length):
        qos = (first >> 1) & 0x03
        retained = bool(first & 0x01)
        raw = await self._reader.exactly(2)
        tlen = struct.unpack("!H", raw)[0]
        if tlen + 2 > length:
            raise MQTTError("bad PUBLISH topic length")
        topic = (await self._reader.exactly(tlen)).decode()
        used = 2 + tlen
        pid = 0
        if qos:
            pid = struct.unpack("!H", await self._reader.exactly(2))[0]
            used += 2
        remaining = length - used
        if length > self.max_packet:
            await self._reader.skip(remaining)
            if self.on_oversized:
                self._safe(self.on_oversized, topic, length)
        else:
            payload = await self._reader.exactly(remaining) if remaining else b""
            if self.on_message:
                self._safe(self.on_message, topic, payload, retained)
        if qos:
            # Acknowledge even what we refused: a redelivery would be refused
            # again, and would only cost the panel more memory and time.
            await self._send(b"\x40\x02" + struct.pack("!H", pid))

    def _safe(self, fn, *args):
        try:
            fn(*args)
        except Exception as e:
            log.exception(_TAG, "message handler failed", e)

    async def _keepalive_loop(self):
        period = self.keepalive
        while True:
            await asyncio.sleep(1)
            now = ticks_ms()
            if ticks_diff(now, self._last_rx) > period * 1500:
                self._lost("no word from the broker for %ds" % (period * 3 // 2))
                return
            if ticks_diff(now, self._last_tx) >= period * 500:
                try:
                    await self._send(b"\xc0\x00")
                except OSError as e:
                    self._lost("ping failed: %s" % e)
                    return
