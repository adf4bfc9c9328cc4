"""Request limits: body bytes (enforced while the body streams in, before anything is parsed or spooled to disk)
and decoded pixels of uploaded images (read from the image headers, before anything is decoded).

Only the upload routes (``UPLOAD_PATHS``) accept a large multipart body; every other request (JSON bodies,
and multipart sent anywhere else) gets the small JSON limit, so a huge JSON document is never parsed.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import APIError, error_body

ENVELOPE = 64 * 1024  # what multipart framing may add to an upload's own limit
UPLOAD_PATHS = frozenset({"/v1/datasets", "/v1/recommendations"})  # the only routes that take multipart uploads


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


def _is_multipart(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the request declares a multipart/form-data body."""
    return any(key == b"content-type" and value.lower().startswith(b"multipart/form-data") for key, value in headers)


class BodyLimitMiddleware:
    """Every request: at most ``json_limit`` body bytes, or ``upload_limit`` for a multipart body sent to an upload
    route; declared or streamed, else 413 in the error envelope."""

    def __init__(self, app: ASGIApp, json_limit: int, upload_limit: int,
                 upload_paths: frozenset[str] = UPLOAD_PATHS) -> None:
        self.app, self.json_limit, self.upload_limit, self.upload_paths = app, json_limit, upload_limit, upload_paths

    def limit_for(self, scope: Scope) -> int:
        """The body limit of this request."""
        headers = scope.get("headers", [])
        if scope.get("path") in self.upload_paths and _is_multipart(headers):
            return self.upload_limit
        return self.json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _declared(scope.get("headers", []))
        if declared is not None and declared > limit:
            body = error_body("payload_too_large", f"request body is larger than the limit of {limit} bytes",
                              {"limit_bytes": limit})
            await JSONResponse(body, status_code=413)(scope, receive, send)
            return
        await self.app(scope, _counting(receive, limit), send)


def limited(request: Request, limit: int) -> Request:
    """The same request whose body raises 413 once more than ``limit`` bytes arrive (or are declared)."""
    declared = _declared(request.scope.get("headers", []))
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    return Request(request.scope, _counting(request.receive, limit))


async def json_body(request: Request) -> bytes:
    """The raw JSON body (at most ``METAREC_MAX_JSON_BYTES``); a content type other than JSON is 415."""
    content_type = request.headers.get("content-type", "")
    if content_type and not content_type.startswith("application/json"):
        raise APIError(415, "unsupported_media_type",
                       "send application/json, or multipart/form-data where the route accepts uploads")
    return await limited(request, request.app.state.settings.max_json_bytes).body()


def image_pixels(data: bytes) -> int | None:
    """Width × height from the image's header (nothing is decoded); None when Pillow cannot identify it."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError:
        return 2**62  # Pillow's own bomb check fired on the header alone: certainly over our limit
    except Exception:  # not an image Pillow knows: the decoder reports it with the file's name
        return None
    return int(width) * int(height)


def check_pixels(files: Sequence[tuple[str, bytes]], per_image: int, per_request: int) -> None:
    """Refuse before decoding: 422 for one image over ``per_image`` pixels, 413 when all together pass
    ``per_request`` (a few kilobytes of PNG can declare gigapixels)."""
    total = 0
    for name, data in files:
        pixels = image_pixels(data)
        if pixels is None:
            continue
        if pixels > per_image:
            raise APIError(422, "image_too_large", f"image {name!r} has {pixels} pixels; the limit is {per_image} "
                           "per image", {"file": name, "pixels": pixels, "limit_pixels": per_image})
        total += pixels
        if total > per_request:
            raise APIError(413, "too_many_pixels", f"the uploaded images have more than {per_request} pixels "
                           "together; send fewer or smaller images", {"limit_pixels": per_request})
