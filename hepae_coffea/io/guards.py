"""Safety checks shared by every command: outputs never replace inputs, pickles only
when trusted, SIGTERM handled like Ctrl-C.

* :func:`check_outputs` refuses, before any work, an output path that resolves (through
  symlinks, ``..`` and hard links) to an input or to another output of the same command.
* :func:`trusted_pickles` is the one switch that lets pickle files be read (pickles can
  run arbitrary code when loaded; ``--trust-pickle`` on the command line).
* :func:`handle_termination` turns SIGTERM (what batch systems send) into the same
  exception as Ctrl-C, after stopping this process's worker processes, so temporary
  files are removed on the way out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from ..errors import HepaeError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "OutputConflictError",
    "Terminated",
    "UntrustedPickleError",
    "check_outputs",
    "handle_termination",
    "pickles_trusted",
    "require_trusted_pickle",
    "safe_name",
    "trusted_pickles",
]

log = logging.getLogger(__name__)


class OutputConflictError(HepaeError):
    """An output path is one of the inputs, or two outputs are the same file."""


class UntrustedPickleError(HepaeError):
    """A pickle file was given without explicit trust."""


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM."""


# ---------------------------------------------------------------------------------------
# outputs vs inputs


def _same(a: Path, b: Path) -> bool:
    """True when two paths name the same file (same resolved path, or same inode)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def _inside(path: Path, folder: Path) -> bool:
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, root]) == root


def check_outputs(
    inputs: Iterable[str | os.PathLike[str] | None],
    outputs: Iterable[str | os.PathLike[str] | None],
    *,
    output_dirs: Iterable[str | os.PathLike[str] | None] = (),
) -> None:
    """Refuse outputs that would replace an input or each other.

    Parameters
    ----------
    inputs : paths
        Files (or folders) the command reads; ``None`` entries and URLs are ignored.
    outputs : paths
        Every file the command writes, including derived ones (``X.root`` beside
        ``X.coffea``).
    output_dirs : paths
        Folders the command writes files into: no input may lie inside one, and no
        output file may be one of them.

    Raises
    ------
    OutputConflictError
        Naming the output and the input (or the other output) it resolves to.
    """
    ins = [Path(p) for p in inputs if p is not None and "://" not in str(p)]
    outs = [Path(p) for p in outputs if p is not None]
    dirs = [Path(p) for p in output_dirs if p is not None]
    for out in outs:
        for inp in ins:
            if _same(out, inp):
                raise OutputConflictError(
                    f"output {out} is the input {inp}: refusing to overwrite an input"
                )
    for i, a in enumerate(outs):
        for b in outs[i + 1 :]:
            if _same(a, b):
                raise OutputConflictError(f"outputs {a} and {b} are the same file")
    for d in dirs:
        for inp in ins:
            if _same(d, inp):
                raise OutputConflictError(
                    f"output folder {d} is the input {inp}: refusing to write into an input"
                )
            if not inp.is_dir() and _inside(inp, d):
                raise OutputConflictError(
                    f"input {inp} lies inside the output folder {d}: choose another folder"
                )
        for out in outs:
            if _same(out, d):
                raise OutputConflictError(f"output {out} is the output folder {d}")


def safe_name(name: str, fallback: str = "_") -> str:
    """A single path component made from ``name``: letters, digits, ``-_.`` kept, every
    other character replaced by ``_``; names made only of dots become ``fallback``."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))
    if not safe.strip("."):
        safe = fallback + safe.replace(".", "_")
    return safe


# ---------------------------------------------------------------------------------------
# pickles


_TRUST_PICKLE = False


def pickles_trusted() -> bool:
    """Whether pickle files may be loaded (inside :func:`trusted_pickles`)."""
    return _TRUST_PICKLE


@contextlib.contextmanager
def trusted_pickles(trust: bool = True) -> Iterator[None]:
    """Allow (``trust=True``) loading pickle files inside the block.

    Loading a pickle runs whatever code its author put in it: only for your own files.
    """
    global _TRUST_PICKLE
    before = _TRUST_PICKLE
    _TRUST_PICKLE = bool(trust)
    try:
        yield
    finally:
        _TRUST_PICKLE = before


def read_trusted_pickle_frame(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The pandas DataFrame in a HEPAutoencoders-style pickle, only when pickles are trusted
    (:func:`trusted_pickles`); InputFileError for unreadable files or other objects."""
    import pandas as pd

    from ..errors import InputFileError

    require_trusted_pickle(path, "pickle file (HEPAutoencoders-style pandas DataFrame)")
    try:
        df = pd.read_pickle(path)
    except Exception as err:  # noqa: BLE001  (readers raise many types for corrupt files)
        raise InputFileError(f"{path}: cannot be read as a pandas pickle ({err})") from None
    if not isinstance(df, pd.DataFrame):
        raise InputFileError(f"{path}: pickle holds a {type(df).__name__}, not a DataFrame")
    return df


def require_trusted_pickle(path: str | os.PathLike[str], what: str = "pickle file") -> None:
    """Raise :class:`UntrustedPickleError` unless pickles are trusted."""
    if not _TRUST_PICKLE:
        raise UntrustedPickleError(
            f"{path}: is a {what}, and loading a pickle can run code; "
            "pass --trust-pickle if you trust its author"
        )


# ---------------------------------------------------------------------------------------
# signals


def _stop_children() -> None:
    """Terminate this process's multiprocessing children (executor worker processes)."""
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is None:  # never imported: no worker process was started
        return
    for child in multiprocessing.active_children():
        with contextlib.suppress(Exception):
            child.terminate()
    for child in multiprocessing.active_children():
        child.join(timeout=5)
        if child.is_alive():
            with contextlib.suppress(Exception):
                child.kill()


_OWNER_PID: int | None = None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _OWNER_PID:
        # a forked worker process inherited the handler: die as the signal says
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    # ignore further signals while unwinding, so cleanup is not interrupted twice
    signal.signal(signum, signal.SIG_IGN)
    _stop_children()
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


@contextlib.contextmanager
def handle_termination() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGINT stop the worker processes and raise
    :class:`Terminated` / ``KeyboardInterrupt`` in the main thread, so ``finally``
    blocks and atomic writers clean up. Previous handlers are restored afterwards."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _OWNER_PID
    _OWNER_PID = os.getpid()
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in before:
        signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)
