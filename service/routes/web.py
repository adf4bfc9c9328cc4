"""``/``: the web page, a static shell (HTML, JS, CSS in ``service/web/``) that calls the ``/v1`` API.

The shell holds no data and needs no key; every datum the page shows comes from ``/v1`` with the user's key.
Its Content-Security-Policy lets the browser load nothing from anywhere but this server.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.errors import APIError

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
#: the only files served from WEB_DIR (name → media type): nothing else there can be reached
ASSETS: dict[str, str] = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
                          "favicon.svg": "image/svg+xml"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    """The page (no data in it: it asks for the API key and then calls ``/v1``)."""
    return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/web/{name}")
def asset(name: str) -> FileResponse:
    """The page's script and style sheet; 404 for any other name."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise APIError(404, "not_found", f"no web asset {name[:80]!r}", {"available": sorted(ASSETS)})
    return FileResponse(WEB_DIR / name, media_type=media_type, headers=HEADERS)
