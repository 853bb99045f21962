"""Bind, print the address with its token, and serve until Ctrl-C or SIGTERM (uvicorn's own handling).

The socket is bound here, before uvicorn starts, so a port in use is a clear message and
``--port 0`` gets a free port whose number is printed.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Callable

import uvicorn

from imgindex.errors import ImgIndexError
from imgindex.serve.app import Review, create_app
from imgindex.serve.security import Guard, Secrets

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def serve(db_path: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 8765, read_only: bool = False,
          move_to: str | None = None, on_ready: Callable[[str, bool], None] | None = None) -> None:
    """Serve the review app of an existing index; ``on_ready(url, exposed)`` once it listens."""
    db_path = os.path.abspath(os.fspath(db_path))
    if not os.path.isfile(db_path):
        raise ImgIndexError(f"There is no index at {db_path}: scan some folders first (imgindex scan DIR --db ...).")
    if move_to is not None:
        move_to = os.path.abspath(os.path.expanduser(move_to))
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    exposed = not _is_loopback(host)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    hosts = None if host in ("0.0.0.0", "::") else {f"{h}:{port}" for h in {_bracketed(shown), *_aliases(host)}}
    keys = Secrets()
    review = Review(db_path, keys, read_only=read_only, move_to=move_to)
    app = Guard(create_app(review), keys, hosts)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                           server_header=False, date_header=False, timeout_graceful_shutdown=5))
    if on_ready is not None:
        on_ready(f"http://{_bracketed(shown)}:{port}/?token={keys.token}", exposed)
    try:
        server.run(sockets=[sock])
    finally:
        review.jobs.wait()
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every response after a connection's first waits 40 ms for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ImgIndexError(f"Port {port} is in use on {host}: give another with --port N (or --port 0 for any"
                                " free one).") from None
        raise ImgIndexError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _aliases(host: str) -> set[str]:
    """Names a browser may use for this address: the loopback ones answer to 127.0.0.1 and localhost."""
    return {"127.0.0.1", "localhost"} if host in ("127.0.0.1", "localhost") else {_bracketed(host)}


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
