"""The shipped default portfolio and its observation store are package data: a non-editable install carries them
(issue 11 §5, issue 12 §6)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_the_wheel_carries_the_default_portfolio(tmp_path: Path):
    shipped = sorted(p.name for p in (ROOT / "portfolios" / "demo").iterdir() if p.is_file())
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("metarec-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"portfolios/demo/{name}" for name in shipped} <= names
    assert "portfolios/__init__.py" in names and not any(".work" in n for n in names)
    # its meta-dataset travels with it: `portfolio update` and the service's learning start from its rows
    assert "portfolios/demo.observations.sqlite" in names
    assert not any(n.startswith("portfolios/demo8/") for n in names)  # the small portfolio stays in the repository
