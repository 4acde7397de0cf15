"""`loyalty-button central serve`: one worker of the central service. Run as
many as the load needs behind any HTTP balancer (docs/central.md); each
holds a small pool of PostgreSQL connections and nothing else."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl

from aiohttp import web

from ..service import sdnotify
from ..service.conn_cap import quiet_loop_errors
from . import app as central_app, mail, schema

log = logging.getLogger(__name__)


def migrate(cfg) -> None:
    import psycopg
    with psycopg.connect(cfg.dsn, autocommit=True, connect_timeout=10) as conn:
        schema.migrate(conn)


async def serve(cfg, ready_file=None, reports: bool = True) -> None:
    from psycopg_pool import AsyncConnectionPool
    migrate(cfg)
    quiet_loop_errors(asyncio.get_running_loop())
    pool = AsyncConnectionPool(cfg.dsn, min_size=cfg.pool_min, max_size=cfg.pool_max,
                               kwargs={"autocommit": True}, open=False,
                               reconnect_timeout=0)  # keep trying while the database is away
    await pool.open(wait=False)
    read_pool = None
    if cfg.replica_dsn:
        read_pool = AsyncConnectionPool(cfg.replica_dsn, min_size=cfg.pool_min,
                                        max_size=cfg.pool_max, kwargs={"autocommit": True},
                                        open=False, reconnect_timeout=0)
        await read_pool.open(wait=False)
    app = central_app.make_app(cfg, pool, read_pool)
    # The ingest inflates gzip itself, within its limit (ingest.decode),
    # rather than aiohttp inflating a body of any size first.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False)
    await runner.setup()
    context = None
    if cfg.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cfg.tls_cert), str(cfg.tls_key))
    # reuse_port: several workers (the package's loyalty-button-central@N)
    # listen on one port and the kernel spreads the connections.
    site = web.TCPSite(runner, cfg.bind, cfg.port, ssl_context=context, reuse_address=True,
                       reuse_port=True)
    await site.start()
    sender = asyncio.create_task(mail.scheduler(cfg, pool, read_pool)) if reports else None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watchdog = sdnotify.ready(f"central: listening on {cfg.bind}:{cfg.port}")
    log.info("central service listening on %s://%s:%d", "https" if context else "http",
             cfg.bind, cfg.port)
    if ready_file:
        with open(ready_file, "w") as f:
            f.write(str(os.getpid()))
    await stop.wait()
    watchdog.cancel()
    log.info("stopping")
    if sender:
        sender.cancel()
    await runner.cleanup()
    await pool.close()
    if read_pool:
        await read_pool.close()
