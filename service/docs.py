"""``/docs`` (Swagger UI) and ``/redoc`` served with their assets from metarec itself: no CDN, no web fonts.

FastAPI's default pages load Swagger UI and ReDoc from a CDN and render blank on a machine without internet.
The assets come from the ``fastapi-offline`` package (Swagger UI and ReDoc's own builds, MIT / Apache-2.0) and
are mounted at ``/docs-assets``; the pages are FastAPI's self-hosted docs recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
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


def add_body_schemas(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
    """Put ``models`` into the OpenAPI document's components. Routes that parse their body themselves (JSON or
    multipart on one path) name their JSON body by ``$ref`` in ``openapi_extra``; FastAPI only lists the models
    it validates, so without this the reference dangles (and /docs, clients and the web page see no fields)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, sub in body.pop("$defs", {}).items():
                    components.setdefault(name, sub)
                components.setdefault(model.__name__, body)
            return schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
