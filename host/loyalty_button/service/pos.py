"""The two ways a till reaches the concentrator (docs/protocol.md, "POS ->
host"): a UDP datagram and an HTTP endpoint. Both hand a checked receipt to
Concentrator.offer(); every refusal is logged (rate-limited), counted and
kept in the record store's `rejects` table."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from pathlib import Path

from aiohttp import web

from ..ratelimit import Buckets
from .conn_cap import ConnectionCap

from . import dashboard, receipt as receipt_mod
from .receipt import ReceiptError
from .records import MAX_RAW

log = logging.getLogger(__name__)

# How long a POS's HTTP request waits for its record to be committed.
STORE_WAIT_S = 5


def runner(app: web.Application, timeout_s: float) -> web.AppRunner:
    """An aiohttp runner whose connections get `timeout_s` for a request's
    headers: aiohttp's keep-alive timer starts with the connection and with
    each finished request, and closes a connection still waiting for a
    whole request by then (its default is an hour: a half-open or
    trickling client would hold a connection that long)."""
    return web.AppRunner(app, access_log=None, keepalive_timeout=timeout_s)


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The body, or its first limit + 1 bytes if it is longer. Raises
    asyncio.TimeoutError after `timeout_s` (pos.request_timeout_s)."""
    async def read() -> bytes:
        chunks, size = [], 0
        while size <= limit:
            chunk = await request.content.read(limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    return await asyncio.wait_for(read(), timeout_s)


async def _first_bytes(request: web.Request, timeout_s: float) -> bytes | None:
    """What a refused request sent, for `rejects` (its first MAX_RAW bytes)."""
    try:
        return (await read_body(request, MAX_RAW, timeout_s))[:MAX_RAW] or None
    except (asyncio.TimeoutError, OSError, ValueError):
        return None


# Refused datagrams kept in `rejects` (for the integrator to see what was
# sent), per source address: a flood of them is counted, not each written.
REJECTS_KEPT_PER_S, REJECTS_KEPT_BURST = 1, 20


class UdpReceipts(asyncio.DatagramProtocol):
    def __init__(self, conc):
        self.conc = conc
        self.kept = Buckets(REJECTS_KEPT_PER_S, REJECTS_KEPT_BURST)

    def datagram_received(self, data: bytes, addr) -> None:
        conc = self.conc
        conc.counters["udp_rx"] += 1
        try:
            doc = receipt_mod.open_datagram(data, conc.cfg.pos_key)
            receipt = receipt_mod.validate(doc, conc.store)
            conc.replay.check(receipt["till"], receipt["id"], receipt["ts"], time.time())
            status, session, _ = conc.offer(receipt, "udp")
        except ReceiptError as e:
            self._refuse(e, data, addr)
            return
        except Exception:  # a bug must cost one datagram, never the listener
            conc.counters["udp_error"] += 1
            conc.counters["udp_refused"] += 1
            log.exception("UDP datagram from %s:%d could not be handled", *addr[:2])
            conc.records.reject(f"udp:{addr[0]}", "error", "internal error", data)
            return
        conc.counters["udp_" + status] += 1

    def _refuse(self, e: ReceiptError, data: bytes, addr) -> None:
        conc = self.conc
        conc.counters["udp_" + e.code] += 1
        conc.counters["udp_refused"] += 1  # all codes together, for the minute's line
        conc.limit("udp_" + e.code, logging.WARNING, "UDP receipt from %s refused (%s): %s",
                   addr[0], e.code, e.message)
        if self.kept.take(addr[0]):
            conc.records.reject(f"udp:{addr[0]}", e.code, e.message, data)
        else:
            conc.counters["udp_rejects_not_kept"] += 1

    def error_received(self, exc) -> None:
        self.conc.counters["udp_socket_error"] += 1
        log.warning("UDP socket error: %s", exc)


def _bearer(request: web.Request, token: str) -> bool:
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def _error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    return web.json_response(ReceiptError(code, message, field).body(), status=status)


def http_app(conc, status, adverts=None) -> web.Application:
    """The POS endpoint, the host's status (`status()`) and the advert files
    (`adverts`: the store's AdvertLibrary, or None)."""
    token = conc.cfg.pos_token
    wait_s = conc.cfg.request_timeout_s

    async def post_receipt(request: web.Request) -> web.Response:
        conc.counters["http_rx"] += 1
        peer = request.remote or "?"

        def refuse(status: int, e: ReceiptError, raw: bytes | None = None) -> web.Response:
            conc.counters["http_" + e.code] += 1
            conc.counters["http_refused"] += 1
            conc.limit("http_" + e.code, logging.WARNING,
                       "HTTP receipt from %s refused (%d %s): %s", peer, status, e.code, e.message)
            conc.records.reject(f"http:{peer}", e.code, e.message, raw)
            return web.json_response(e.body(), status=status)

        if token and not _bearer(request, token):
            return refuse(401, ReceiptError("unauthorized", "missing or wrong bearer "
                                            "token (Authorization: Bearer <token>)"),
                          await _first_bytes(request, wait_s))
        if request.content_type != "application/json":
            return refuse(415, ReceiptError("content_type", "send Content-Type: "
                                            f"application/json, not {request.content_type!r}"),
                          await _first_bytes(request, wait_s))
        limit = receipt_mod.MAX_HTTP_BODY
        if request.content_length is not None and request.content_length > limit:
            return refuse(413, ReceiptError("too_large", f"body is {request.content_length} "
                                            f"bytes, limit {limit}"),
                          await _first_bytes(request, wait_s))
        try:
            body = await read_body(request, limit, wait_s)
        except asyncio.TimeoutError:
            return refuse(408, ReceiptError("timeout", f"the body did not arrive within "
                                            f"{conc.cfg.request_timeout_s} s"))
        if len(body) > limit:
            return refuse(413, ReceiptError("too_large", f"body is over {limit} bytes"),
                          body[:MAX_RAW])
        try:
            receipt = receipt_mod.validate(receipt_mod.parse_json(body), conc.store)
        except ReceiptError as e:
            return refuse(400, e, body)
        if not conc.ready:
            return refuse(503, ReceiptError("not_ready", "the host is starting (not yet "
                                            "connected to its broker); retry in a second"), body)
        try:
            status, session, durable = conc.offer(receipt, "http")
        except ReceiptError as e:
            return refuse(503 if e.code == "not_ready" else 400, e, body)
        if durable is not None and not durable.done():
            # 202 (and 200 for a retry) mean: the record is on disk. A disk
            # that is full or failing does not get a POS a yes: it gets a
            # 503 to retry, and the retry waits on the same write.
            try:
                await asyncio.wait_for(asyncio.shield(durable), STORE_WAIT_S)
            except asyncio.TimeoutError:
                return refuse(503, ReceiptError(
                    "not_stored", f"the receipt is taken but not yet on disk after "
                    f"{STORE_WAIT_S} s (the host's disk is full or failing); retry "
                    "later: the retry is answered once it is stored"), body)
        conc.counters["http_" + status] += 1
        reply = {"status": status, "session": session}
        # The phone survey's link, for the till to print on the receipt.
        link = conc.survey_url(session)
        if link:
            reply["survey_url"] = link
        return web.json_response(reply, status=202 if status == "accepted" else 200)

    readers = [t for t in (conc.cfg.read_token, token) if t]

    def may_read(request: web.Request) -> web.Response | None:
        """A record carries a loyalty id, and receipt numbers are easy to
        guess: reading needs the read token (or the POS token)."""
        if not readers:
            conc.counters["http_read_refused"] += 1
            return _error(401, "unauthorized", "the read API is off: set pos.read_token "
                                               "(or pos.token) in concentrator.yaml")
        if not any(_bearer(request, t) for t in readers):
            conc.counters["http_read_refused"] += 1
            conc.limit("http_read_refused", logging.WARNING, "read API: %s from %s without "
                       "a valid token", request.path, request.remote)
            return _error(401, "unauthorized", "missing or wrong bearer token "
                                               "(Authorization: Bearer <read token>)")
        return None

    async def get_status(request: web.Request) -> web.Response:
        return may_read(request) or web.json_response(status())

    async def get_record(request: web.Request) -> web.Response:
        refused = may_read(request)
        if refused:
            return refused
        rec = conc.records.get(request.match_info["id"])
        if rec is None:
            return _error(404, "not_found", "no record with this id")
        return web.json_response(rec)

    async def get_advert(request: web.Request) -> web.StreamResponse:
        # No token: the panels fetch these, and an advert is public anyway.
        path = adverts.file(request.match_info["board"], request.match_info["name"]) \
            if adverts else None
        if path is None:
            conc.counters["http_advert_not_found"] += 1
            conc.limit("http_advert_not_found", logging.WARNING,
                       "advert %s asked by %s is not here (an old manifest?)", request.path,
                       request.remote)
            return _error(404, "not_found", "no such advert file")
        conc.counters["http_advert_sent"] += 1
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    async def get_bundle_file(request: web.Request) -> web.StreamResponse:
        # No token, as adverts: a bundle is only worth anything to a panel
        # with the store's key for its signature (docs/ota.md).
        path = _bundle_file(conc.cfg.panels_bundles, request.match_info["bundle"],
                            request.match_info["rel"])
        if path is None:
            conc.counters["http_bundle_not_found"] += 1
            conc.limit("http_bundle_not_found", logging.WARNING,
                       "bundle file %s asked by %s is not here", request.path, request.remote)
            return _error(404, "not_found", "no such bundle file")
        conc.counters["http_bundle_sent"] += 1
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    async def not_found(request: web.Request) -> web.Response:
        return _error(404, "not_found", f"no such endpoint: {request.method} {request.path}")

    app = web.Application(client_max_size=receipt_mod.MAX_HTTP_BODY * 4)
    app.router.add_post("/api/v1/receipts", post_receipt)
    app.router.add_get("/api/v1/status", get_status)
    app.router.add_get("/api/v1/records/{id}", get_record)
    app.router.add_get("/adverts/{board}/{name}", get_advert)
    app.router.add_get("/bundles/{bundle}/{rel:.+}", get_bundle_file)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


_BUNDLE_NAME = re.compile(r"^[a-z0-9_]+-[A-Za-z0-9.+_-]+$")
_BUNDLE_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")


def _bundle_file(root: Path | None, bundle: str, rel: str) -> Path | None:
    """A file of a bundle folder under root, or None; nothing outside it
    (no '..', no absolute paths)."""
    if root is None or not _BUNDLE_NAME.match(bundle) or not _BUNDLE_PATH.match(rel) \
            or ".." in rel.split("/"):
        return None
    path = Path(root) / bundle / rel
    # No link either, at any level: the bundles folder is the service's to
    # write, and a link there would serve whatever file it names.
    for part in (Path(root) / bundle, *[Path(root) / bundle / Path(*Path(rel).parts[:i + 1])
                                        for i in range(len(Path(rel).parts))]):
        if part.is_symlink():
            return None
    return path if path.is_file() else None


class Listeners:
    def __init__(self):
        self.udp_transport = None
        self.runner: web.AppRunner | None = None
        self.udp_port = None
        self.http_port = None
        self.dashboard: web.AppRunner | None = None

    async def stop(self) -> None:
        if self.udp_transport:
            self.udp_transport.close()
        if self.runner:
            await self.runner.cleanup()
        if self.dashboard:
            await self.dashboard.cleanup()


async def start_listeners(conc, status, adverts=None) -> Listeners:
    """UDP and HTTP receipts for the concentrator `conc`; the dashboard."""
    cfg = conc.cfg
    out = Listeners()
    loop = asyncio.get_running_loop()
    if not cfg.pos_key and cfg.udp_port:
        log.warning("pos.key is not set: UDP receipts are not authenticated; anyone on the "
                    "store LAN can send them (see docs/protocol.md)")
    if cfg.udp_port:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: UdpReceipts(conc), local_addr=(cfg.bind, cfg.udp_port))
        out.udp_transport = transport
        out.udp_port = transport.get_extra_info("sockname")[1]
        log.info("POS UDP receipts on %s:%d", cfg.bind, out.udp_port)
    if cfg.http_port:
        out.runner = runner(http_app(conc, status, adverts), cfg.request_timeout_s)
        await out.runner.setup()
        ConnectionCap("pos_http", cfg.max_connections, cfg.max_connections_per_address,
                      conc.counters).install(out.runner)
        site = web.TCPSite(out.runner, cfg.bind, cfg.http_port)
        await site.start()
        out.http_port = out.runner.addresses[0][1]
        log.info("POS HTTP receipts on http://%s:%d/api/v1/receipts", cfg.bind, out.http_port)
    if cfg.dashboard_port:
        out.dashboard = await dashboard.start(cfg, status, counters=conc.counters)
    return out

