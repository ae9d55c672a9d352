"""Streaming training input: jets (and event weights) chunk by chunk, a shuffle buffer,
fixed-size batches.

The sample never has to fit in memory: files are read in chunks of events through
:func:`hepae_coffea.io.jets.iter_jets` (``uproot.iterate``), an event-weight branch is read
with the same chunking, and a :class:`ShuffleBuffer` mixes jets across chunks and files
before they are cut into batches.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputFileError, MissingBranchError
from ..io.formats import ROOT_SUFFIXES
from ..io.jets import _open_tree, iter_jets

__all__ = ["ShuffleBuffer", "WeightedChunk", "batches", "iter_weighted_jets"]

log = logging.getLogger(__name__)

#: events per chunk when streaming
DEFAULT_STEP_EVENTS = 50_000


@dataclass
class WeightedChunk:
    """Finite jets of one chunk with the weight of each jet's event.

    Attributes
    ----------
    values : numpy.ndarray
        ``(n_jets, n_variables)`` float64.
    weights : numpy.ndarray or None
        ``(n_jets,)`` float64 event weight per jet; None without a weight branch.
    n_nonfinite : int
        Jets dropped by the reader because a variable was NaN or infinite.
    n_bad_weight : int
        Jets dropped because their event's weight was NaN or infinite.
    source : str
        File the chunk came from.
    """

    values: np.ndarray
    weights: np.ndarray | None
    n_nonfinite: int
    n_bad_weight: int
    source: str


def _weight_chunks(path: str, tree: str | None, branch: str, step: int) -> Iterator[np.ndarray]:
    t = _open_tree(path, tree)
    if branch not in t:
        raise MissingBranchError(
            f"{path}:{t.name}: no event-weight branch {branch!r} "
            f"(weight branches found: {[k for k in t if 'eight' in k] or 'none'})"
        )
    for arrays in t.iterate([branch], step_size=step, library="np"):
        w = np.asarray(arrays[branch])
        if w.ndim != 1:
            raise InputFileError(f"{path}: weight branch {branch!r} is not one number per event")
        yield w.astype(np.float64)


def iter_weighted_jets(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    variables: Sequence[str],
    *,
    prefix: str | None = None,
    tree: str | None = None,
    weight_branch: str | None = None,
    step_events: int = DEFAULT_STEP_EVENTS,
    fmt: str | None = None,
    units: str | None = None,
    collection: str | None = None,
    to_units: str = "GeV",
) -> Iterator[WeightedChunk]:
    """Yield jets chunk by chunk, each jet with its event's weight.

    Parameters
    ----------
    paths : path or list of paths
        Input files (weights need ROOT files).
    variables : sequence of str
        Jet variables.
    prefix, tree, fmt, units, collection, to_units
        As for :func:`hepae_coffea.io.jets.iter_jets` (without ``prefix`` and ``tree`` the
        format is detected).
    weight_branch : str, optional
        Per-event weight branch (e.g. ``genWeight``); jets of events with a non-finite
        weight are dropped and counted.
    step_events : int
        Events per chunk.

    Yields
    ------
    WeightedChunk
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    if step_events < 1:
        raise ValueError(f"step_events must be >= 1, got {step_events}")
    for p in paths:
        path = os.fspath(p)
        jets = iter_jets(
            [path],
            variables,
            prefix=prefix,
            tree=tree,
            step_size=int(step_events),
            fmt=fmt,
            units=units,
            collection=collection,
            to_units=to_units,
        )
        if not weight_branch:
            for chunk in jets:
                yield WeightedChunk(chunk.values, None, chunk.n_nonfinite, 0, path)
            continue
        if not path.lower().endswith(ROOT_SUFFIXES):
            raise InputFileError(f"{path}: event weights ({weight_branch!r}) need a ROOT file")
        if tree is None and prefix is None:
            from ..io.formats import detect_format

            tree = detect_format(path, fmt=fmt, units=units, collection=collection).tree
        weights = _weight_chunks(path, tree, weight_branch, int(step_events))
        for chunk in jets:
            w_ev = next(weights, None)
            if chunk.counts is None or w_ev is None or len(w_ev) != len(chunk.counts):
                raise InputFileError(
                    f"{path}: weight branch {weight_branch!r} does not line up with the jets"
                )
            w = np.repeat(w_ev, chunk.counts)
            good = np.isfinite(w)
            n_bad = int((~good).sum())
            if n_bad:
                log.warning(
                    "%s: %d jet(s) of events with a non-finite %s dropped",
                    path,
                    n_bad,
                    weight_branch,
                )
            yield WeightedChunk(chunk.values[good], w[good], chunk.n_nonfinite, n_bad, path)


class ShuffleBuffer:
    """Mix a stream of arrays through a buffer of ``capacity`` rows.

    :meth:`push` adds rows and returns, in random order, all rows beyond the capacity;
    :meth:`flush` returns what is left. Every row pushed comes out exactly once, so the
    output of one pass is a permutation of its input; with a capacity larger than the
    input it is a uniformly random one.

    Parameters
    ----------
    capacity : int
        Rows kept back (memory: ``capacity`` rows of every array).
    rng : numpy.random.Generator
        Source of randomness (fixed seed: reproducible order).
    """

    def __init__(self, capacity: int, rng: np.random.Generator) -> None:
        if capacity < 0:
            raise ValueError(f"shuffle buffer capacity must be >= 0, got {capacity}")
        self.capacity = int(capacity)
        self.rng = rng
        self._held: list[np.ndarray] | None = None

    def push(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """Add rows (all arrays the same length); return the rows that overflow."""
        if self._held is None:
            held = [np.asarray(a) for a in arrays]
        else:
            held = [np.concatenate([h, a]) for h, a in zip(self._held, arrays, strict=True)]
        n = len(held[0])
        n_out = max(0, n - self.capacity)
        perm = self.rng.permutation(n)
        self._held = [h[perm[n_out:]] for h in held]
        return [h[perm[:n_out]] for h in held]

    def flush(self) -> list[np.ndarray] | None:
        """Return the remaining rows in random order and empty the buffer."""
        if self._held is None:
            return None
        held, self._held = self._held, None
        perm = self.rng.permutation(len(held[0]))
        return [h[perm] for h in held]


def batches(
    chunks: Iterator[list[np.ndarray]], batch_size: int, buffer: ShuffleBuffer
) -> Iterator[list[np.ndarray]]:
    """Cut a stream of row blocks, mixed by ``buffer``, into batches of ``batch_size`` rows
    (the last one may be shorter)."""
    carry: list[np.ndarray] | None = None  # fewer than batch_size rows left over

    def take(block: list[np.ndarray]) -> Iterator[list[np.ndarray]]:
        # each row is copied at most once here (with the carry), batches are views
        nonlocal carry
        if carry is not None:
            block = [np.concatenate([c, b]) for c, b in zip(carry, block, strict=True)]
            carry = None
        n = len(block[0])
        n_full = n - n % batch_size
        for i in range(0, n_full, batch_size):
            yield [b[i : i + batch_size] for b in block]
        if n_full < n:
            carry = [b[n_full:] for b in block]

    for block in chunks:
        yield from take(buffer.push(*block))
    tail = buffer.flush()
    if tail is not None:
        yield from take(tail)
    if carry is not None:
        yield carry
