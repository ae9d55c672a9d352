"""Small helpers shared by the benchmark scripts: argument parsing, ROOT sizes, number format."""

from __future__ import annotations

import math
from pathlib import Path

import uproot


def named(items: list[str]) -> list[tuple[str, str]]:
    """``NAME=PATH`` arguments as ``(name, path)`` pairs; a bare path is named by its stem.

    Parameters
    ----------
    items
        The command-line values, e.g. ``["qcd=samples/qcd_test.root", "model.pt"]``.
    """
    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).stem, item
        out.append((name, path))
    return out


def branch_bytes(path: str | Path, tree: str = "Events") -> dict[str, int]:
    """Compressed bytes (baskets with their keys) of every branch of ``tree`` in a ROOT file.

    Returns an empty dict when the file has no such tree.
    """
    with uproot.open(path) as f:
        if tree not in f:
            return {}
        return {b.name: int(b.compressed_bytes) for b in f[tree].itervalues(recursive=True)}


def sci(value: float | None) -> str:
    """A number in short scientific notation for tables: ``2.3e-4``, ``0``, ``n/a``."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    return f"{value:.1e}".replace("e-0", "e-").replace("e+0", "e+")
