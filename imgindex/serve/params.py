"""Reading what a client sends: query parameters and JSON bodies, each checked (type, range,
length) before use; anything else is a BadRequest with the status and message to answer."""

from __future__ import annotations

import json

from starlette.requests import Request

from imgindex.serve.security import MAX_BODY


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def query_int(params, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    # ASCII digits only: '²'.isdigit() is true, yet int('²') fails
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or not low <= int(raw) <= high:
        raise BadRequest(400, f"{name} must be a whole number from {low} to {high}.")
    return int(raw)


def query_text(params, name: str, longest: int) -> str:
    value = params.get(name, "")
    if len(value) > longest:
        raise BadRequest(400, f"{name} is too long.")
    return value


def query_choice(params, name: str, allowed: tuple[str, ...]) -> str:
    value = params.get(name, "")
    if value not in allowed:
        raise BadRequest(400, f"{name} must be one of {', '.join(a or '(empty)' for a in allowed)}.")
    return value


def body_int(body: dict, name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise BadRequest(400, f"{name} must be a positive whole number.")
    return value


def body_ints(body: dict, name: str, fewest: int, most: int) -> list[int]:
    values = body.get(name)
    if not isinstance(values, list) or not fewest <= len(values) <= most:
        raise BadRequest(400, f"{name} must be a list of {fewest} to {most} ids.")
    return [body_int({name: v}, name) for v in values]


async def json_body(request: Request) -> dict:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise BadRequest(413, "Request too large.")
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: '[[[[...' nested too deep
        raise BadRequest(400, "The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "The request body must be a JSON object.")
    return body
