"""The routes of the review app: the page, its JSON, thumbnails and originals by image id, and the
decisions and actions, each through ``imgindex.api.Index`` as the CLI does.

Every handler runs behind ``security.Guard``. Errors become JSON with a message the page shows:
400 for a bad request, 403 when read-only, 404 for an unknown id, 409 when the index changed under
the page, 410 for a file that changed since it was indexed, 503 while another process writes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import IntegerConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from imgindex.api import Index
from imgindex.errors import ImgIndexError
from imgindex.scan.decode import thumbnail_jpeg
from imgindex.serve import data
from imgindex.serve.jobs import Jobs
from imgindex.serve.params import (
    BadRequest,
    body_int,
    body_ints,
    json_body,
    query_choice,
    query_int,
    query_text,
)
from imgindex.serve.security import Secrets

TEMPLATES = Path(__file__).parent / "templates"
THUMB_SIZES = (160, 320, 640, 1280)
BROWSER_FORMATS = {"JPEG", "PNG", "GIF", "WEBP"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
           "x-frame-options": "DENY"}


class IdConvertor(IntegerConvertor):
    """An id in a URL: at most 19 digits (SQLite's integers), so a longer one is no route rather than a
    ValueError from int() past Python's 4300-digit limit (a 500)."""

    regex = "[0-9]{1,19}"


register_url_convertor("id", IdConvertor())


class ThumbCache:
    """Thumbnails by (content hash, size), least recently used first out past ``limit`` bytes."""

    def __init__(self, limit: int):
        self.limit, self.size = limit, 0
        self.items: OrderedDict[tuple, bytes] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
            return self.items.get(key)

    def put(self, key: tuple, body: bytes) -> None:
        with self.lock:
            self.items[key] = body
            self.size += len(body)
            while self.size > self.limit:
                _, old = self.items.popitem(last=False)
                self.size -= len(old)


class Review:
    """The app's state: the index, the reader, the plans and the action in hand, the thumbnail cache."""

    def __init__(self, db_path: str, keys: Secrets, *, read_only: bool, move_to: str | None):
        self.db_path, self.keys, self.read_only, self.move_to = db_path, keys, read_only, move_to
        self.reader = data.Reader(db_path)
        self.jobs = Jobs(db_path)
        self.write_lock = threading.Lock()
        self.thumbs = ThumbCache(64 << 20)
        env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
        self.page = env.get_template("serve.html")

    # ---------------------------------------------------------------- reading

    def state(self) -> dict:
        snap = self.reader.current()
        job = self.jobs.job
        return {"version": snap.version, "search": snap.search, "groups": len(snap.groups),
                "undecided": sum(not g.decided for g in snap.groups),
                "to_review": sum(not (g.decided or g.reviewed) for g in snap.groups),
                "reviewed": sum(g.reviewed for g in snap.groups), "read_only": self.read_only,
                "move_to": self.move_to, "kinds": list(data.KINDS), "job": job.as_json() if job else None}

    def groups(self, params) -> dict:
        snap = self.reader.current()
        options = {"folder": query_text(params, "folder", 500), "kind": query_choice(params, "kind", ("", *data.KINDS)),
                   "decided": query_choice(params, "decided", ("", "yes", "no")),
                   "reviewed": query_choice(params, "reviewed", ("", "yes", "no")),
                   "min_members": query_int(params, "min_members", 2, 2, 10_000), "page": query_int(params, "page", 1, 1, 10**6),
                   "per_page": query_int(params, "per_page", 20, 1, 200)}
        total, page = data.select(snap, **options)
        return {"version": snap.version, "total": total, "page": options["page"], "per_page": options["per_page"],
                "groups": [g.as_json() for g in page]}

    def group(self, group_id: int) -> dict:
        snap = self.reader.current()
        found = next((g for g in snap.groups if g.group_id == group_id), None)
        if found is None:
            raise BadRequest(404, f"There is no group {group_id} in the latest search (it may have changed).")
        return {"version": snap.version, "group": found.as_json()}

    def original(self, image_id: int) -> tuple[str, str | None, str]:
        """(path, format, content hash) of an image that is on disk as indexed (size and mtime)."""
        row = self._row(image_id)
        if row is None:
            raise BadRequest(404, "No such image in the index.")
        path, size, mtime_ns, digest, fmt = row
        try:
            st = os.stat(path)
        except OSError:
            raise BadRequest(410, "This file is gone from disk since it was indexed.") from None
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            raise BadRequest(410, "This file changed since it was indexed: scan again.")
        return path, fmt, digest

    def thumbnail(self, image_id: int, size: int) -> tuple[bytes, str]:
        path, _, digest = self.original(image_id)
        body = self.thumbs.get((digest, size))
        if body is None:
            try:
                body = thumbnail_jpeg(path, size)
            except Exception as exc:  # unreadable now: say so, never a 500
                raise BadRequest(410, f"This file cannot be read now: {exc}") from None
            self.thumbs.put((digest, size), body)
        return body, digest

    # ---------------------------------------------------------------- deciding and acting

    def decide(self, what: str, body: dict) -> dict:
        self._writable()
        with self.write_lock, Index(self.db_path) as index:
            if what == "ignore" and "group_id" in body:
                report = index.ignore_group(body_int(body, "group_id"))
            elif what in ("ignore", "unignore"):
                paths = [self._path(i) for i in body_ints(body, "image_ids", 2, 1000)]
                report = index.ignore(paths) if what == "ignore" else index.unignore(paths)
            elif what in ("keep", "unkeep"):
                paths = [self._path(body_int(body, "image_id"))]
                report = index.keep(paths) if what == "keep" else index.unkeep(paths)
            else:  # reference, unreference: the folder of an indexed image, never a path from the client
                folder = os.path.dirname(self._path(body_int(body, "image_id")))
                report = index.add_reference([folder]) if what == "reference" else index.remove_reference([folder])
        return {"added": len(report.added), "removed": len(report.removed), "unchanged": len(report.unchanged),
                "notes": list(report.notes), "groups": report.groups}

    def review(self, body: dict) -> dict:
        """Mark groups looked at and accepted (or not)."""
        self._writable()
        reviewed = body.get("reviewed", True)
        if not isinstance(reviewed, bool):
            raise BadRequest(400, "reviewed must be true or false.")
        with self.write_lock, Index(self.db_path) as index:
            return {"changed": index.mark_reviewed(body_ints(body, "group_ids", 1, 100_000), reviewed=reviewed)}

    def plan(self, body: dict) -> dict:
        self._writable()
        command = body.get("command")
        if command in ("trash", "move") and body.get("version") != self.reader.version():
            raise BadRequest(409, "The groups changed since the page showed them: look again before acting.")
        if command == "undo" or body.get("groups") == "all":
            groups = None
        elif body.get("groups") == "reviewed":  # every group marked reviewed, as the page showed them
            groups = [g.group_id for g in self.reader.current().groups if g.reviewed]
            if not groups:
                raise BadRequest(400, "No group is marked reviewed yet.")
        else:
            groups = body_ints(body, "groups", 1, 100_000)
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

    def _row(self, image_id: int) -> tuple | None:
        # SQLite integers are 64-bit: a larger id (from a URL) is simply not in the index, not an OverflowError
        return self.reader.image(image_id) if 0 < image_id < 2**63 else None

    def _path(self, image_id: int) -> str:
        row = self._row(image_id)
        if row is None:
            raise BadRequest(404, f"No image {image_id} in the index.")
        return row[0]


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
            size = query_int(request.query_params, "size", 320, 1, 10_000)
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
            path, fmt, _ = await run_in_threadpool(review.original, request.path_params["image_id"])
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
                body = await json_body(request)
            except BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=HEADERS)
            return await guarded(func, *args, body)

        return endpoint

    routes = [
        Route("/", page), Route("/static/app.js", static("serve.js", "text/javascript")),
        Route("/static/app.css", static("serve.css", "text/css")),
        Route("/api/state", state), Route("/api/groups", groups), Route("/api/groups/{group_id:id}", group),
        Route("/thumb/{image_id:id}", thumb), Route("/full/{image_id:id}", full),
        Route("/api/plan", posting(review.plan), methods=["POST"]),
        Route("/api/apply", posting(review.apply), methods=["POST"]),
        Route("/api/reviewed", posting(review.review), methods=["POST"]),
        Route("/favicon.ico", lambda request: Response(status_code=204, headers=HEADERS)),
    ]
    routes += [Route(f"/api/{what}", posting(review.decide, what), methods=["POST"])
               for what in ("ignore", "unignore", "keep", "unkeep", "reference", "unreference")]
    return Starlette(routes=routes)
