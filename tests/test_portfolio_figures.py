"""The portfolio's figure files: which names exist, which files count, and ``metarec portfolio show`` listing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from portfolio.defaults import default_portfolio_dir
from portfolio.figure_files import FIGURES, portfolio_figures
from tests.fixtures.cli import run_json

PNG = b"\x89PNG\r\n\x1a\n"


def test_figure_names_match_the_writers() -> None:
    from offline_search.rebuild import BATCH_CURVE_FIGURE
    from portfolio.artifact import CURVE_FIGURE, MATRIX_FIGURE

    assert set(FIGURES) == {MATRIX_FIGURE, CURVE_FIGURE, BATCH_CURVE_FIGURE}


def test_only_regular_figure_files_are_listed(tmp_path: Path) -> None:
    (tmp_path / "performance_matrix.png").write_bytes(PNG)
    (tmp_path / "portfolio_curve.png").symlink_to("/etc/hostname")  # a link never counts, wherever it points
    (tmp_path / "batch_size_curve.png").mkdir()
    (tmp_path / "other.png").write_bytes(PNG)
    assert portfolio_figures(tmp_path) == {"performance_matrix.png": tmp_path / "performance_matrix.png"}


def test_portfolio_show_prints_the_figure_paths(capsys: pytest.CaptureFixture[str]) -> None:
    from metarec.cli import main

    directory = default_portfolio_dir()
    shown = run_json(capsys, ["portfolio", "show", str(directory), "--json"])
    assert shown["figures"] == {n: str(p.resolve()) for n, p in portfolio_figures(directory).items()}
    assert main(["portfolio", "show", str(directory)]) == 0
    out = capsys.readouterr().out
    assert all(f"  {p.resolve()}  (" in out for p in portfolio_figures(directory).values())
