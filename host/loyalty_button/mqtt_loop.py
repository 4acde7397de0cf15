"""A paho MQTT client driven by an asyncio loop (paho's socket callbacks), so
the concentrator runs on one thread: a question is written to the socket in
the same loop turn that took the receipt, with no hand-over to paho's own
network thread, and answers arrive as ordinary loop callbacks.

paho does not reconnect by itself in this mode; `MqttLoop` does, with a
doubling backoff, and reports the link state through `on_up`/`on_down`."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)


_READ_CHUNK = 65536


class StreamClient(mqtt.Client):
    """paho's client with fewer system calls, for a host that moves thousands
    of small packets a second. paho reads each packet with three recv()
    calls (its type, its length, its body) and writes each packet with its
    own send(); the profile of `tools/bench` found those calls a fifth of
    the concentrator's CPU. Here reads come out of one recv() of up to
    64 KiB, and everything paho writes in a loop turn leaves in one send()
    (`flush`). The MQTT protocol, sessions, QoS and retries stay paho's.

    Only for a client driven by `MqttLoop`: paho's own loop would not know
    that bytes wait in these buffers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._io_sock = None
        self._rbuf = bytearray()
        self._wbuf = bytearray()

    def _own(self) -> socket.socket:
        # A new connection starts with empty buffers: what was read from or
        # meant for the old one is no use to the new one (paho resends
        # unacknowledged QoS 1 messages itself after a reconnect).
        sock = self._sock
        if sock is None:
            raise ConnectionError("not connected")
        if sock is not self._io_sock:
            self._io_sock = sock
            self._rbuf.clear()
            self._wbuf.clear()
        return sock

    def _sock_recv(self, bufsize: int) -> bytes:
        sock = self._own()
        if not self._rbuf:
            try:
                data = sock.recv(_READ_CHUNK)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as err:
                raise BlockingIOError() from err
            if not data:
                return b""  # the broker closed the connection
            self._rbuf += data
        out = bytes(self._rbuf[:bufsize])
        del self._rbuf[:bufsize]
        return out

    def buffered(self) -> bool:
        """Bytes already read from the socket that paho has not taken yet."""
        return bool(self._rbuf)

    def _sock_send(self, buf) -> int:
        # paho counts the packet as written; `flush` writes it, in order.
        self._own()
        self._wbuf += buf
        return len(buf)

    def flush(self) -> bool:
        """Write what paho queued; False if the socket is full and the rest
        waits for it to drain. Raises OSError if the connection is gone."""
        sock = self._own()
        while self._wbuf:
            try:
                sent = sock.send(self._wbuf)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False
            del self._wbuf[:sent]
        return True

    def _sock_close(self) -> None:
        # paho closes the socket right after "writing" a DISCONNECT: send it
        # first, or the broker would see a lost client and publish its will.
        if self._sock is not None and self._sock is self._io_sock and self._wbuf:
            try:
                self._sock.setblocking(True)
                self._sock.settimeout(1.0)
                self._sock.sendall(self._wbuf)
            except OSError:
                pass
        self._wbuf.clear()
        self._rbuf.clear()
        self._io_sock = None
        super()._sock_close()


class MqttLoop:
    def __init__(self, client: StreamClient, host: str, port: int, keepalive: int = 30,
                 retry_max_s: float = 10.0):
        self.client = client
        self.host, self.port, self.keepalive = host, port, keepalive
        self.retry_max_s = retry_max_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self.up = asyncio.Event()
        self.on_up = None    # callback() after CONNACK accepted
        self.on_down = None  # callback(reason)
        self._misc: asyncio.Task | None = None
        self._runner: asyncio.Task | None = None
        self._lost = asyncio.Event()
        self._stopping = False
        self._got_in = False
        self._flush_pending = False
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = self._unregister_write
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected

    # --- paho's socket callbacks -> the loop ----------------------------------

    def _socket_open(self, client, userdata, sock) -> None:
        nodelay(client, userdata, sock)
        self.loop.add_reader(sock, self._readable)
        self._misc = self.loop.create_task(self._misc_loop())

    def _socket_close(self, client, userdata, sock) -> None:
        self.loop.remove_reader(sock)
        self.loop.remove_writer(sock)
        if self._misc:
            self._misc.cancel()
            self._misc = None

    def _readable(self) -> None:
        self.client.loop_read()
        # Whole packets may wait in the client's buffer, read by the same
        # recv(): no epoll event will come for them.
        while self.client.buffered() and self.client.loop_read() == mqtt.MQTT_ERR_SUCCESS:
            pass

    def _register_write(self, client, userdata, sock) -> None:
        # paho has packets to send. Write them at the end of this loop turn
        # (every question of the turn in one go) rather than after a round
        # trip through epoll; wait for writability only if the socket is full.
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self._flush, sock)

    def _flush(self, sock) -> None:
        self._flush_pending = False
        if self.client.socket() is not sock:
            return
        self.client.loop_write()
        if not self._send_buffered() or self.client.want_write():
            self.loop.add_writer(sock, self._writable)

    def _writable(self) -> None:
        # paho's loop_write drops the writer; _flush adds it back if needed.
        self._flush(self.client.socket())

    def _send_buffered(self) -> bool:
        """The client's queued bytes in one send(); False while the socket is full."""
        try:
            return self.client.flush()
        except OSError as e:
            # The read side sees the same loss and paho reconnects from there.
            log.debug("broker write failed: %s", e)
            return True

    def _unregister_write(self, client, userdata, sock) -> None:
        self.loop.remove_writer(sock)

    async def _misc_loop(self) -> None:
        # Keepalive pings and retries of unacknowledged messages.
        while self.client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:
            await asyncio.sleep(1)

    def _connected(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            log.error("broker %s:%d refused the connection: %s (check broker.user and "
                      "broker.password)", self.host, self.port, reason_code)
            return
        log.info("connected to broker %s:%d", self.host, self.port)
        self._got_in = True
        self.up.set()
        if self.on_up:
            self.on_up()

    def _disconnected(self, client, userdata, flags, reason_code, properties=None) -> None:
        was_up = self.up.is_set()
        self.up.clear()
        self._lost.set()
        if was_up and not self._stopping:
            log.warning("lost the broker %s:%d: %s", self.host, self.port, reason_code)
        if self.on_down:
            self.on_down(str(reason_code))

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._runner = self.loop.create_task(self._keep_connected())

    async def _keep_connected(self) -> None:
        delay = 0.5
        first = True
        while not self._stopping:
            self._lost.clear()
            self._got_in = False
            try:
                if first:
                    self.client.connect(self.host, self.port, self.keepalive)
                else:
                    self.client.reconnect()
                first = False
            except OSError as e:
                log.warning("cannot reach the broker %s:%d: %s; retrying in %.1fs",
                            self.host, self.port, e, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.retry_max_s)
                continue
            await self._lost.wait()
            if self._stopping:
                return
            # A refused login also ends here: back off, do not hammer.
            await asyncio.sleep(delay * (0.5 + random.random()))
            if self._got_in:
                delay = 0.5
            else:
                delay = min(delay * 2, self.retry_max_s)

    async def stop(self) -> None:
        self._stopping = True
        if self.up.is_set():
            self.client.disconnect()
            try:
                await asyncio.wait_for(self._lost.wait(), 2)
            except asyncio.TimeoutError:
                pass
        if self._runner:
            self._runner.cancel()
        if self._misc:
            self._misc.cancel()


def nodelay(client, userdata, sock) -> None:
    """paho's on_socket_open: MQTT packets here are small and must not wait
    ~40 ms for the peer's delayed ACK (paho does not set this itself)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
