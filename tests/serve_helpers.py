"""Running the real review server for tests: ``imgindex serve`` in a subprocess on a free port, and
plain HTTP requests to it (``http.client``: every header is the test's to choose)."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Server:
    url: str  # as printed, with the token
    base: str  # http://127.0.0.1:PORT
    host: str  # 127.0.0.1:PORT (the Host header a browser sends)
    token: str
    proc: subprocess.Popen
    log: list  # the server's stderr lines, read as they come (a full pipe would freeze the server)

    def request(self, method: str, path: str, *, body=None, headers: dict | None = None, cookie: bool = True,
                csrf: str | None = None, origin: bool = True) -> tuple[int, dict, bytes]:
        """(status, headers, body) of one request; by default as the page makes it (cookie, Origin, CSRF)."""
        conn = http.client.HTTPConnection(self.host, timeout=30)
        sent = {"Host": self.host}
        if cookie:
            sent["Cookie"] = f"imgindex_token={self.token}"
        if method == "POST" and origin:
            sent["Origin"] = self.base
        if csrf is not None:
            sent["X-CSRF-Token"] = csrf
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
            sent["Content-Length"] = str(len(data))
        sent.update(headers or {})
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in sent.items():
            conn.putheader(k, v)
        conn.endheaders(data)
        response = conn.getresponse()
        out = (response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        conn.close()
        return out

    def json(self, path: str, body=None, **options):
        status, _, raw = self.request("POST" if body is not None else "GET", path, body=body, **options)
        return status, json.loads(raw) if raw.startswith((b"{", b"[")) else raw

    def csrf(self) -> str:
        """The CSRF token, as the page reads it from its own HTML."""
        _, _, html = self.request("GET", "/")
        return re.search(rb'<meta name="csrf" content="([^"]+)">', html).group(1).decode()


@contextmanager
def serving(db: Path, *extra: str):
    """``imgindex serve --db DB --port 0 EXTRA...``; yields a Server once it answers; SIGTERM at the end."""
    proc = subprocess.Popen([sys.executable, "-m", "imgindex.cli", "serve", "--db", str(db), "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise AssertionError(f"serve did not start: {url} {proc.stderr.read()}")
        base, token = url.split("/?token=")
        log: list[str] = []
        threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
        server = Server(url, base, base.removeprefix("http://"), token, proc, log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                server.request("GET", "/api/state")
                break
            except OSError:
                time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
