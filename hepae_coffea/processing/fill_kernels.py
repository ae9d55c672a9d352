"""Numba kernels that fill the processor's histograms in one pass over the jets.

The numpy fills of :mod:`hepae_coffea.processing.binning` cost a dozen full passes over
the (jets x variables) arrays per chunk: residuals, bin indices, flattened indices,
``np.bincount``, moments. The kernels here loop over the jets once and add one count per
value straight into the histograms' flow-inclusive views, with the same bins:

- :func:`log2_index`, :func:`regular_index` and :func:`variable_index` repeat, value by
  value, the integer and float arithmetic of ``Log2Binning.index``,
  ``RegularBinning.index`` and ``VariableBinning.index`` (which stay the reference);
- :func:`pairwise_sum` repeats numpy's pairwise summation, so event means and the
  residual moments are the floats numpy computes (``np.add.reduceat``, ``np.mean``).

The kernels take the binnings' parameters as plain numbers (``lo_exp, hi_exp, bits,
symmetric``; ``n, lo, hi``; an edges array). They are compiled on first use and cached
next to this file (``cache=True``; where that folder is read-only, in the user's numba
cache folder, else they are compiled again in each process).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic

__all__ = [
    "domain_codes",
    "event_summaries",
    "fill_baselines",
    "fill_distributions",
    "fill_latents",
    "fill_residuals",
    "log2_index",
    "moments",
    "pairwise_sum",
    "regular_index",
    "table_index",
    "unphysical",
    "variable_index",
    "wrap_phi",
]

_F = TypeVar("_F", bound=Callable[..., Any])

log = logging.getLogger(__name__)

_MANTISSA = 52
_ABS_MASK = 0x7FFF_FFFF_FFFF_FFFF
_TWO_PI = 2 * math.pi
#: numpy's pairwise summation: blocks up to this size are summed with 8 accumulators
_PW_BLOCKSIZE = 128
#: copies of each residual histogram that consecutive jets count into (fill_residuals)
_SUB = 4


def _kernel(func: _F) -> _F:
    """``numba.njit(cache=True, nogil=True)`` with numpy's float semantics (division by
    zero gives inf or NaN, as in numpy), typed for mypy.

    numba caches the compiled kernel next to this file, else in the user's cache folder
    (``NUMBA_CACHE_DIR``); where neither is writable the kernel is compiled in each
    process instead.
    """
    try:
        return cast("_F", numba.njit(cache=True, nogil=True, error_model="numpy")(func))
    except RuntimeError as e:  # "cannot cache function ...: no locator available"
        log.debug("numba kernel %s not cached: %s", func.__name__, e)
        return cast("_F", numba.njit(nogil=True, error_model="numpy")(func))


def _float_bits_typer(typingctx: Any, x: Any) -> Any:
    """The int64 with the bit pattern of a float64 (``x.view(np.int64)`` of one value)."""
    if not isinstance(x, types.Float) or x.bitwidth != 64:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(types.float64), codegen


_float_bits = cast("Callable[[float], int]", intrinsic(_float_bits_typer))


@_kernel
def log2_index(x: float, lo_exp: int, hi_exp: int, bits: int, symmetric: bool) -> int:
    """Flow-inclusive bin of ``x`` on ``Log2Binning(lo_exp, hi_exp, bits, symmetric)``:
    the integer arithmetic of ``Log2Binning.index`` on one value."""
    p = ((hi_exp - lo_exp) << bits) + 1  # n_side
    shift = _MANTISSA - bits
    base = (lo_exp + 1023) << bits
    if math.isnan(x):  # overflow
        return 2 * p if symmetric else p
    b = _float_bits(x)
    if not symmetric:
        flow = (b >> shift) - (base - 1)
        return min(max(flow, 0), p)
    a = b & _ABS_MASK
    a = max(a, ((lo_exp + 1023) << _MANTISSA) - 1)  # below the first edge: the centre bin
    # the sign bit (-0.0 included): floor(-|x| / 2**shift) rounds away from zero, so the
    # edge -pos[j] itself falls into the bin above it, as in boost-histogram
    neg = b < 0
    flow = ((-a if neg else a) >> shift) + p + 1 - base + (2 * base - 1 if neg else 0)
    return min(max(flow, 0), 2 * p)


@_kernel
def regular_index(x: float, n: int, lo: float, width: float) -> int:
    """Flow-inclusive bin of ``x`` on ``RegularBinning(n, lo, lo + width)`` (``width`` is
    ``hi - lo``): the float arithmetic of ``RegularBinning.index`` on one value."""
    z: float = np.float64(x) - lo
    z /= width
    z *= n
    if not z <= n:  # np.fmin(z, n): NaN and beyond -> overflow
        z = float(n)
    z = max(z, -1.0)
    return math.floor(z) + 1


@_kernel
def variable_index(x: float, edges: np.ndarray) -> int:
    """Flow-inclusive bin of ``x`` between increasing ``edges``:
    ``np.searchsorted(edges, x, side="right")`` (NaN: overflow).

    A binary search whose steps depend only on ``len(edges)`` (the comparison picks the
    next base without a branch to mispredict): it counts the edges ``<= x``.
    """
    n = len(edges)
    if math.isnan(x):
        return n
    if n == 0:
        return 0
    base = 0
    size = n
    while size > 1:
        half = size >> 1
        base = base + half if edges[base + half - 1] <= x else base
        size -= half
    return base + 1 if edges[base] <= x else base


@_kernel
def table_index(x: float, ext: np.ndarray, n: int, table: np.ndarray, k0: int, shift: int) -> int:
    """Flow-inclusive bin of ``x`` between the ``n`` increasing, positive edges
    ``ext[:n]`` (``ext[n]`` is +inf), found with ``VariableBinning.bucket_table``'s
    ``(table, k0, shift)``: the same bin as :func:`variable_index`, without a search.

    Written without early returns, so that the compiler keeps it free of branches."""
    m = len(table)
    k = (_float_bits(x) >> shift) - k0
    i: int = table[min(max(k, 0), m - 1)]
    i = i + 1 if ext[i] <= x else i  # the one edge a bucket may hold, or +inf
    i = 0 if k < 0 else i  # below the first bucket: below the first edge
    i = n if k >= m else i  # above the last bucket: above the last edge (+inf too)
    if not x > 0.0:  # zero and negative values are below the first edge; NaN: overflow
        i = n if math.isnan(x) else 0
    return i


@_kernel
def wrap_phi(d: float) -> float:
    """An angle difference mapped into (-pi, pi]: ``registry.wrap_phi`` on one value
    (``np.mod`` as numpy computes it, from ``fmod``)."""
    m = d + math.pi
    if 0.0 < m < _TWO_PI:  # fmod(m, 2 pi) is m itself, exactly: no call to fmod
        y = m - math.pi
        return math.pi if y == -math.pi else y
    m = np.fmod(m, _TWO_PI)
    if m != 0.0:
        if m < 0.0:  # (the divisor is positive)
            m += _TWO_PI
    else:
        m = 0.0
    y = m - math.pi
    return math.pi if y == -math.pi else y


@_kernel
def _term(a: np.ndarray, k: int, mean: float, square: bool) -> float:
    x = np.float64(a[k])
    if square:
        d = x - mean
        return d * d
    return x


@_kernel
def _block_sum(a: np.ndarray, start: int, n: int, mean: float, square: bool) -> float:
    """numpy's pairwise sum of at most ``_PW_BLOCKSIZE`` terms (``pairwise_sum`` in
    numpy's ``loops_utils.h.src``): sequential below 8, else 8 interleaved accumulators."""
    if n < 8:
        res = -0.0
        for i in range(n):
            res += _term(a, start + i, mean, square)
        return res
    r0 = _term(a, start, mean, square)
    r1 = _term(a, start + 1, mean, square)
    r2 = _term(a, start + 2, mean, square)
    r3 = _term(a, start + 3, mean, square)
    r4 = _term(a, start + 4, mean, square)
    r5 = _term(a, start + 5, mean, square)
    r6 = _term(a, start + 6, mean, square)
    r7 = _term(a, start + 7, mean, square)
    i = 8
    while i < n - (n % 8):
        k = start + i
        r0 += _term(a, k, mean, square)
        r1 += _term(a, k + 1, mean, square)
        r2 += _term(a, k + 2, mean, square)
        r3 += _term(a, k + 3, mean, square)
        r4 += _term(a, k + 4, mean, square)
        r5 += _term(a, k + 5, mean, square)
        r6 += _term(a, k + 6, mean, square)
        r7 += _term(a, k + 7, mean, square)
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += _term(a, start + i, mean, square)
        i += 1
    return res


