"""Atomic file writing: write to a temporary file beside the target, then rename.

:func:`atomic_output` writes one file, :func:`atomic_outputs` several that appear all or
none (all are written to temporaries first, then renamed). A full disk (or quota) while
writing becomes one :class:`OutputWriteError` naming the output, and every temporary file
is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeGuard

from ..errors import HepaeError

__all__ = [
    "OutputWriteError",
    "atomic_output",
    "atomic_outputs",
    "is_disk_full",
    "write_text_atomic",
]

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class OutputWriteError(HepaeError):
    """An output could not be written (disk full, quota exceeded)."""


def is_disk_full(err: BaseException) -> TypeGuard[OSError]:
    """True for an OSError meaning that the disk or the quota is full."""
    return isinstance(err, OSError) and err.errno in _DISK_FULL


def _new_tempfile(path: Path, registry: list[str]) -> None:
    """Create a temporary file beside ``path`` and add it to ``registry``, with SIGINT and
    SIGTERM held back in between, so a signal can never leave an unregistered file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    held = {signal.SIGINT, signal.SIGTERM}
    main = threading.current_thread() is threading.main_thread()
    if main:
        before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        registry.append(tmp)
        os.close(fd)
    finally:
        if main:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _publish(tmp: str, path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates owner-only files
    os.replace(tmp, path)


def _fail(err: BaseException, paths: Sequence[Path]) -> None:
    if is_disk_full(err) and err.errno is not None:
        names = ", ".join(str(p) for p in paths)
        raise OutputWriteError(
            f"cannot write {names}: {os.strerror(err.errno)} (nothing was written)"
        ) from None


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path``.

    A crash, Ctrl-C or SIGTERM leaves no half-written ``path`` (the temporary file is
    removed). With ``overwrite=False`` an existing ``path`` is refused (FileExistsError).
    A full disk raises :class:`OutputWriteError` naming ``path``.
    """
    with atomic_outputs([path], overwrite=overwrite) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_outputs(
    paths: Sequence[str | os.PathLike[str]], overwrite: bool = True
) -> Iterator[list[str]]:
    """Yield temporary paths for several outputs; on success all are renamed into place.

    The renames happen only after every file has been written, so either all outputs
    appear or (on an error while writing) none does.
    """
    targets = [Path(p) for p in paths]
    for path in targets:
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path}: output exists (use --overwrite to replace it)")
    tmps: list[str] = []
    try:
        try:
            for path in targets:
                _new_tempfile(path, tmps)
            yield list(tmps)
        except OSError as err:
            _fail(err, targets)
            raise
        for tmp, path in zip(tmps, targets, strict=True):
            _publish(tmp, path)
    except BaseException:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)


def write_atomic(path: str | os.PathLike[str], write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` and rename ``tmp`` to ``path`` on success."""
    with atomic_output(path) as tmp:
        write(tmp)
