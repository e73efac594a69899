"""`pkirepo serve`: one process, one event loop, HTTP (and the protocol front-ends
registered by the app factory), shut down in order on SIGTERM or SIGINT."""
from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from .clock import SystemClock
from .config import Settings
from .service import load_signers
from .sqlite_store import SQLiteStore

log = logging.getLogger("pkirepo")


async def serve(settings: Settings, *, http: tuple[str, int], ldap: str | None = None,
                shutdown_timeout: float = 10.0) -> int:
    from .app import create_app

    # LDAP front-end [added by the LDAP helper]: Twisted's asyncio reactor on this loop before
    # anything imports twisted.internet.reactor; the address from --ldap, else [ldap] listen.
    from ldap.listener import install_reactor
    from ldap.service import listen_address

    install_reactor(asyncio.get_running_loop())
    ldap = listen_address(settings, ldap)
    signers = load_signers(settings)  # before listening: a bad key refuses to start
    store = SQLiteStore(settings.store_path)
    await store.open()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = None
    try:
        app = create_app(settings, store=store, signers=signers, clock=SystemClock(), ldap_listen=ldap)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
        await runner.setup()  # runs the cleanup contexts' start-up: catch-up issuance first
        site = web.TCPSite(runner, http[0], http[1], reuse_address=True)
        await site.start()
        shown = f"[{http[0]}]" if ":" in http[0] else http[0]
        log.info("serving HTTP on http://%s:%d/ (CRL index: http://%s:%d/crl/)", shown, http[1], shown, http[1])
        for line in served_urls(app, f"http://{shown}:{http[1]}"):
            print(line, flush=True)
        # Tests and scripts wait for this line: everything above is listening by now.
        print(f"pkirepo: serving on http://{shown}:{http[1]}/", flush=True)
        await stop.wait()
        log.info("shutting down")
    finally:
        if runner is not None:
            # Stops accepting, drains in-flight requests, then runs the contexts' cleanup.
            await runner.cleanup()
        await store.close()
    return 0


def served_urls(app: web.Application, base: str) -> list[str]:
    """What this process serves, for the operator starting it."""
    from .app import EXTRA_URLS, PUBLICATION, SETTINGS

    settings = app[SETTINGS]
    lines = [f"CRL index:    {base}/crl/"]
    lines += [f"CRL:          {base}/crl/{name}.crl" for name in sorted(app[PUBLICATION].crls)]
    lines += [f"CA:           {base}/ca/{ca.name}.cer  {base}/ca/{ca.name}.p7c" for ca in settings.cas]
    lines += [f"certificates: {base}/certs/<issuer>/<serial-hex>.cer"]
    lines += app[EXTRA_URLS]
    return lines
