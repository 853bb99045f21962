"""imgindex serve under attack, over real HTTP: no token, a wrong token, a wrong Host, no CSRF, a foreign
Origin, paths in every parameter, huge and malformed requests. Each gets a 4xx and changes nothing: the
files under the library (and a secret beside it) hash the same afterwards, and the index holds no
decision, action or run.

Most tests share one server over one index that no test changes (``site``: it checks, after each test,
that nothing was changed). The requests are ones that would succeed without the protection under test
(the right body, the right cookie, the right CSRF, all but the one thing wrong), so each assertion fails
if that protection goes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from serve_helpers import Server, serving

from helpers import inventory, invoke, photo_like

GET_ROUTES = ("/", "/api/state", "/api/groups", "/api/groups/{group}", "/thumb/{image}", "/full/{image}",
              "/static/app.js", "/static/app.css")
POST_ROUTES = ("/api/ignore", "/api/unignore", "/api/keep", "/api/unkeep", "/api/reference", "/api/unreference",
               "/api/plan", "/api/apply", "/api/reviewed")
HOSTILE_NAMES = ("<img src=x onerror=alert(1)>.png", "quo\"te'd\nnew line & <b>.png")
SECRET = b"SENTINEL-SECRET-imgindex-must-never-serve-this"
NOT_SERVED = (SECRET, b"root:x:0:0", b"def create_app")  # the secret, /etc/passwd, the app's own source
WRITTEN_TABLES = ("decisions", "actions", "action_runs", "reviews")


@dataclass(frozen=True)
class Site:
    server: Server
    root: Path  # the indexed library
    outside: Path  # a folder beside it holding SECRET, never indexed
    db: Path
    csrf: str
    ids: dict[str, int]  # file name -> image id
    group: int  # the id of a group of the latest search

    def url(self, route: str) -> str:
        return route.format(group=self.group, image=self.ids["a.png"])

    def version(self) -> str:
        return self.server.json("/api/groups")[1]["version"]

    def body(self, route: str) -> dict:
        """A body with which ``route`` would change something (or, /api/plan, show a plan that would)."""
        a, b = self.ids["a.png"], self.ids["a.bmp"]
        if route == "/api/apply":  # a real plan, so that applying it would trash files
            status, plan = self.server.json("/api/plan", self.body("/api/plan"), csrf=self.csrf)
            assert status == 200 and plan["files"] >= 3
            return {"plan_id": plan["plan_id"]}
        return {"/api/ignore": {"image_ids": [a, b]}, "/api/unignore": {"image_ids": [a, b]},
                "/api/keep": {"image_id": b}, "/api/unkeep": {"image_id": b}, "/api/reference": {"image_id": a},
                "/api/unreference": {"image_id": a}, "/api/reviewed": {"group_ids": [self.group]},
                "/api/plan": {"command": "trash", "groups": "all", "version": self.version()}}[route]


def build_library(tmp: Path) -> tuple[Path, Path, Path]:
    """Three groups of same-pixel copies (one of them under hostile names), a secret beside the library, the index."""
    root, outside = tmp / "lib", tmp / "outside"
    names = {1: ("a.png", "a.bmp"), 2: ("sub/b.png", "sub/b.tif"), 3: HOSTILE_NAMES}
    for seed, group in names.items():
        for name in group:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            photo_like(seed).save(root / name)
    outside.mkdir()
    (outside / "passwd").write_bytes(SECRET)
    db = tmp / "i.db"
    assert invoke("find", root, "--db", db, "--processes", 1, "-q").returncode == 0
    return root, outside, db


def open_site(server: Server, root: Path, outside: Path, db: Path) -> Site:
    status, page = server.json("/api/groups")
    assert status == 200 and page["total"] == 3
    ids = {m["name"]: m["image_id"] for g in page["groups"] for m in g["members"]}
    return Site(server, root, outside, db, server.csrf(), ids, page["groups"][0]["group_id"])


def written(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in WRITTEN_TABLES}
    finally:
        conn.close()


@contextmanager
def served(db: Path, *extra: str) -> Iterator[tuple[Server, list[str]]]:
    """``serving``, and the server's stderr as read so far (complete shortly after it stopped)."""
    with serving(db, *extra) as server:
        yield server, server.log
    time.sleep(0.2)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    root, outside, db = build_library(tmp_path_factory.mktemp("serve-security"))
    with served(db) as (server, log):
        yield open_site(server, root, outside, db)
    assert "Traceback" not in "".join(log)  # no request made it crash (a 500)
    assert written(db) == dict.fromkeys(WRITTEN_TABLES, 0)


