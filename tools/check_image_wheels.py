"""Resolve the Docker image's dependency set for its Python and platform with binary wheels only.

The image (python:3.12-slim-bookworm, glibc 2.36, x86_64) has no compiler: every dependency must come as a
wheel for cp312 / manylinux. This runs pip's resolver for that target without installing anything
(``pip install --dry-run --report``) and prints what the image would get. Needs the package registry; exits
with code 3 (skip) when it cannot be reached.

    python tools/check_image_wheels.py [--python-version 3.12] [--report FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GLIBC_MINOR = 36  # Debian bookworm
UNREACHABLE = 3


def platforms(arch: str = "x86_64", glibc_minor: int = GLIBC_MINOR) -> list[str]:
    """Every manylinux tag a glibc 2.<minor> system accepts (pip does not expand ``manylinux_2_X`` itself)."""
    tags = [f"manylinux_2_{m}_{arch}" for m in range(glibc_minor, 4, -1)]
    return [*tags, f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]


def registry_reachable() -> bool:
    """Whether pip can reach its configured index (one quick query, no retries)."""
    probe = [sys.executable, "-m", "pip", "index", "versions", "pip", "--retries", "0", "--timeout", "10"]
    return subprocess.run(probe, capture_output=True, text=True).returncode == 0


def resolve(python_version: str, report: Path) -> subprocess.CompletedProcess:
    """pip's dry-run install of ``requirements-image.txt`` for the image's interpreter and platform."""
    abi = "cp" + python_version.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
           "--python-version", python_version, "--implementation", "cp", "--abi", abi,
           *[arg for p in platforms() for arg in ("--platform", p)],
           "-c", str(REPO / "constraints.txt"), "-r", str(REPO / "requirements-image.txt"),
           "--report", str(report), "--retries", "1", "--timeout", "30", "--quiet"]
    return subprocess.run(cmd, capture_output=True, text=True)


def hpbandster_wheel(dest: Path) -> str:
    """Build hpbandster's wheel as the image does (it has only an sdist); the file name, '' on failure."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dest), "-c", str(REPO / "constraints.txt"),
           "hpbandster==0.7.4", "--retries", "1", "--timeout", "30", "--quiet"]
    if subprocess.run(cmd, capture_output=True, text=True).returncode != 0:
        return ""
    return next((p.name for p in dest.glob("hpbandster-*.whl")), "")


def main(argv: list[str] | None = None) -> int:
    """Resolve, print ``name version wheel`` per package, build hpbandster's wheel (pure Python, no compiler);
    0 when every one is a wheel, 1 if not, 3 offline."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python-version", default="3.12")
    parser.add_argument("--report", type=Path, default=None, help="keep pip's JSON report here")
    args = parser.parse_args(argv)
    if not registry_reachable():
        print("package registry not reachable: image check skipped", file=sys.stderr)
        return UNREACHABLE
    with tempfile.TemporaryDirectory() as tmp:
        report = args.report or Path(tmp) / "report.json"
        done = resolve(args.python_version, report)
        if done.returncode != 0:
            print(done.stderr.strip() or done.stdout.strip(), file=sys.stderr)
            return 1
        installs = json.loads(report.read_text())["install"]
        hpb = hpbandster_wheel(Path(tmp) / "wheels")
    bad = [] if hpb.endswith("-py3-none-any.whl") else ["hpbandster (its wheel is not pure Python)"]
    print(f"{'hpbandster':28s} {'0.7.4':14s} {hpb or 'wheel build failed'} (built in the image, --no-deps)")
    for item in sorted(installs, key=lambda i: i["metadata"]["name"].lower()):
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        file = item["download_info"]["url"].rsplit("/", 1)[-1]
        print(f"{name:28s} {version:14s} {file}")
        if not file.endswith(".whl"):
            bad.append(name)
    n_bad = sum(1 for b in bad if not b.startswith("hpbandster"))
    print(f"{len(installs)} packages for python {args.python_version} / manylinux x86_64, "
          f"{len(installs) - n_bad} wheels" + (f"; not wheels: {bad}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
