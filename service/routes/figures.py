"""``/v1/portfolio/figures``: the served portfolio's figures (heatmap, portfolio curve, batch-size curve).

Only the file names :data:`portfolio.figure_files.FIGURES` lists, present in the served portfolio's directory,
are ever opened: any other name (a matcher file, ``portfolio.json``, a path) is a 404 before the disk is touched.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from pydantic import BaseModel

from portfolio.figure_files import FIGURES, portfolio_figures
from service.auth import require_user
from service.context import AppContext, get_ctx
from service.errors import APIError

router = APIRouter(prefix="/v1/portfolio/figures", tags=["portfolio"], dependencies=[Depends(require_user)])


class FigureOut(BaseModel):
    """One figure of the served portfolio: its file name, what it shows, and where to get it."""

    name: str
    title: str
    url: str


class FigureList(BaseModel):
    """The figures the served portfolio has (a portfolio built without figures has none)."""

    portfolio_version: str
    items: list[FigureOut]


@router.get("", response_model=FigureList)
def list_figures(ctx: AppContext = Depends(get_ctx)) -> FigureList:
    """The figures of the served portfolio, in display order."""
    loaded = ctx.served().portfolio
    names = portfolio_figures(loaded.directory)
    return FigureList(portfolio_version=loaded.version, items=[
        FigureOut(name=n, title=FIGURES[n], url=f"{router.prefix}/{n}") for n in names])


@router.get("/{name}", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}, "description": "the figure"},
                       404: {"description": "not a figure of the served portfolio"}})
def get_figure(name: str, ctx: AppContext = Depends(get_ctx)) -> FileResponse:
    """A figure of the served portfolio as PNG; 404 for any name the portfolio does not list."""
    loaded = ctx.served().portfolio
    path = portfolio_figures(loaded.directory).get(name) if name in FIGURES else None
    if path is None:
        raise APIError(404, "not_found", f"portfolio {loaded.version} has no figure {name[:80]!r}",
                       {"available": list(portfolio_figures(loaded.directory))})
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-cache"})
