"""What clients see of server paths: relative to the data root, never the server's own layout or object addresses.

The database keeps absolute paths (workers and API processes need them); every response and error message goes
through :func:`public` on its way out.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
OUTSIDE = "<server>"


def public_path(path: str | Path, root: Path) -> str:
    """``path`` relative to the data root (``.`` for the root); a path outside it shows only its last part."""
    p = Path(path)
    if p.is_absolute():
        if p == root:
            return "."
        if p.is_relative_to(root):
            return p.relative_to(root).as_posix()
        return f"{OUTSIDE}/{p.name}"
    return p.as_posix()


def scrub_text(text: str, root: Path, others: tuple[Path, ...] = ()) -> str:
    """``text`` with the data root's prefix removed, other known server folders shortened and ``at 0x…`` dropped."""
    for prefix, shown in ((root, ""), *((p, f"{OUTSIDE}/{p.name}/") for p in others)):
        base = str(prefix)
        if base and base != os.sep and base in text:
            text = text.replace(base + os.sep, shown)
            text = re.sub(re.escape(base) + r"(?![\w.-])", shown.rstrip("/") or ".", text)
    return _ADDRESS.sub("", text)


def public(value: Any, root: Path, others: tuple[Path, ...] = ()) -> Any:
    """A JSON-like value with every string scrubbed (see :func:`scrub_text`); containers are copied."""
    if isinstance(value, str):
        return scrub_text(value, root, others)
    if isinstance(value, dict):
        return {k: public(v, root, others) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public(v, root, others) for v in value]
    return value
