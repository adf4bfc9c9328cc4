"""``/docs`` (Swagger UI) and ``/redoc`` served with their assets from metarec itself: no CDN, no web fonts.

FastAPI's default pages load Swagger UI and ReDoc from a CDN and render blank on a machine without internet.
The assets come from the ``fastapi-offline`` package (Swagger UI and ReDoc's own builds, MIT / Apache-2.0) and
are mounted at ``/docs-assets``; the pages are FastAPI's self-hosted docs recipe.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS_URL = "/docs-assets"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def assets_dir() -> Path:
    """The folder holding the Swagger UI and ReDoc builds (shipped by the ``fastapi-offline`` wheel)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def install_docs(app: FastAPI) -> None:
    """Mount the assets and add ``/docs``, its OAuth2 redirect page and ``/redoc`` (the app was created with
    ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = request.scope.get("root_path", "") + ASSETS_URL
        return get_swagger_ui_html(openapi_url=request.scope.get("root_path", "") + openapi_url,
                                   title=f"{app.title} - Swagger UI", oauth2_redirect_url=redirect_url,
                                   swagger_js_url=f"{base}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{base}/swagger-ui.css", swagger_favicon_url=f"{base}/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None})  # no badge from elsewhere

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = request.scope.get("root_path", "") + ASSETS_URL
        return get_redoc_html(openapi_url=request.scope.get("root_path", "") + openapi_url,
                              title=f"{app.title} - ReDoc", redoc_js_url=f"{base}/redoc.standalone.js",
                              redoc_favicon_url=f"{base}/favicon.png", with_google_fonts=False)
