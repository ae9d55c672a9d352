"""Opening ROOT files for reading, with one clear error for a missing or unreadable file."""

from __future__ import annotations

from typing import Any

from ..errors import InputFileError

__all__ = ["TREE_CLASSES", "open_root", "tree_names"]

#: the classes read as trees
TREE_CLASSES = ("TTree", "TNtuple", "ROOT::RNTuple")


def open_root(path: str) -> Any:
    """``uproot.open(path)`` with its keys read, so a corrupt file fails here.

    Raises `InputFileError` naming ``path``: "file not found", or "cannot be read as a ROOT
    file" with uproot's reason (uproot raises many exception types for corrupt files).
    """
    import uproot

    try:
        f = uproot.open(path)
        f.keys()
    except FileNotFoundError:
        raise InputFileError(f"{path}: file not found") from None
    except Exception as err:  # noqa: BLE001  (uproot raises many types for corrupt files)
        raise InputFileError(f"{path}: cannot be read as a ROOT file ({err})") from None
    return f


def tree_names(f: Any) -> list[str]:
    """The names of the trees in an open file, sorted, without cycle numbers."""
    return sorted({k.split(";")[0] for k, c in f.classnames().items() if c in TREE_CLASSES})
