"""The routes of the review app: the page, its JSON, thumbnails and originals by image id, and the
decisions and actions, each through ``imgindex.api.Index`` as the CLI does.

Every handler runs behind ``security.Guard``. Errors become JSON with a message the page shows:
400 for a bad request, 403 when read-only, 404 for an unknown id, 409 when the index changed under
the page, 410 for a file that changed since it was indexed, 503 while another process writes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from imgindex.api import Index
from imgindex.errors import ImgIndexError
from imgindex.scan.decode import thumbnail_jpeg
from imgindex.serve import data
from imgindex.serve.jobs import Jobs
from imgindex.serve.security import MAX_BODY, Secrets

TEMPLATES = Path(__file__).parent / "templates"
THUMB_SIZES = (160, 320, 640, 1280)
BROWSER_FORMATS = {"JPEG", "PNG", "GIF", "WEBP"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
           "x-frame-options": "DENY"}


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Review:
    """The app's state: the index, the reader, the plans and the action in hand, the thumbnail cache."""

    def __init__(self, db_path: str, keys: Secrets, *, read_only: bool, move_to: str | None):
        self.db_path, self.keys, self.read_only, self.move_to = db_path, keys, read_only, move_to
        self.reader = data.Reader(db_path)
        self.jobs = Jobs(db_path)
        self.write_lock = threading.Lock()
        self.thumbs: OrderedDict[tuple, bytes] = OrderedDict()
        self.thumb_bytes = 0
        self.thumb_lock = threading.Lock()
        env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
        self.page = env.get_template("serve.html")

    # ---------------------------------------------------------------- reading

    def state(self) -> dict:
        snap = self.reader.current()
        job = self.jobs.job
        return {"version": snap.version, "search": snap.search, "groups": len(snap.groups),
                "undecided": sum(not g.decided for g in snap.groups), "read_only": self.read_only,
                "move_to": self.move_to, "kinds": list(data.KINDS), "job": job.as_json() if job else None}

    def groups(self, params) -> dict:
        snap = self.reader.current()
        options = {"folder": _text(params, "folder", 500), "kind": _choice(params, "kind", ("", *data.KINDS)),
                   "decided": _choice(params, "decided", ("", "yes", "no")),
                   "min_members": _int(params, "min_members", 2, 2, 10_000), "page": _int(params, "page", 1, 1, 10**6),
                   "per_page": _int(params, "per_page", 20, 1, 200)}
        total, page = data.select(snap, **options)
        return {"version": snap.version, "total": total, "page": options["page"], "per_page": options["per_page"],
                "groups": [g.as_json() for g in page]}

    def group(self, group_id: int) -> dict:
        snap = self.reader.current()
        found = next((g for g in snap.groups if g.group_id == group_id), None)
        if found is None:
            raise BadRequest(404, f"There is no group {group_id} in the latest search (it may have changed).")
        return {"version": snap.version, "group": found.as_json()}

    def original(self, image_id: int) -> tuple[str, str | None]:
        """The path of an image that is on disk as indexed (size and mtime), and its format."""
        row = self.reader.image(image_id)
        if row is None:
            raise BadRequest(404, "No such image in the index.")
        path, size, mtime_ns, _digest, fmt = row
        try:
            st = os.stat(path)
        except OSError:
            raise BadRequest(410, "This file is gone from disk since it was indexed.") from None
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            raise BadRequest(410, "This file changed since it was indexed: scan again.")
        return path, fmt

    def thumbnail(self, image_id: int, size: int) -> tuple[bytes, str]:
        path, _ = self.original(image_id)
        digest = self.reader.image(image_id)[3]
        key = (digest, size)
        with self.thumb_lock:
            if key in self.thumbs:
                self.thumbs.move_to_end(key)
                return self.thumbs[key], digest
        try:
            body = thumbnail_jpeg(path, size)
        except Exception as exc:  # unreadable now: say so, never a 500
            raise BadRequest(410, f"This file cannot be read now: {exc}") from None
        with self.thumb_lock:
            self.thumbs[key] = body
            self.thumb_bytes += len(body)
            while self.thumb_bytes > 64 << 20:
                _, old = self.thumbs.popitem(last=False)
                self.thumb_bytes -= len(old)
        return body, digest

    # ---------------------------------------------------------------- deciding and acting

    def decide(self, what: str, body: dict) -> dict:
        self._writable()
        with self.write_lock, Index(self.db_path) as index:
            if what == "ignore" and "group_id" in body:
                report = index.ignore_group(_body_int(body, "group_id"))
            elif what in ("ignore", "unignore"):
                paths = [self._path(i) for i in _body_ints(body, "image_ids", 2, 1000)]
                report = index.ignore(paths) if what == "ignore" else index.unignore(paths)
            elif what in ("keep", "unkeep"):
                paths = [self._path(_body_int(body, "image_id"))]
                report = index.keep(paths) if what == "keep" else index.unkeep(paths)
            else:  # reference, unreference: the folder of an indexed image, never a path from the client
                folder = os.path.dirname(self._path(_body_int(body, "image_id")))
                report = index.add_reference([folder]) if what == "reference" else index.remove_reference([folder])
        return {"added": len(report.added), "removed": len(report.removed), "unchanged": len(report.unchanged),
                "notes": list(report.notes), "groups": report.groups}

    def plan(self, body: dict) -> dict:
        self._writable()
        command = body.get("command")
        if command in ("trash", "move") and body.get("version") != self.reader.version():
            raise BadRequest(409, "The groups changed since the page showed them: look again before acting.")
        groups = None if command == "undo" or body.get("groups") == "all" else _body_ints(body, "groups", 1, 100_000)
        with self.write_lock, Index(self.db_path) as index:
            if command == "trash":
                plan = index.plan_delete(groups=groups)
            elif command == "move" and self.move_to:
                plan = index.plan_move_to(self.move_to, groups=groups)
            elif command == "undo":
                plan = index.plan_undo()
            else:
                raise BadRequest(400, "command must be 'trash', 'undo' or (with serve --move-to) 'move'.")
        return {"plan_id": self.jobs.keep_plan(plan), "command": plan.command, "files": len(plan.actions),
                "bytes": plan.bytes, "destination": plan.destination,
                "actions": [{"kind": a.kind, "source": a.source, "destination": a.destination}
                            for a in plan.actions[:500]],
                "skipped": [{"path": s.path, "reason": s.reason} for s in plan.skipped[:500]]}

    def apply(self, body: dict) -> dict:
        self._writable()
        plan_id = body.get("plan_id")
        if not isinstance(plan_id, str) or len(plan_id) > 64:
            raise BadRequest(400, "plan_id is missing.")
        return self.jobs.start(plan_id).as_json()

    def _writable(self) -> None:
        if self.read_only:
            raise BadRequest(403, "This server is read-only (imgindex serve --read-only).")

    def _path(self, image_id: int) -> str:
        row = self.reader.image(image_id)
        if row is None:
            raise BadRequest(404, f"No image {image_id} in the index.")
        return row[0]