@_kernel
def _pairwise(a: np.ndarray, start: int, n: int, mean: float, square: bool) -> float:
    """numpy's pairwise sum of ``a[start:start + n]`` (or of ``(a - mean) ** 2``): halves
    (the first a multiple of 8 long) summed separately down to blocks of
    ``_PW_BLOCKSIZE``. The recursion runs on an explicit stack (numba's cache cannot
    load recursive functions)."""
    if n <= _PW_BLOCKSIZE:
        return _block_sum(a, start, n, mean, square)
    depth = 128
    f_start = np.empty(depth, dtype=np.int64)
    f_n = np.empty(depth, dtype=np.int64)
    f_stage = np.zeros(depth, dtype=np.int64)
    sums = np.empty(depth)
    top = 0  # frames on the stack
    n_sums = 0
    f_start[0], f_n[0], f_stage[0] = start, n, 0
    top = 1
    while top > 0:
        f = top - 1
        s, m = f_start[f], f_n[f]
        if m <= _PW_BLOCKSIZE:
            sums[n_sums] = _block_sum(a, s, m, mean, square)
            n_sums += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        if f_stage[f] == 0:  # the first half
            f_stage[f] = 1
            f_start[top], f_n[top], f_stage[top] = s, half, 0
            top += 1
        elif f_stage[f] == 1:  # the second half
            f_stage[f] = 2
            f_start[top], f_n[top], f_stage[top] = s + half, m - half, 0
            top += 1
        else:  # both done: first + second
            n_sums -= 1
            sums[n_sums - 1] = sums[n_sums - 1] + sums[n_sums]
            top -= 1
    return float(sums[0])


