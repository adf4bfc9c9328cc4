"""Names of searched zoo entries (``nas:<name>``), kept free of torch so configuration code can check them."""

from __future__ import annotations

import re

NAS_PREFIX = "nas:"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def is_valid_name(name: object) -> bool:
    """A searched entry's own name: 1-64 of a-z 0-9 _ . - starting with a letter or digit (a folder name)."""
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None and ".." not in name


def is_searched_name(backbone: object) -> bool:
    """Whether ``backbone`` names a searched entry (``nas:`` + a valid name)."""
    return (isinstance(backbone, str) and backbone.startswith(NAS_PREFIX)
            and is_valid_name(backbone[len(NAS_PREFIX):]))