def _int(params, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9 or not low <= int(raw) <= high:
        raise BadRequest(400, f"{name} must be a whole number from {low} to {high}.")
    return int(raw)


def _text(params, name: str, longest: int) -> str:
    value = params.get(name, "")
    if len(value) > longest:
        raise BadRequest(400, f"{name} is too long.")
    return value


def _choice(params, name: str, allowed: tuple[str, ...]) -> str:
    value = params.get(name, "")
    if value not in allowed:
        raise BadRequest(400, f"{name} must be one of {', '.join(a or '(empty)' for a in allowed)}.")
    return value


def _body_int(body: dict, name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise BadRequest(400, f"{name} must be a positive whole number.")
    return value


def _body_ints(body: dict, name: str, fewest: int, most: int) -> list[int]:
    values = body.get(name)
    if not isinstance(values, list) or not fewest <= len(values) <= most:
        raise BadRequest(400, f"{name} must be a list of {fewest} to {most} ids.")
    return [_body_int({name: v}, name) for v in values]


async def _json_body(request: Request) -> dict:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise BadRequest(413, "Request too large.")
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(400, "The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "The request body must be a JSON object.")
    return body


def create_app(review: Review) -> Starlette:
    async def guarded(func, *args):
        try:
            return JSONResponse(await run_in_threadpool(func, *args), headers=HEADERS)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=HEADERS)
        except ImgIndexError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409, headers=HEADERS)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return JSONResponse({"error": "The index is busy (a scan or search is writing); retrying."},
                                    status_code=503, headers={**HEADERS, "retry-after": "1"})
            raise

    async def page(request: Request):
        html = review.page.render(csrf=review.keys.csrf, read_only=review.read_only)
        return HTMLResponse(html, headers={**HEADERS, "cache-control": "no-store"})

    def static(name: str, kind: str):
        async def endpoint(request: Request):
            return FileResponse(TEMPLATES / name, media_type=kind, headers={**HEADERS, "cache-control": "no-cache"})

        return endpoint

    async def state(request: Request):
        return await guarded(review.state)

    async def groups(request: Request):
        return await guarded(review.groups, request.query_params)

    async def group(request: Request):
        return await guarded(review.group, request.path_params["group_id"])

    async def thumb(request: Request):
        try:
            size = _int(request.query_params, "size", 320, 1, 10_000)
            if size not in THUMB_SIZES:
                raise BadRequest(400, f"size must be one of {', '.join(map(str, THUMB_SIZES))}.")
            body, digest = await run_in_threadpool(review.thumbnail, request.path_params["image_id"], size)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=HEADERS)
        etag = f'"{digest}-{size}"'
        cache = {**HEADERS, "etag": etag, "cache-control": "private, max-age=86400"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=cache)
        return Response(body, media_type="image/jpeg", headers=cache)

    async def full(request: Request):
        try:
            path, fmt = await run_in_threadpool(review.original, request.path_params["image_id"])
            if fmt not in BROWSER_FORMATS:  # HEIC, RAW, TIFF...: a browser cannot show them
                body, _ = await run_in_threadpool(review.thumbnail, request.path_params["image_id"], 1280)
                return Response(body, media_type="image/jpeg", headers={**HEADERS, "cache-control": "no-cache"})
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=HEADERS)
        kind = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}[fmt]
        return FileResponse(path, media_type=kind, headers={**HEADERS, "cache-control": "no-cache"})

    def posting(func, *args):
        async def endpoint(request: Request):
            try:
                body = await _json_body(request)
            except BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=HEADERS)
            return await guarded(func, *args, body)

        return endpoint

    routes = [
        Route("/", page), Route("/static/app.js", static("serve.js", "text/javascript")),
        Route("/static/app.css", static("serve.css", "text/css")),
        Route("/api/state", state), Route("/api/groups", groups), Route("/api/groups/{group_id:int}", group),
        Route("/thumb/{image_id:int}", thumb), Route("/full/{image_id:int}", full),
        Route("/api/plan", posting(review.plan), methods=["POST"]),
        Route("/api/apply", posting(review.apply), methods=["POST"]),
    ]
    routes += [Route(f"/api/{what}", posting(review.decide, what), methods=["POST"])
               for what in ("ignore", "unignore", "keep", "unkeep", "reference", "unreference")]
    return Starlette(routes=routes)
