"""What the project's web servers (the study pages, the AU editor app) share: security headers on every response,
the loopback check, and a server run in a thread of this process (tests, simulations, benchmarks)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

HEADERS = {
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
"""Sent with every response (besides each server's Content-Security-Policy); a route may set its own."""


class SecurityHeaders:
    """ASGI middleware: ``HEADERS`` and the content security policy ``csp`` on every response (a route may narrow
    or widen its own CSP)."""

    def __init__(self, app, csp: str) -> None:
        self.app = app
        self.state = app.state
        self.raw = [(k.encode(), v.encode()) for k, v in {"content-security-policy": csp, **HEADERS}.items()]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *((k, v) for k, v in self.raw if k not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


def loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost")


@contextmanager
def running(app, name: str = "server", timeout: float = 30.0) -> Iterator[str]:
    """``app`` served by uvicorn in a thread of this process on 127.0.0.1 (a free port); yields its base URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, access_log=False, log_level="warning", lifespan="off",
                            server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the {name} did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


def wait_until_serving(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    """Poll ``url`` until it answers 200 (a server started as ``process``); raise RuntimeError with the process's
    output when it exits first, or kill it and raise when ``timeout`` seconds pass."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"the server exited: {output.decode() if isinstance(output, bytes) else output}")
    process.kill()
    raise RuntimeError(f"no answer from {url} within {timeout:g} s")
