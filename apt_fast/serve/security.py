"""Safety checks that run before any route: the Host header (DNS-rebinding protection when bound to a loopback
address, as Ollama does) and the request body cap."""

from __future__ import annotations

import ipaddress
import json
import socket

LOCAL_SUFFIXES = (".localhost", ".local", ".internal")


def host_of(header: str) -> str:
    """The host part of a Host header: ``[::1]:11434`` -> ``::1``, ``localhost:80`` -> ``localhost``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def is_local_host(header: str) -> bool:
    """Whether a Host header names this machine: empty, localhost, a loopback or private address, this machine's
    hostname, or a name under .localhost, .local or .internal."""
    host = host_of(header)
    if not host or host == "localhost" or host.endswith(LOCAL_SUFFIXES) or host == socket.gethostname().lower():
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


async def _send_error(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class SafetyMiddleware:
    """ASGI middleware: 403 for a non-local Host header when ``check_host``; 413 for a body over ``max_body``
    bytes by its Content-Length (bodies sent in chunks are capped as the routes read them)."""

    def __init__(self, app, *, check_host: bool, max_body: int):
        self.app = app
        self.check_host = check_host
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.check_host and not is_local_host(headers.get(b"host", b"").decode("latin-1")):
            return await _send_error(send, 403, "forbidden: the Host header does not name this machine")
        too_large = f"request body too large: the limit is {self.max_body} bytes"
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await _send_error(send, 413, too_large)
        return await self.app(scope, receive, send)
