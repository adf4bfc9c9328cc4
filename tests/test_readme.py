"""The README tells a newcomer the truth: every CLI command is listed, `--json` is claimed exactly where a
command has it, the first request after `make run` uses real routes, and no path points outside the repository."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from metarec.cli import get_args_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[str, argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {" ".join(path): parser}
    out: dict[str, argparse.ArgumentParser] = {}
    for name, sub in subs[0].choices.items():
        out.update(_leaves(sub, (*path, name)))
    return out


def _documented() -> dict[str, str]:
    """command → its README synopsis (``a | b | c`` alternatives of one group split apart)."""
    block = README[README.index("## Command line"):]
    block = block[block.index("```") + 3:]
    block = block[:block.index("```")]
    lines: list[str] = []
    for raw in block.splitlines():
        if raw.startswith("metarec "):
            lines.append(raw)
        elif lines and raw.startswith(" "):
            lines[-1] += " " + raw.strip()
    out: dict[str, str] = {}
    for line in lines:
        words = line.split("#")[0].split()
        group, rest = words[1], " ".join(words[2:])
        is_sub = bool(re.match(r"[a-z][a-z-]*\b", rest))
        for alt in rest.split(" | ") if is_sub else [rest]:
            first = alt.split()[0] if alt.split() else ""
            out.setdefault(f"{group} {first}" if re.fullmatch(r"[a-z][a-z-]*", first) else group, alt)
    return out


def test_every_command_is_listed_and_json_is_claimed_exactly_where_it_exists():
    leaves = _leaves(get_args_parser())
    documented = _documented()
    missing = sorted(cmd for cmd in leaves if cmd not in documented)
    assert not missing, missing
    for cmd, synopsis in list(documented.items()):
        if alias := re.search(r"the same as `(.+?)`", synopsis):
            documented[cmd] = documented[alias.group(1)]
    for cmd, parser in leaves.items():
        has_json = any("--json" in a.option_strings for a in parser._actions)
        assert ("--json" in documented[cmd]) == has_json, (cmd, documented[cmd], has_json)
    assert "search worker" in leaves and "metarec search worker" in README


def test_no_path_outside_the_repository_and_a_first_request_after_make_run():
    assert "../" not in README
    first = README[README.index("A first request"):README.index("## Command line")]
    assert re.search(r"POST localhost:8000/v1/datasets .*demo/", first)
    assert "localhost:8000/v1/recommendations" in first and "metarec-dev-user-key" in first
    assert "python3-venv" in README and "build-essential" in README and "GB of disk" in README
    assert re.search(r"make test.*about \d+ minutes", README, re.S) and "-k " in README