@pytest.fixture
def site(running):
    """The shared server; after the test, every file as it was and nothing written to the index (compared
    with before the test, so that a failure is the test's own; ``running`` checks the tables are empty)."""
    before = inventory(running.root, running.outside), written(running.db)
    yield running
    assert running.server.proc.poll() is None
    assert (inventory(running.root, running.outside), written(running.db)) == before


def post(site: Site, route: str, body, **options) -> tuple[int, dict, bytes]:
    """A POST as the page makes it (cookie, Origin, CSRF), unless ``options`` say otherwise."""
    options.setdefault("csrf", site.csrf)
    return site.server.request("POST", route, body=body, **options)


def raw(server: Server, request: bytes) -> tuple[int, bytes]:
    """(status, whole response) of bytes written as they are to the server's socket."""
    host, port = server.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(request)
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    return int(response.split(b" ", 2)[1]), response


def filled(value, names: dict):
    """``value`` with every ``{name}`` in its strings replaced, however deep."""
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [filled(v, names) for v in value]
    if isinstance(value, dict):
        return {k: filled(v, names) for k, v in value.items()}
    return value


def assert_nothing_leaked(body: bytes, site: Site) -> None:
    for secret in (*NOT_SERVED, site.csrf.encode(), site.server.token.encode()):
        assert secret not in body


# -- the token --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", GET_ROUTES)
def test_with_the_token_every_get_route_answers(site, route):
    """The control for the refusals below: the same requests with the cookie get through."""
    assert site.server.request("GET", site.url(route))[0] == 200


@pytest.mark.parametrize("route", GET_ROUTES)
def test_no_token_no_page(site, route):
    status, headers, body = site.server.request("GET", site.url(route), cookie=False)
    assert status == 403 and "set-cookie" not in headers
    assert_nothing_leaked(body, site)


@pytest.mark.parametrize("route", POST_ROUTES)
def test_no_token_no_change(site, route):
    status, headers, body = post(site, site.url(route), site.body(route), cookie=False)
    assert status == 403
    assert_nothing_leaked(body, site)


WRONG_TOKENS = {
    "another": lambda t: "A" * len(t),
    "one character short": lambda t: t[:-1],
    "one character more": lambda t: t + "x",
    "empty": lambda t: "",
    "quoted": lambda t: f'"{t}"x',
}


@pytest.mark.parametrize("route", ["/api/state", "/api/keep"])
@pytest.mark.parametrize("wrong", WRONG_TOKENS)
def test_a_wrong_token_is_refused_in_the_cookie_and_the_address(site, route, wrong):
    token = WRONG_TOKENS[wrong](site.server.token)
    method, body = ("POST", site.body(route)) if route.startswith("/api/keep") else ("GET", None)
    as_cookie = site.server.request(method, route, body=body, cookie=False, csrf=site.csrf,
                                    headers={"Cookie": f"imgindex_token={token}"})
    in_address = site.server.request(method, f"{route}?token={token}", body=body, cookie=False, csrf=site.csrf)
    for status, headers, _ in (as_cookie, in_address):
        assert status == 403 and "set-cookie" not in headers


@pytest.mark.parametrize("carrier", ["another cookie name", "authorization", "csrf header", "token on a POST"])
def test_the_token_counts_only_as_the_cookie_or_on_a_get(site, carrier):
    token = site.server.token
    headers = {"another cookie name": {"Cookie": f"token={token}"},
               "authorization": {"Authorization": f"Bearer {token}"},
               "csrf header": {"X-CSRF-Token": token}, "token on a POST": {}}[carrier]
    status, _, _ = post(site, "/api/keep?token=" + token, site.body("/api/keep"), cookie=False, headers=headers)
    assert status == 403