@_kernel
def pairwise_sum(a: np.ndarray, start: int, n: int) -> float:
    """Sum of ``a[start:start + n]`` (as float64) in numpy's pairwise order: the value of
    ``np.sum`` of that slice."""
    return _pairwise(a, start, n, 0.0, False)


@_kernel
def moments(values: np.ndarray, out: np.ndarray) -> None:
    """``out = (count, mean, sum of squared deviations)`` of a 1D float64 array, as
    ``values.size``, ``values.mean()`` and ``np.sum((values - mean) ** 2)`` give them."""
    n = len(values)
    out[0] = n
    if n == 0:
        out[1] = np.nan
        out[2] = np.nan
        return
    mean = pairwise_sum(values, 0, n) / n
    out[1] = mean
    out[2] = _pairwise(values, 0, n, mean, True)


@_kernel
def fill_residuals(
    orig: np.ndarray,
    rec: np.ndarray,
    scale: np.ndarray,
    floor: np.ndarray,
    wrap: np.ndarray,
    absolute: np.ndarray,
    pt_col: int,
    res_lo: int,
    res_hi: int,
    res_bits: int,
    pt_lo: int,
    pt_hi: int,
    pt_bits: int,
    coarse_of_fine: np.ndarray,
    residual: np.ndarray,
    residual_abs: np.ndarray,
    residual_vs_pt: np.ndarray,
    rel_out: np.ndarray,
    abs_out: np.ndarray,
    n_rel: np.ndarray,
) -> None:
    """Residuals of every jet and variable, added to the residual histograms' views.

    ``orig``/``rec`` are (jets, variables) in the model's units; ``scale`` takes each
    column to GeV. Per variable: ``floor`` > 0 makes the relative residual
    ``d / max(|orig|, floor)`` (else ``d / orig``, NaN where ``orig == 0``); ``wrap``
    maps the absolute residual ``d = rec - orig`` into (-pi, pi]; ``absolute`` picks the
    residual of ``residual_vs_pt`` (pt column ``pt_col``; -1: not filled). Finite
    relative residuals go to ``residual`` (and are stored, per variable, in ``rel_out``,
    ``n_rel`` of them), absolute ones to ``residual_abs`` (all stored in ``abs_out``).
    Residual bins are ``Log2Binning(res_lo, res_hi, res_bits, symmetric=True)``, the
    coarse ones looked up with ``coarse_of_fine``; pt bins ``Log2Binning(pt_lo, pt_hi,
    pt_bits)``.

    Per variable, a first loop computes the residuals and their bins, a second adds the
    counts. Residuals pile up in a few bins, and consecutive additions to the same bin
    wait for each other; the second loop therefore counts the residual histograms into
    ``_SUB`` copies in turn, summed at the end (whole counts: the sums are exact). The
    residual-vs-pt counts, spread over pt bins, go straight into their view.
    """
    n, n_var = orig.shape
    pt_bin = np.zeros(n if pt_col >= 0 else 0, dtype=np.int64)
    for j in range(len(pt_bin)):
        pt = np.float64(orig[j, pt_col]) * scale[pt_col]
        pt_bin[j] = log2_index(pt, pt_lo, pt_hi, pt_bits, False)
    n_bins = residual.shape[1]
    sub_rel = np.zeros((_SUB, n_bins))
    sub_abs = np.zeros((_SUB, n_bins))
    rel_bin = np.empty(n, dtype=np.int64)  # -1: not finite
    abs_bin = np.empty(n, dtype=np.int64)
    for i in range(n_var):
        s, fl, wr, ab_vs_pt = scale[i], floor[i], wrap[i], absolute[i]
        n_ok = 0
        for j in range(n):
            o = np.float64(orig[j, i]) * s
            d = np.float64(rec[j, i]) * s - o
            # relative residual, as metrics.residuals computes it
            den = o if fl <= 0 or math.isnan(o) else max(abs(o), fl)
            rel = d / den if den != 0 else np.nan
            # absolute residual, phi wrapped into (-pi, pi] as registry.wrap_phi does
            ab = wrap_phi(d) if wr else d
            abs_out[i, j] = ab
            abs_bin[j] = log2_index(ab, res_lo, res_hi, res_bits, True)
            if math.isfinite(rel):
                rel_out[i, n_ok] = rel
                n_ok += 1
                rel_bin[j] = log2_index(rel, res_lo, res_hi, res_bits, True)
            else:
                rel_bin[j] = -1
        n_rel[i] = n_ok
        sub_rel[:] = 0.0
        sub_abs[:] = 0.0
        for j in range(n):
            k = j % _SUB
            ai, ri = abs_bin[j], rel_bin[j]
            sub_abs[k, ai] += 1.0
            if ri >= 0:
                sub_rel[k, ri] += 1.0
            if pt_col >= 0:
                if ab_vs_pt:
                    if math.isfinite(abs_out[i, j]):
                        residual_vs_pt[i, pt_bin[j], coarse_of_fine[ai]] += 1.0
                elif ri >= 0:
                    residual_vs_pt[i, pt_bin[j], coarse_of_fine[ri]] += 1.0
        for b in range(n_bins):
            for k in range(_SUB):
                residual[i, b] += sub_rel[k, b]
                residual_abs[i, b] += sub_abs[k, b]


