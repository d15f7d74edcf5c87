"""Where the server listens: ``OLLAMA_HOST`` read as Ollama reads it ("host", "host:port", "[::1]:port",
"http://host", "https://host:port/path"), 127.0.0.1:11434 by default."""

from __future__ import annotations

import ipaddress

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11434


def parse_ollama_host(value: str | None) -> tuple[str, int]:
    """(host, port) of an OLLAMA_HOST value; an empty host (":8080") means every interface, as in Ollama."""
    text = (value or "").strip().strip("\"'")
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "http", text
    default_port = {"http": 80, "https": 443}.get(scheme, DEFAULT_PORT) if sep else DEFAULT_PORT
    hostport = rest.split("/", 1)[0]
    if not hostport:
        return DEFAULT_HOST, default_port
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
    else:
        host, port_text = hostport, ""
    if not port_text:
        return host or DEFAULT_HOST, default_port
    port = int(port_text) if port_text.isdigit() else -1
    return (host if host else "0.0.0.0"), (port if 0 <= port <= 65535 else default_port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