@pytest.mark.parametrize(("address", "location"), [
    ("/?token={token}", "/"),
    ("/api/groups?page=1&token={token}&per_page=5", "/api/groups?page=1&per_page=5"),
])
def test_the_token_in_the_address_becomes_a_strict_cookie_and_leaves_the_address(site, address, location):
    status, headers, body = site.server.request("GET", address.format(token=site.server.token), cookie=False)
    assert status == 303 and headers["location"] == location and body == b""
    cookie = [part.strip() for part in headers["set-cookie"].split(";")]
    assert cookie[0] == f"imgindex_token={site.server.token}"
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(cookie)
    assert site.server.request("GET", location)[0] == 200


@pytest.mark.parametrize("path", ["//evil.example/", "///evil.example/", "/\\evil.example/", "/%0d%0aX-Evil:%201",
                                  "/%E2%98%83", "/%00"])
def test_the_login_redirect_stays_on_this_site(site, path):
    """The Location is this server's own path: never another site's ('//host'), never a header of its own."""
    status, headers, _ = site.server.request("GET", f"{path}?token={site.server.token}", cookie=False)
    assert status == 303 and "x-evil" not in headers
    location = headers["location"]
    assert location.startswith("/") and location[1:2] not in ("/", "\\") and location.isascii()
    assert not re.search(r"[\x00-\x20]", location)


# -- Host and Origin ----------------------------------------------------------------------------------


def wrong_hosts(server: Server) -> list[str]:
    port = server.host.rsplit(":", 1)[1]
    return [f"evil.example:{port}", "127.0.0.1:1", "", "127.0.0.1", "localhost", f"127.0.0.1:{port}.evil.example",
            f"LOCALHOST:{port}", f"127.0.0.2:{port}", f"0.0.0.0:{port}", f"[::1]:{port}"]


def test_the_loopback_names_answer(site):
    """The control for the wrong Hosts: both names of this address do."""
    port = site.server.host.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert site.server.request("GET", "/api/state", headers={"Host": host})[0] == 200


def test_a_wrong_host_is_refused_even_with_the_cookie(site):
    server = site.server
    for host in wrong_hosts(server):
        status, headers, body = server.request("GET", "/", headers={"Host": host})
        assert 400 <= status < 500 and site.csrf.encode() not in body, host
        status, headers, _ = server.request("GET", f"/?token={server.token}", cookie=False, headers={"Host": host})
        assert 400 <= status < 500 and "set-cookie" not in headers, host  # a rebound name gets no cookie
        for route in POST_ROUTES:  # as a DNS-rebinding page would: its own name as Host and Origin
            status, _, _ = post(site, route, site.body(route), headers={"Host": host, "Origin": f"http://{host}"})
            assert 400 <= status < 500, (host, route)


def test_no_host_two_hosts_or_another_site_in_the_request_line_are_refused(site):
    cookie = f"Cookie: imgindex_token={site.server.token}\r\n"
    for request in (f"GET /api/state HTTP/1.0\r\n{cookie}\r\n",
                    f"GET /api/state HTTP/1.1\r\n{cookie}Connection: close\r\n\r\n",
                    f"GET /api/state HTTP/1.1\r\nHost: {site.server.host}\r\nHost: evil.example\r\n{cookie}"
                    "Connection: close\r\n\r\n",
                    f"GET http://evil.example/api/state HTTP/1.1\r\nHost: {site.server.host}\r\n{cookie}"
                    "Connection: close\r\n\r\n"):
        status, response = raw(site.server, request.encode())
        assert 400 <= status < 500 and b'"version"' not in response, request


POST_WITHOUT = {
    "no CSRF token": {"csrf": None},
    "a wrong CSRF token": {"csrf": "x" * 43},
    "an empty CSRF token": {"csrf": ""},
    "the secret token as CSRF": {"csrf": "{token}"},
    "the CSRF token in the address": {"csrf": None, "query": "?csrf={csrf}&x_csrf_token={csrf}"},
    "no Origin": {"origin": False},
    "a foreign Origin": {"headers": {"Origin": "http://evil.example"}},
    "a foreign Origin on our port": {"headers": {"Origin": "http://evil.example:{port}"}},
    "Origin null": {"headers": {"Origin": "null"}},
    "another port": {"headers": {"Origin": "http://127.0.0.1:1"}},
    "https": {"headers": {"Origin": "https://{host}"}},
    "an Origin with a path": {"headers": {"Origin": "http://{host}/x"}},
    "our Origin as a suffix": {"headers": {"Origin": "http://evil.example/{host}"}},
}