@_kernel
def fill_distributions(
    orig: np.ndarray,
    rec: np.ndarray,
    scale: np.ndarray,
    kind: np.ndarray,
    reg_n: np.ndarray,
    reg_lo: np.ndarray,
    reg_width: np.ndarray,
    edges: np.ndarray,
    n_edges: np.ndarray,
    tables: np.ndarray,
    n_table: np.ndarray,
    k0: np.ndarray,
    shift: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Original and reconstructed values (in GeV: ``x * scale``) of every jet and
    variable, added to ``counts[variable, flow bin, version]``.

    Variable ``i`` is binned with ``RegularBinning(reg_n[i], reg_lo[i], reg_lo[i] +
    reg_width[i])`` where ``kind[i] == 0``, else between ``edges[i, :n_edges[i]]``
    (``edges[i, n_edges[i]]`` is +inf): with ``kind[i] == 1`` by binary search, with
    ``kind[i] == 2`` by :func:`table_index` with ``(tables[i, :n_table[i]], k0[i],
    shift[i])``.
    """
    n, n_var = orig.shape
    # one variable at a time: the inner loops have no branch on the binning's kind
    for i in range(n_var):
        s = scale[i]
        if kind[i] == 0:
            bins, lo, width = reg_n[i], reg_lo[i], reg_width[i]
            for j in range(n):
                counts[i, regular_index(np.float64(orig[j, i]) * s, bins, lo, width), 0] += 1.0
                counts[i, regular_index(np.float64(rec[j, i]) * s, bins, lo, width), 1] += 1.0
        elif kind[i] == 2:
            ext, n_e, table, key0, sh = (
                edges[i],
                n_edges[i],
                tables[i, : n_table[i]],
                k0[i],
                shift[i],
            )
            for j in range(n):
                x = np.float64(orig[j, i]) * s
                counts[i, table_index(x, ext, n_e, table, key0, sh), 0] += 1.0
                x = np.float64(rec[j, i]) * s
                counts[i, table_index(x, ext, n_e, table, key0, sh), 1] += 1.0
        else:
            e = edges[i, : n_edges[i]]
            for j in range(n):
                counts[i, variable_index(np.float64(orig[j, i]) * s, e), 0] += 1.0
                counts[i, variable_index(np.float64(rec[j, i]) * s, e), 1] += 1.0


@_kernel
def fill_latents(
    latent: np.ndarray,
    n: int,
    lo: float,
    width: float,
    latent_view: np.ndarray,
    pairs: np.ndarray,
    pair_n: int,
    pair_lo: float,
    pair_width: float,
    pairs_view: np.ndarray,
) -> None:
    """Latent values (jets x dimensions) added to ``latent_view[dim, flow bin]``
    (``RegularBinning(n, lo, lo + width)``), and the pairs ``(i, j)`` of dimensions in
    ``pairs`` to ``pairs_view[pair, flow bin i, flow bin j]`` (``RegularBinning(pair_n,
    pair_lo, pair_lo + pair_width)``)."""
    n_jets, k = latent.shape
    n_pairs = len(pairs)
    # one dimension (then one pair) at a time, over all jets
    for d in range(k):
        for j in range(n_jets):
            latent_view[d, regular_index(np.float64(latent[j, d]), n, lo, width)] += 1.0
    if n_pairs:
        idx = np.empty((k, n_jets), dtype=np.int64)
        for d in range(k):
            for j in range(n_jets):
                idx[d, j] = regular_index(np.float64(latent[j, d]), pair_n, pair_lo, pair_width)
        for q in range(n_pairs):
            a, b = pairs[q, 0], pairs[q, 1]
            for j in range(n_jets):
                pairs_view[q, idx[a, j], idx[b, j]] += 1.0


@_kernel
def event_summaries(
    score: np.ndarray,
    counts: np.ndarray,
    lo_exp: int,
    hi_exp: int,
    bits: int,
    jet_view: np.ndarray,
    max_view: np.ndarray,
    mean_view: np.ndarray,
    max_idx: np.ndarray,
    mean_idx: np.ndarray,
) -> None:
    """Jet scores and event scores (max and mean over each event's jets), added to their
    views on ``Log2Binning(lo_exp, hi_exp, bits)``.

    ``max_idx``/``mean_idx`` receive the event scores' flow-inclusive bins, one per event
    with jets (in order). The max is ``np.maximum.reduceat``'s (NaN wins), the mean the
    sum ``np.add.reduceat`` computes over the count.
    """
    start = 0
    e = 0
    for c in counts:
        if c <= 0:
            continue
        top = np.float64(score[start])
        jet_view[log2_index(top, lo_exp, hi_exp, bits, False)] += 1.0
        for q in range(start + 1, start + c):
            s = np.float64(score[q])
            jet_view[log2_index(s, lo_exp, hi_exp, bits, False)] += 1.0
            if not math.isnan(top) and (math.isnan(s) or s > top):
                top = s
        # reduceat: the first value, plus the pairwise sum of the others
        total = np.float64(score[start]) + pairwise_sum(score, start + 1, c - 1)
        mean = total / c
        b_max = log2_index(top, lo_exp, hi_exp, bits, False)
        b_mean = log2_index(mean, lo_exp, hi_exp, bits, False)
        max_view[b_max] += 1.0
        mean_view[b_mean] += 1.0
        max_idx[e] = b_max
        mean_idx[e] = b_mean
        e += 1
        start += c


@_kernel
def fill_baselines(
    pt: np.ndarray,
    mass: np.ndarray,
    has_mass: bool,
    counts: np.ndarray,
    score_idx: np.ndarray,
    base_lo: int,
    base_hi: int,
    base_bits: int,
    lead_lo: int,
    lead_hi: int,
    lead_bits: int,
    baseline: np.ndarray,
    score_vs_leading: np.ndarray,
) -> None:
    """Per event with jets: the leading jet's pT and mass (the first jet of highest pT)
    and HT (the pairwise sum of pT, as ``np.add.reduceat``), added to
    ``baseline[observable, flow bin]`` (``Log2Binning(base_lo, base_hi, base_bits)``),
    and with the event scores' bins ``score_idx[kind, event]`` to
    ``score_vs_leading[kind, observable, score bin, flow bin]``
    (``Log2Binning(lead_lo, lead_hi, lead_bits)``). ``pt`` must be finite."""
    start = 0
    e = 0
    n_kinds = score_idx.shape[0]
    for c in counts:
        if c <= 0:
            continue
        lead = start
        top = np.float64(pt[start])
        for q in range(start + 1, start + c):
            if np.float64(pt[q]) > top:
                top = np.float64(pt[q])
                lead = q
        ht = np.float64(pt[start]) + pairwise_sum(pt, start + 1, c - 1)
        baseline[0, log2_index(top, base_lo, base_hi, base_bits, False)] += 1.0
        baseline[2, log2_index(ht, base_lo, base_hi, base_bits, False)] += 1.0
        lead_pt = log2_index(top, lead_lo, lead_hi, lead_bits, False)
        for k in range(n_kinds):
            score_vs_leading[k, 0, score_idx[k, e], lead_pt] += 1.0
        if has_mass:
            m = np.float64(mass[lead])
            baseline[1, log2_index(m, base_lo, base_hi, base_bits, False)] += 1.0
            lead_m = log2_index(m, lead_lo, lead_hi, lead_bits, False)
            for k in range(n_kinds):
                score_vs_leading[k, 1, score_idx[k, e], lead_m] += 1.0
        e += 1
        start += c


@_kernel
def domain_codes(
    x: np.ndarray,
    absurd: np.ndarray,
    pt_col: int,
    mass_col: int,
    phi_col: int,
    mass_tolerance_rel: float,
    mass_tolerance_cap: float,
    phi_max: float,
    lo: np.ndarray,
    hi: np.ndarray,
    out: np.ndarray,
) -> None:
    """Per jet (row of ``x``, float32 or float64): the first reason it is out of a model's
    domain, in the order of ``hepae_coffea.variables.domain.REASONS``, or -1.

    0: a non-finite value; 1: ``|x| > absurd`` for a variable; 2: pt <= 0 (column
    ``pt_col``; -1: none); 3: mass < -min(mass_tolerance_rel x |pt|, mass_tolerance_cap)
    (inf without pt); 4: ``|phi| > phi_max``; 5: a value outside ``[lo, hi]``.
    """
    n, n_var = x.shape
    for j in range(n):
        code = -1
        for i in range(n_var):
            if not math.isfinite(x[j, i]):
                code = 0
                break
        if code < 0:
            for i in range(n_var):
                if abs(x[j, i]) > absurd[i]:
                    code = 1
                    break
        if code < 0 and pt_col >= 0 and x[j, pt_col] <= 0:
            code = 2
        if code < 0 and mass_col >= 0:
            tol = math.inf
            if pt_col >= 0:
                tol = mass_tolerance_rel * abs(x[j, pt_col])
            tol = min(tol, mass_tolerance_cap)
            if x[j, mass_col] < -tol:
                code = 3
        if code < 0 and phi_col >= 0 and abs(x[j, phi_col]) > phi_max:
            code = 4
        if code < 0:
            for i in range(n_var):
                if x[j, i] < lo[i] or x[j, i] > hi[i]:
                    code = 5
                    break
        out[j] = code


@_kernel
def unphysical(x: np.ndarray, kind: np.ndarray, phi_max: float, out: np.ndarray) -> None:
    """Per jet (row of ``x``): a non-finite value, a negative value of a ``kind == 1``
    variable (pt, mass, E), or ``|phi| > phi_max`` for a ``kind == 2`` variable."""
    n, n_var = x.shape
    for j in range(n):
        bad = False
        for i in range(n_var):
            v = np.float64(x[j, i])
            if (
                not math.isfinite(v)
                or (kind[i] == 1 and v < 0)
                or (kind[i] == 2 and abs(v) > phi_max)
            ):
                bad = True
                break
        out[j] = bad
