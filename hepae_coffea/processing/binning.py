"""Log-spaced bins that numpy can index exactly from a float's bits, and fast fills.

The processor's residual, pt and score axes are ``hist.axis.Variable`` axes whose edges
are the floats ``2**e * (1 + k / 2**bits)``: ``2**bits`` bins per octave, which is close
to log-spaced. For such edges the bin of a float64 ``x`` is its bit pattern shifted right,
so :meth:`Log2Binning.index` finds it with integer arithmetic in a few ns per value and the
same result as ``hist``'s own fill (a binary search costing 30-45 ns per value over
hundreds of edges, and more for spread values than for identical ones). Values on an
edge go to the bin above, NaN to overflow, as in boost-histogram.

:class:`RegularBinning` and :class:`VariableBinning` do the same for the processor's other
axes (``hist.axis.Regular`` and ``hist.axis.Variable``): their ``index`` repeats
boost-histogram's own arithmetic, so that a histogram can be filled with one
``np.bincount`` of the indices (:func:`add_counts`, :func:`add_per_column`) and get the
same bins as with ``Hist.fill``. The processor's fills (`hepae_coffea.processing.fill_kernels`)
repeat this arithmetic value by value in numba kernels; the ``index`` methods here are
their reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import hist
import numpy as np

__all__ = [
    "Binning",
    "Log2Binning",
    "RegularBinning",
    "VariableBinning",
    "add_counts",
    "add_per_column",
]

_MANTISSA = 52
_ABS_MASK = np.int64(0x7FFF_FFFF_FFFF_FFFF)


@dataclass(frozen=True)
class Log2Binning:
    """Edges ``2**e * (1 + k / 2**bits)`` from ``2**lo_exp`` to ``2**hi_exp``.

    With ``symmetric=True`` the edges are mirrored to negative values; the bin around zero
    is then ``[-2**lo_exp, 2**lo_exp)``.
    """

    lo_exp: int
    hi_exp: int
    bits: int
    symmetric: bool = False

    def __post_init__(self) -> None:
        if not (self.hi_exp > self.lo_exp and 0 <= self.bits <= 8):
            raise ValueError(f"invalid log2 binning {self}")

    @property
    def n_side(self) -> int:
        """Number of non-negative edges."""
        return (self.hi_exp - self.lo_exp) * (1 << self.bits) + 1

    def positive_edges(self) -> np.ndarray:
        j = np.arange(self.n_side)
        per = 1 << self.bits
        return np.ldexp(1.0 + (j % per) / per, self.lo_exp + j // per)

    def edges(self) -> np.ndarray:
        pos = self.positive_edges()
        return np.concatenate([-pos[::-1], pos]) if self.symmetric else pos

    def axis(self, name: str, label: str) -> hist.axis.Variable:
        """The matching ``hist`` axis (with under- and overflow)."""
        return hist.axis.Variable(self.edges(), name=name, label=label)

    def index(self, values: np.ndarray) -> np.ndarray:
        """Flow-inclusive bin index of each value (0 = underflow, ``n_bins + 1`` = overflow).

        Equal to ``np.searchsorted(self.edges(), values, side="right")``.
        """
        x = np.ascontiguousarray(values, dtype=np.float64)
        bits = x.view(np.int64)
        p = self.n_side
        shift = _MANTISSA - self.bits
        base = (self.lo_exp + 1023) << self.bits
        if not self.symmetric:
            flow = bits >> shift
            flow -= base - 1
            np.clip(flow, 0, p, out=flow)
        else:
            neg = np.signbit(x)  # -0.0 too: it joins +0.0 in the centre bin
            # |x| below the first edge counts as the float just below it: the centre bin
            flow = np.maximum(bits & _ABS_MASK, ((self.lo_exp + 1023) << _MANTISSA) - 1)
            # negative values: floor(-|x| / 2**shift) rounds away from zero, so the edge
            # -pos[j] itself falls into the bin above it, as in boost-histogram
            np.negative(flow, out=flow, where=neg)
            flow >>= shift
            flow += p + 1 - base
            np.add(flow, 2 * base - 1, out=flow, where=neg)
            np.clip(flow, 0, 2 * p, out=flow)
        nan = np.isnan(x)
        if nan.any():
            flow[nan] = len(self.edges())  # overflow, as boost-histogram does
        return flow

    def n_bins(self) -> int:
        """Bins without the flow bins."""
        return 2 * self.n_side - 1 if self.symmetric else self.n_side - 1

    def coarsen_to(self, coarse: Log2Binning) -> np.ndarray:
        """Lookup table from this binning's flow-inclusive indices to ``coarse``'s.

        ``coarse.index(x) == self.coarsen_to(coarse)[self.index(x)]`` for every float
        ``x``: each of this binning's bins lies inside one bin of ``coarse``, whose edges
        must be a subset of this binning's edges plus ``coarse``'s central bin (else
        ``ValueError``).
        """
        fine = self.edges()
        wide = coarse.edges()
        inner = wide if not coarse.symmetric else wide[np.abs(wide) != 2.0**coarse.lo_exp]
        if (
            self.symmetric != coarse.symmetric
            or fine[0] != wide[0]
            or fine[-1] != wide[-1]
            or not np.isin(inner, fine).all()
        ):
            raise ValueError(f"{coarse} is not a coarsening of {self}")
        lut = np.empty(len(fine) + 1, dtype=np.int64)
        lut[0] = 0  # underflow: below the shared first edge
        lut[1:] = coarse.index(fine)  # a bin's lower edge lies in it; the last: overflow
        return lut


def add_counts(h: hist.Hist[Any], at: tuple[int, ...], *flow_indices: np.ndarray) -> None:
    """Add one count per value to ``h`` (Double storage), at the category indices ``at``
    (axes without flow bins) and the given flow-inclusive indices of the remaining axes."""
    view = h.view(flow=True)[at]
    flat = np.ravel_multi_index(flow_indices, view.shape)
    view += np.bincount(flat, minlength=view.size).reshape(view.shape)


def add_per_column(
    h: hist.Hist[Any], *flow_indices: np.ndarray, valid: np.ndarray | None = None
) -> None:
    """Add counts to ``h`` whose first axis is a category with one entry per column.

    Each index array is ``(n, n_columns)`` (or ``(n,)``, shared by all columns) and holds
    flow-inclusive indices of the remaining axes; column ``c`` goes to category ``c``.
    Entries where ``valid`` is False are skipped.
    """
    view = h.view(flow=True)
    n_cols = view.shape[0]
    flat = np.arange(n_cols, dtype=np.int64)
    for axis_size, idx in zip(view.shape[1:], flow_indices, strict=True):
        flat = flat * axis_size + (idx if idx.ndim == 2 else idx[:, None])
    flat = flat[valid] if valid is not None else flat.ravel()
    view += np.bincount(flat, minlength=view.size).reshape(view.shape)


@dataclass(frozen=True)
class RegularBinning:
    """``n`` equal bins from ``lo`` to ``hi``: ``hist.axis.Regular(n, lo, hi)``."""

    n: int
    lo: float
    hi: float

    def __post_init__(self) -> None:
        if not (self.n >= 1 and self.hi > self.lo):
            raise ValueError(f"invalid regular binning {self}")

    def axis(self, name: str, label: str = "") -> hist.axis.Regular:
        """The matching ``hist`` axis (with under- and overflow)."""
        return hist.axis.Regular(self.n, self.lo, self.hi, name=name, label=label or name)

    def index(self, values: np.ndarray) -> np.ndarray:
        """Flow-inclusive bin index of each value, as boost-histogram computes it:
        ``z = (x - lo) / (hi - lo)``, bin ``floor(z n)`` for ``0 <= z < 1``, underflow
        below, overflow above and for NaN."""
        x = np.asarray(values, dtype=np.float64)
        z = x - self.lo
        z /= self.hi - self.lo
        z *= self.n  # int(z n) of 0 <= z < 1 is at most n (overflow): clipping to n agrees
        np.fmin(z, self.n, out=z)  # NaN -> n: overflow
        np.maximum(z, -1.0, out=z)  # underflow
        np.floor(z, out=z)
        flow = z.astype(np.int64)
        flow += 1
        return flow


@dataclass(frozen=True)
class VariableBinning:
    """Bins between the given increasing ``edges``: ``hist.axis.Variable(edges)``."""

    edges: tuple[float, ...]

    def __post_init__(self) -> None:
        e = np.asarray(self.edges, dtype=np.float64)
        if len(e) < 2 or not (np.diff(e) > 0).all():
            raise ValueError(f"invalid variable binning: edges must increase, got {self.edges}")

    def axis(self, name: str, label: str = "") -> hist.axis.Variable:
        """The matching ``hist`` axis (with under- and overflow)."""
        return hist.axis.Variable(list(self.edges), name=name, label=label or name)

    def index(self, values: np.ndarray) -> np.ndarray:
        """Flow-inclusive bin index of each value (edges belong to the bin above, NaN to
        overflow), as boost-histogram's binary search finds it."""
        x = np.asarray(values, dtype=np.float64)
        return np.searchsorted(np.asarray(self.edges, dtype=np.float64), x, side="right")

    def bucket_table(self, max_bits: int = 12) -> tuple[np.ndarray, int, int] | None:
        """A lookup table that finds the bin of a positive value from its float bits.

        The values from the first to the last edge are cut into buckets of equal width in
        log2 (each octave into ``2**b`` buckets: the top ``11 + b`` bits of the float64).
        ``table[k]`` is the flow-inclusive bin of bucket ``k0 + k``'s lower end (the
        number of edges at or below it); with the smallest ``b`` that leaves at most one
        edge inside any bucket, the bin of a value is ``table[k]`` or the one above it.

        Returns ``(table, k0, shift)`` with ``k = (bits >> shift) - k0``, or None where no
        such table exists: the first edge is not positive, or some edges are closer than
        ``2**-max_bits`` octaves (those binnings use the binary search).
        """
        e = np.asarray(self.edges, dtype=np.float64)
        if not e[0] > 0.0 or not np.isfinite(e[-1]):
            return None
        bits = e.view(np.int64)
        for b in range(max_bits + 1):
            shift = 52 - b
            keys = bits >> shift
            k0 = int(keys[0])
            # edges strictly inside a bucket (not at its lower end): at most one per bucket
            inside = keys[(bits & ((1 << shift) - 1)) != 0]
            if len(inside) and np.bincount(inside - k0).max() > 1:
                continue
            lower = (np.arange(k0, int(keys[-1]) + 1, dtype=np.int64) << shift).view(np.float64)
            return np.searchsorted(e, lower, side="right").astype(np.int64), k0, shift
        return None


#: any of the bit-indexable binnings
Binning = Log2Binning | RegularBinning | VariableBinning