@pytest.mark.parametrize("route", POST_ROUTES)
@pytest.mark.parametrize("without", POST_WITHOUT)
def test_a_post_needs_the_csrf_token_and_our_own_origin(site, route, without):
    case = POST_WITHOUT[without]
    fill = {"csrf": site.csrf, "token": site.server.token, "host": site.server.host,
            "port": site.server.host.rsplit(":", 1)[1]}
    options = filled({"csrf": case.get("csrf", "{csrf}"), "origin": case.get("origin", True),
                      "headers": case.get("headers", {})}, fill)
    status, _, _ = site.server.request("POST", route + filled(case.get("query", ""), fill), body=site.body(route),
                                       **options)
    assert status == 403


@pytest.mark.parametrize("route", POST_ROUTES)
@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_only_a_post_changes_anything(site, route, method):
    status, _, _ = site.server.request(method, route, body=site.body(route), csrf=site.csrf,
                                       headers={"Origin": site.server.base})
    assert 400 <= status < 500


@pytest.mark.parametrize("route", GET_ROUTES)
def test_a_post_to_a_page_is_refused(site, route):
    status, _, body = post(site, site.url(route), {"image_id": site.ids["a.png"]})
    assert 400 <= status < 500 and not body.startswith(b"\x89PNG")


# -- paths: the client names ids, never a file ------------------------------------------------------------


def traversals(site: Site) -> list[str]:
    secret = site.outside / "passwd"
    relative = os.path.relpath(secret, site.root)
    return ["/thumb/../../etc/passwd", "/thumb/%2e%2e%2fetc%2fpasswd", "/thumb/%2e%2e/%2e%2e/etc/passwd",
            "/full//etc/passwd", "/full/%2Fetc%2Fpasswd", f"/full/{secret}", f"/full/{relative}",
            f"/full/1/{relative}", f"/thumb/{site.ids['a.png']}/../../../../{secret}", "/thumb/1.0", "/thumb/0x1",
            "/thumb/+1", "/thumb/-1", "/thumb/1%00", "/static/../serve/app.py", "/static/%2e%2e/serve/app.py",
            "/static/..%2fserve%2fapp.py", "/static/serve.js", "/static/app.js/../../app.py", "/static/app.py",
            "/static//etc/passwd", f"/static/{secret}", "/templates/serve.js", "/api/groups/../../../etc/passwd",
            "/api/groups/%2e%2e", "/..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd"]


def test_a_path_in_the_address_is_no_route(site):
    for address in traversals(site):
        status, _, body = site.server.request("GET", address)
        assert 400 <= status < 500, address
        assert_nothing_leaked(body, site)


@pytest.mark.parametrize("query", ["path={secret}", "file=../../outside/passwd", "image={secret}", "src=/etc/passwd"])
def test_a_path_in_the_query_is_ignored(site, query):
    """Extra parameters change nothing: the image served is the one indexed under that id, byte for byte."""
    query = query.format(secret=site.outside / "passwd")
    status, _, body = site.server.request("GET", f"/full/{site.ids['a.png']}?{query}")
    assert status == 200 and body == (site.root / "a.png").read_bytes()


@pytest.mark.parametrize("size", ["../../x", "/etc/passwd", "320/../../x", "%2e%2e", "161", "0", "-320", "3.2e2",
                                  "99999999999", "99999999999999999999", "%00", "%C2%B2", "%D9%A3%D9%A2%D9%A0", "abc"])
def test_a_thumbnail_size_is_one_of_the_sizes(site, size):
    status, headers, body = site.server.request("GET", f"/thumb/{site.ids['a.png']}?size={size}")
    assert status == 400 and headers["content-type"] == "application/json"


