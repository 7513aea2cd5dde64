"""A small HTTP endpoint for health and Prometheus metrics, shared by ``cleanroom serve``
(the host's) and an environment's health and metrics servers.

Loopback unless asked otherwise: the numbers describe a test host and are nobody
else's business, so any other address needs an explicit ``allow_remote`` and is logged.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from loguru import logger
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sandbox.errors import CleanroomError

Response = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[], Response]


def parse_address(addr: str) -> tuple[str, int]:
    """"host:port" (or "[v6]:port") → (host, port); port 0 picks a free one."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise CleanroomError(f"address {addr!r} is not host:port; give e.g. 127.0.0.1:9090 (port 0: any free port)")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, allow_remote: bool, what: str) -> None:
    if is_loopback(host):
        return
    if not allow_remote:
        raise CleanroomError(f"{what} would listen on {host}, beyond this host; bind 127.0.0.1, or pass "
                             "allow_remote=True (CLI: --allow-remote) to publish it on purpose")
    logger.warning("serving beyond loopback on request", what=what, host=host)


def metrics_route(registry: CollectorRegistry) -> Route:
    return lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry))


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class Endpoint:
    """A threading HTTP server answering GET on a few fixed paths."""

    def __init__(self, host: str, port: int, routes: dict[str, Route]) -> None:
        self.routes = dict(routes)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                route = endpoint.routes.get(self.path.split("?", 1)[0])
                if route is None:
                    code, ctype, body = 404, "text/plain", b"not found\n"
                else:
                    try:
                        code, ctype, body = route()
                    except Exception as exc:  # a failing collector is a 500, not a dead server
                        code, ctype, body = 500, "text/plain", f"{type(exc).__name__}\n".encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):  # requests are not worth a log line each
                pass

        server_class = _V6Server if ":" in host else ThreadingHTTPServer
        try:
            self.server = server_class((host, port), Handler)
        except OSError as exc:
            raise CleanroomError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another port "
                                 "(0: any free one)") from None
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"

    def start(self) -> Endpoint:
        """Serve on a daemon thread; returns at once."""
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"cleanroom-http-{self.address}",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()


def serve(addr: str, routes: dict[str, Route], *, allow_remote: bool, what: str) -> Endpoint:
    host, port = parse_address(addr)
    check_bind(host, allow_remote, what)
    return Endpoint(host, port, routes).start()
