"""Request-body limits enforced while the body streams in, before anything is parsed or spooled to disk."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import APIError, error_body

JSON_LIMIT = 1024 * 1024  # JSON bodies are small; anything larger is refused
ENVELOPE = 64 * 1024  # what multipart framing may add to an upload's own limit


class BodyTooLarge(StarletteHTTPException):
    """413; an HTTPException so that FastAPI's body parsing re-raises it instead of turning it into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes")


def _counting(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`BodyTooLarge` once more than ``limit`` body bytes arrived."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return wrapped


def _declared(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length header as an int, if present and numeric."""
    for key, value in headers:
        if key == b"content-length" and value.isdigit():
            return int(value)
    return None


class BodyLimitMiddleware:
    """Every request: at most ``limit`` body bytes (declared or streamed), else 413 in the error envelope."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared(scope.get("headers", []))
        if declared is not None and declared > self.limit:
            body = error_body("payload_too_large", f"request body is larger than the limit of {self.limit} bytes",
                              {"limit_bytes": self.limit})
            await JSONResponse(body, status_code=413)(scope, receive, send)
            return
        await self.app(scope, _counting(receive, self.limit), send)


def limited(request: Request, limit: int) -> Request:
    """The same request whose body raises 413 once more than ``limit`` bytes arrive (or are declared)."""
    declared = _declared(request.scope.get("headers", []))
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    return Request(request.scope, _counting(request.receive, limit))


async def json_body(request: Request) -> bytes:
    """The raw JSON body (at most ``JSON_LIMIT`` bytes); a content type other than JSON is 415."""
    content_type = request.headers.get("content-type", "")
    if content_type and not content_type.startswith("application/json"):
        raise APIError(415, "unsupported_media_type",
                       "send application/json, or multipart/form-data where the route accepts uploads")
    return await limited(request, JSON_LIMIT).body()