PATH_BODIES = [
    ("/api/keep", {"image_id": "/etc/passwd"}, 400),
    ("/api/keep", {"image_id": "{secret}"}, 400),
    ("/api/keep", {"image_id": "../outside/passwd"}, 400),
    ("/api/keep", {"path": "{secret}"}, 400),
    ("/api/unkeep", {"image_id": "1"}, 400),
    ("/api/reference", {"image_id": "/"}, 400),
    ("/api/reference", {"folder": "/", "image_id": "../x"}, 400),
    ("/api/reference", {"folders": ["{outside}"]}, 400),
    ("/api/unreference", {"image_id": ["/"]}, 400),
    ("/api/ignore", {"image_ids": ["../x", 1]}, 400),
    ("/api/ignore", {"image_ids": ["{secret}", "{secret}"]}, 400),
    ("/api/ignore", {"group_id": "/"}, 400),
    ("/api/ignore", {"paths": ["{secret}", "/etc/passwd"]}, 400),
    ("/api/unignore", {"image_ids": "/etc/passwd"}, 400),
    ("/api/plan", {"command": "trash", "groups": ["/"], "version": "{version}"}, 400),
    ("/api/plan", {"command": "trash", "groups": "/", "version": "{version}"}, 400),
    ("/api/plan", {"command": "move", "groups": "all", "version": "{version}", "destination": "{outside}"}, 400),
    ("/api/plan", {"command": "move", "groups": "all", "version": "{version}", "move_to": "{outside}"}, 400),
    ("/api/plan", {"command": "delete", "groups": "all", "version": "{version}", "permanent": True}, 400),
    ("/api/plan", {"command": "/bin/rm", "groups": "all", "version": "{version}"}, 400),
    ("/api/plan", {"command": ["trash"], "groups": "all", "version": "{version}"}, 400),
    ("/api/apply", {"plan_id": "../../etc/passwd"}, 409),
    ("/api/apply", {"plan_id": "{secret}"}, 409),
    ("/api/apply", {"plan_id": ["x"]}, 400),
    ("/api/apply", {"plan_id": "x" * 65}, 400),
]


@pytest.mark.parametrize(("route", "body", "expected"), PATH_BODIES,
                         ids=[f"{route} {json.dumps(body)}" for route, body, _ in PATH_BODIES])
def test_a_path_in_a_body_is_refused(site, route, body, expected):
    names = {"secret": site.outside / "passwd", "outside": site.outside, "version": site.version()}
    status, _, response = post(site, route, filled(body, names))
    assert status == expected
    assert_nothing_leaked(response, site)


@pytest.mark.parametrize("extra", [{"destination": "{outside}"}, {"move_to": "{outside}"}, {"trash": "{outside}"},
                                   {"permanent": True}, {"paths": ["{secret}"]}, {"root": "/"}])
def test_extra_keys_in_a_plan_are_ignored(site, extra):
    """The plan is what the server decides: to the trash, of indexed files; the client names no destination."""
    extra = filled(extra, {"outside": site.outside, "secret": site.outside / "passwd"})
    status, plan = site.server.json("/api/plan", {**site.body("/api/plan"), **extra}, csrf=site.csrf)
    assert status == 200 and plan["destination"] is None and plan["files"] >= 3
    for action in plan["actions"]:
        assert action["kind"] == "trash"  # not 'delete' (for good), whatever the body says
        assert Path(action["source"]).is_relative_to(site.root)
        assert not str(action["destination"] or "").startswith(str(site.outside))


def test_the_client_cannot_move_files_where_it_likes(site, tmp_path):
    """With serve --move-to, the destination is that folder's; without it, 'move' is refused (PATH_BODIES)."""
    move_to, elsewhere = tmp_path / "dups", tmp_path / "elsewhere"
    with served(site.db, "--move-to", str(move_to)) as (server, _):
        mover = open_site(server, site.root, site.outside, site.db)
        body = {"command": "move", "groups": "all", "version": mover.version(), "destination": str(elsewhere),
                "move_to": str(elsewhere)}
        status, plan = server.json("/api/plan", body, csrf=mover.csrf)
        assert status == 200 and plan["destination"] == str(move_to) and plan["files"] >= 3
        assert all(Path(a["destination"]).is_relative_to(move_to) for a in plan["actions"])
    assert not move_to.exists() and not elsewhere.exists()


# -- huge and malformed ---------------------------------------------------------------------------------


