"""JSON errors ``{"error": {"code", "message", "details"}}`` for every failure; never a traceback to a client."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from metafeatures.errors import ArtifactError, ConfigError, DatasetError, MetarecError, UnknownMatcherError

log = logging.getLogger("metarec.service")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "payload_too_large",
               415: "unsupported_media_type", 422: "validation_error", 429: "too_many_requests",
               503: "unavailable"}


CLIENT_CLOSED = 499


class APIError(Exception):
    """An error a route raises on purpose: HTTP status, a machine-readable code, a message for people."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.headers = status, code, message, details, headers


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error envelope every response uses."""
    return {"error": {"code": code, "message": message, "details": details}}


def not_found(what: str, ident: str) -> APIError:
    """404 for an unknown id."""
    return APIError(404, "not_found", f"no {what} with id {ident!r}", {"id": ident})


def from_metarec(exc: MetarecError) -> APIError:
    """Map metarec's typed errors to 4xx: bad datasets and configs are the client's input."""
    if isinstance(exc, DatasetError):
        return APIError(422, "invalid_dataset", str(exc), {"path": exc.path, "problem": exc.problem})
    if isinstance(exc, ConfigError):
        return APIError(422, "invalid_configuration", str(exc))
    if isinstance(exc, UnknownMatcherError):
        return APIError(422, "unknown_matcher", str(exc), {"known": exc.known})
    if isinstance(exc, ArtifactError):
        return APIError(422, "invalid_artifact", str(exc))
    return APIError(422, "unprocessable", str(exc))


def validation_body(errors: Any) -> dict[str, Any]:
    """422 envelope from pydantic errors (only loc/msg/type: inputs may be huge or not JSON-serialisable)."""
    details = [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
               for e in errors]
    malformed = any(d["type"] == "json_invalid" for d in details)
    message = "the request body is not valid JSON" if malformed else "the request does not match the schema"
    return error_body("malformed_json" if malformed else "validation_error", message, details)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None,
          req: Request | None = None) -> JSONResponse:
    """The response; with ``req``, server paths in the body are shown relative to the data root."""
    scrub = getattr(req.app.state, "scrub", None) if req is not None else None
    return JSONResponse(status_code=status, content=scrub(body) if scrub else body, headers=headers)


def install_handlers(app: FastAPI) -> None:
    """Register handlers so validation errors, HTTP errors and bugs all answer in the envelope."""

    @app.exception_handler(APIError)
    async def _api(req: Request, exc: APIError) -> JSONResponse:
        return _json(exc.status, error_body(exc.code, exc.message, exc.details), exc.headers, req)

    @app.exception_handler(MetarecError)
    async def _metarec(req: Request, exc: MetarecError) -> JSONResponse:
        err = from_metarec(exc)
        return _json(err.status, error_body(err.code, err.message, err.details), req=req)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return _json(422, validation_body(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _model_validation(_req: Request, exc: ValidationError) -> JSONResponse:
        return _json(422, validation_body(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _json(exc.status_code, error_body(code, str(exc.detail)), getattr(exc, "headers", None), req)

    @app.exception_handler(ClientDisconnect)
    async def _gone(req: Request, _exc: ClientDisconnect) -> Response:
        # nobody reads this answer; 499 (nginx's "client closed request") keeps it out of the 5xx in /metrics
        log.info("client disconnected during %s %s", req.method, req.url.path)
        return Response(status_code=CLIENT_CLOSED)

    @app.exception_handler(Exception)
    async def _bug(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _json(500, error_body("internal_error", "internal error; the server log has the details"))
