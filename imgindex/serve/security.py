"""What every request must pass before any handler runs (a server that can delete files is a target).

- The ``Host`` header must name the address the server is bound to (DNS rebinding).
- The run's secret token must come with the request: in the URL once (``?token=``, then a
  strict, HttpOnly cookie and a redirect that drops it from the address bar), or as the cookie.
- A state-changing request must be a POST with the CSRF token in ``X-CSRF-Token`` and an
  ``Origin`` that is the server's own. No CORS headers are ever sent.
Refusals are plain 4xx responses; nothing behind the guard runs.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode

COOKIE = "imgindex_token"
SAFE_METHODS = {"GET", "HEAD"}
MAX_BODY = 1 << 20  # bytes: decisions and plans are small JSON


@dataclass(frozen=True)
class Secrets:
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))


def same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


class Guard:
    """ASGI middleware: checks Host, token, method, CSRF and Origin, then calls the app."""

    def __init__(self, app, keys: Secrets, hosts: set[str] | None):
        self.app, self.keys = app, keys
        self.hosts = hosts  # allowed Host header values; None: any (bound to every address, on request)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":  # the app has none: refuse every upgrade, so none skips these checks
            return await send({"type": "websocket.close", "code": 1008})
        if scope["type"] != "http":  # lifespan
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.hosts is not None and host not in self.hosts:
            return await _refuse(send, 421, "Misdirected request: this server answers to its own address only.")
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = dict(query).get("token")
        cookie = _cookie(headers.get("cookie", ""))
        if same(given, self.keys.token) and scope["method"] in SAFE_METHODS:
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            # the path percent-encoded (no CR/LF or non-Latin-1 in the header) and with one leading slash
            # ('//evil.example/' would be another site's address)
            path = "/" + quote(scope["path"].lstrip("/"))
            return await _login(send, path + (f"?{rest}" if rest else ""), self.keys.token)
        if not same(cookie, self.keys.token):
            return await _refuse(send, 403, "Forbidden: open the address imgindex serve printed (it holds the token).")
        if scope["method"] not in SAFE_METHODS:
            if scope["method"] != "POST":
                return await _refuse(send, 405, "Method not allowed.")
            allowed = self.hosts if self.hosts is not None else {host}  # on every address: the one asked for
            if headers.get("origin") not in {f"http://{h}" for h in allowed}:
                return await _refuse(send, 403, "Forbidden: a cross-site request.")
            if not same(headers.get("x-csrf-token"), self.keys.csrf):
                return await _refuse(send, 403, "Forbidden: missing or wrong CSRF token; reload the page.")
            if int(headers.get("content-length") or 0) > MAX_BODY:
                return await _refuse(send, 413, "Request too large.")
        return await self.app(scope, receive, send)


def _cookie(header: str) -> str | None:
    """Our cookie's value. Split by hand: SimpleCookie drops the whole header at the first malformed
    cookie, and cookies are shared across ports (another app on 127.0.0.1 may have set one)."""
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


async def _refuse(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


async def _login(send, location: str, token: str) -> None:
    cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode()),
                            (b"cache-control", b"no-store"), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