@pytest.mark.parametrize("route", POST_ROUTES)
def test_a_huge_body_is_refused(site, route):
    huge = json.dumps({**site.body(route), "padding": "x" * (2 << 20)}).encode()
    assert post(site, route, huge)[0] == 413
    status, _, _ = post(site, route, b"{}", headers={"Content-Length": str(2 << 20)})  # announced only
    assert status == 413


@pytest.mark.parametrize("route", POST_ROUTES)
def test_a_huge_chunked_body_is_refused(site, route):
    """No Content-Length to check up front: the app counts what it reads and stops past 1 MiB."""
    body = json.dumps({**site.body(route), "padding": "x" * (1 << 20)}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536])
                      for i in range(0, len(body), 65536))
    head = (f"POST {route} HTTP/1.1\r\nHost: {site.server.host}\r\nCookie: imgindex_token={site.server.token}\r\n"
            f"Origin: {site.server.base}\r\nX-CSRF-Token: {site.csrf}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    assert raw(site.server, head.encode() + chunks + b"0\r\n\r\n")[0] == 413


MALFORMED = {
    "not JSON": b"image_id=1",
    "not UTF-8": b"\xff\xfe{",
    "truncated": b'{"image_id": ',
    "an array": b"[1, 2]",
    "a string": b'"/etc/passwd"',
    "null": b"null",
    "a number": b"1",
    "nested too deep": b"[" * 100_000,
    "an object nested too deep": b'{"a": ' * 50_000,
    "a 5000-digit number": b'{"image_id": 1' + b"0" * 5000 + b"}",
    "NaN": b'{"image_id": NaN, "image_ids": [NaN, Infinity], "group_id": -Infinity, "plan_id": NaN}',
    "empty": b"",
    "an empty object": b"{}",
}


@pytest.mark.parametrize("route", POST_ROUTES)
@pytest.mark.parametrize("body", MALFORMED)
def test_a_malformed_body_is_a_bad_request(site, route, body):
    status, headers, _ = post(site, route, MALFORMED[body])
    assert status == 400 and headers["content-type"] == "application/json"


BAD_INTS = [2**70, 2**63, -1, 0, 1.5, 1e3, True, False, None, "1", [1], {"id": 1}]


@pytest.mark.parametrize("value", BAD_INTS, ids=repr)
@pytest.mark.parametrize("field", ["image_id", "image_ids", "group_id", "groups"])
def test_an_id_is_a_positive_64_bit_int(site, field, value):
    other = site.ids["a.png"]
    route, body = {"image_id": ("/api/keep", {"image_id": value}),
                   "image_ids": ("/api/ignore", {"image_ids": [value, other]}),
                   "group_id": ("/api/ignore", {"group_id": value}),
                   "groups": ("/api/plan", {"command": "trash", "groups": [value], "version": site.version()})}[field]
    assert post(site, route, body)[0] == 400


@pytest.mark.parametrize("ids", [[], ["a.png"], ["a.png"] * 1001, "a.png,a.bmp"],
                         ids=["none", "one", "1001", "a string"])
def test_a_list_of_ids_has_bounds(site, ids):
    ids = [site.ids[n] for n in ids] if isinstance(ids, list) else ids
    for route in ("/api/ignore", "/api/unignore"):
        assert post(site, route, {"image_ids": ids})[0] == 400


@pytest.mark.parametrize("query", ["page=99999999999999999999", "page=0", "page=-1", "page=1.5", "page=%C2%B2",
                                   "page=%D9%A1", "per_page=100000", "per_page=0", "min_members=abc", "min_members=1",
                                   "kind=<script>", "kind=../../etc", "decided=maybe", "folder=" + "x" * 10_000])
def test_a_bad_filter_is_a_bad_request(site, query):
    status, headers, body = site.server.request("GET", f"/api/groups?{query}")
    assert status == 400 and headers["content-type"] == "application/json"
    assert b"<script>" not in body


@pytest.mark.parametrize(("query", "shown"), [("folder=../../etc", 0), ("folder=%2Fetc%2Fpasswd", 0),
                                              ("folder=<script>alert(1)</script>", 0), ("folder=%ff%fe", 0),
                                              ("page=1000000", 0), ("per_page=200&page=2", 0),
                                              ("unknown=../../etc&folder=&path=/", 3)])
def test_a_filter_is_only_a_filter(site, query, shown):
    status, headers, body = site.server.request("GET", f"/api/groups?{query}")
    assert status == 200 and headers["content-type"] == "application/json"
    assert len(json.loads(body)["groups"]) == shown


@pytest.mark.parametrize("address", ["/thumb/999999", "/full/999999", "/thumb/0", "/full/0",
                                     "/thumb/9223372036854775808", "/full/99999999999999999999", "/thumb/" + "9" * 400,
                                     "/full/" + "9" * 5000, "/api/groups/999999", "/api/groups/" + "9" * 5000],
                         ids=lambda a: a if len(a) < 40 else f"{a[:12]}...{len(a)} characters")
def test_an_unknown_id_is_not_found(site, address):
    assert site.server.request("GET", address)[0] == 404


@pytest.mark.parametrize(("route", "body"), [("/api/keep", {"image_id": 999999}),
                                             ("/api/reference", {"image_id": 2**63 - 1}),
                                             ("/api/ignore", {"image_ids": ["a.png", 999999]}),
                                             ("/api/unignore", {"image_ids": [999999, 999998]})])
def test_an_unknown_id_in_a_body_is_not_found(site, route, body):
    body = {k: [site.ids.get(v, v) for v in vs] if isinstance(vs, list) else vs for k, vs in body.items()}
    assert post(site, route, body)[0] == 404


# -- what is served -------------------------------------------------------------------------------------


def test_a_file_changed_or_gone_since_indexing_is_not_served(tmp_path):
    root, outside, db = build_library(tmp_path)
    with served(db) as (server, log):
        site = open_site(server, root, outside, db)
        thumb = f"/thumb/{site.ids['a.png']}?size=160"
        assert server.request("GET", thumb)[0] == 200  # now in the thumbnail cache
        photo_like(9).save(root / "a.png")  # another picture
        bmp = bytearray((root / "a.bmp").read_bytes())  # the same size, other pixels, a later mtime
        bmp[-1] ^= 0xFF
        indexed = os.stat(root / "a.bmp")
        (root / "a.bmp").write_bytes(bmp)
        os.utime(root / "a.bmp", ns=(indexed.st_atime_ns, indexed.st_mtime_ns + 10**9))
        (root / "sub" / "b.png").unlink()
        (root / "sub" / "b.tif").unlink()
        (root / "sub" / "b.tif").symlink_to(outside / "passwd")  # a link to the secret in its place
        before = inventory(root, outside)
        for name in ("a.png", "a.bmp", "sub/b.png", "sub/b.tif"):
            image = site.ids[Path(name).name]
            for address in (f"/thumb/{image}?size=160", f"/thumb/{image}", f"/full/{image}"):
                status, headers, body = server.request("GET", address)
                assert status == 410 and headers["content-type"] == "application/json", address
                assert_nothing_leaked(body, site)
        assert server.request("GET", f"/full/{site.ids[HOSTILE_NAMES[0]]}")[0] == 200  # the others still are
    assert inventory(root, outside) == before
    assert written(db) == dict.fromkeys(WRITTEN_TABLES, 0)
    assert "Traceback" not in "".join(log)


def test_read_only_offers_no_way_to_decide_or_act(site):
    with served(site.db, "--read-only") as (server, log):
        viewer = open_site(server, site.root, site.outside, site.db)
        _, _, html = server.request("GET", "/")
        assert b'<meta name="read-only" content="yes">' in html
        assert re.search(rb'<div id="actions" class="[^"]*\bhidden\b', html)
        assert server.json("/api/state")[1]["read_only"] is True
        for route in POST_ROUTES:
            body = site.body(route)  # a valid body, made on the writable server (a plan there, for apply)
            status, headers, _ = server.request("POST", route, body=body, csrf=viewer.csrf)
            assert status == 403, route
        assert server.request("GET", f"/full/{viewer.ids['a.png']}")[0] == 200  # looking still works
    assert "Traceback" not in "".join(log)


def csp_directives(value: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in value.split(";") if d.strip()}


@pytest.mark.parametrize("route", GET_ROUTES + ("/thumb/999999",))
def test_every_response_has_a_strict_csp_and_nosniff(site, route):
    status, headers, _ = site.server.request("GET", site.url(route))
    csp = csp_directives(headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"] and csp["script-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:"} & {s for v in csp.values() for s in v}
    assert headers["x-content-type-options"] == "nosniff"


def test_no_response_allows_another_origin(site):
    evil = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-csrf-token, content-type"}
    answers = [site.server.request("GET", site.url(r), headers=evil) for r in GET_ROUTES]
    answers += [site.server.request("GET", site.url(r), headers=evil, cookie=False) for r in GET_ROUTES]
    answers += [site.server.request("OPTIONS", r, headers=evil, cookie=c) for r in POST_ROUTES for c in (True, False)]
    answers += [post(site, r, site.body(r), headers=evil) for r in POST_ROUTES]
    answers += [site.server.request("GET", f"/?token={site.server.token}", headers=evil, cookie=False)]
    assert {a[0] for a in answers} >= {200, 303, 403, 405}
    for _, headers, _ in answers:
        assert not [h for h in headers if h.startswith("access-control-")]


def test_hostile_file_names_are_data_never_markup(site):
    status, headers, body = site.server.request("GET", "/api/groups")
    assert status == 200 and headers["content-type"] == "application/json"
    names = {m["name"] for g in json.loads(body)["groups"] for m in g["members"]}
    assert set(HOSTILE_NAMES) <= names  # exactly as on disk, quotes, newline and all
    _, _, html = site.server.request("GET", "/")
    for name in (*names, "onerror", "a.bmp", "b.tif"):
        assert name.encode() not in html  # the page holds no file name: the script fills them in as text
    assert all(b" src=" in tag for tag in re.findall(rb"<script[^>]*>", html))  # no inline script
    assert not re.search(rb"<[^>]+\son\w+\s*=", html)  # no inline event handler
    _, _, script = site.server.request("GET", "/static/app.js")
    for sink in (b"innerHTML", b"outerHTML", b"insertAdjacentHTML", b"document.write", b"eval(", b"new Function"):
        assert sink not in script


# -- binding ----------------------------------------------------------------------------------------------


def listening(port: int) -> set[str]:
    """The addresses a TCP socket listens on at ``port`` (from /proc/net/tcp; Linux)."""
    found = set()
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("LOUD: no /proc/net/tcp (not Linux), so the addresses the server binds are not checked")
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        if not os.path.exists(table):  # IPv6 off: nothing can listen there
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, at = local.split(":")
            if int(at, 16) == port and state == "0A":  # LISTEN
                packed = bytes.fromhex(address)
                words = b"".join(packed[i : i + 4][::-1] for i in range(0, size, 4))
                found.add(socket.inet_ntop(socket.AF_INET if size == 4 else socket.AF_INET6, words))
    return found


def test_by_default_only_this_machine_can_connect(site):
    assert site.server.url.startswith("http://127.0.0.1:")
    assert listening(int(site.server.host.rsplit(":", 1)[1])) == {"127.0.0.1"}


def test_every_address_must_be_asked_for_and_warns(site):
    with served(site.db, "--host", "0.0.0.0") as (server, log):
        exposed = open_site(server, site.root, site.outside, site.db)
        assert listening(int(server.host.rsplit(":", 1)[1])) == {"0.0.0.0"}
        assert server.token != site.server.token  # a new secret each run
        assert server.request("GET", "/api/state", cookie=False)[0] == 403
        assert server.request("GET", "/api/state", headers={"Cookie": f"imgindex_token={site.server.token}"},
                              cookie=False)[0] == 403
        for route in POST_ROUTES:  # the cookie and the CSRF token, but another site's page
            for origin in ("http://evil.example", f"http://evil.example:{server.host.rsplit(':', 1)[1]}", "null"):
                status, _, _ = server.request("POST", route, body=site.body(route), csrf=exposed.csrf,
                                              headers={"Origin": origin})
                assert status == 403, (route, origin)
            assert server.request("POST", route, body=site.body(route), origin=False, csrf=exposed.csrf)[0] == 403
    stderr = "".join(log)
    assert re.search(r"^WARNING: listening on 0\.0\.0\.0", stderr, re.MULTILINE)
    assert "Traceback" not in stderr
