"""The ``metarec`` console script: one parser, subcommands registered by ``metarec.commands`` modules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from metarec import __version__
from metarec.commands import (
    datasets,
    finetune,
    fingerprint,
    matchers,
    nas,
    portfolio,
    rebuild,
    search,
    serve,
    weights,
    zoo,
)
from metarec.commands import eval as evaluation

COMMAND_MODULES = (datasets, fingerprint, matchers, finetune, rebuild, search, portfolio, evaluation, serve, zoo,
                   weights, nas)


def get_args_parser() -> argparse.ArgumentParser:
    """Build the full argument parser (kept apart from ``main`` so it can be tested and documented)."""
    parser = argparse.ArgumentParser(
        prog="metarec",
        description="metarec: recommend a pretrained backbone and fine-tuning hyperparameters for a new "
                    "image dataset by matching its fingerprint to known datasets.")
    parser.add_argument("--version", action="version", version=f"metarec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; metarec's own errors print as one line on stderr with exit code 2."""
    from metafeatures.errors import MetarecError

    args = get_args_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MetarecError as exc:
        print(f"metarec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("metarec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
