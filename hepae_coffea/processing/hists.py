"""Histogram definitions (named axes) filled by the compression processor.

All histograms are built once per chunk from the model's metadata, so every chunk, worker
and executor makes identical axes and the outputs add bin by bin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import hist
import numpy as np

from ..variables.domain import REASONS
from ..variables.registry import canonical_variable, residual_kind, unit_label
from .binning import Log2Binning, RegularBinning, VariableBinning

__all__ = [
    "COARSE_RESIDUAL_BINNING",
    "PT_BINNING",
    "RESIDUAL_BINNING",
    "RESIDUAL_RESOLUTION",
    "SCORE_BINNING",
    "SCORE_EDGES",
    "distribution_axis",
    "distribution_binning",
    "distribution_binnings",
    "hist_quantile",
    "latent_binnings",
    "latent_pairs",
    "make_hists",
    "moments_mean_rms",
    "sigma68_from_hist",
]

# Near-log bins whose index numpy computes from a float's bits (see binning.py), so the
# processor fills them in a few ns per value.
#: residuals: |r| from 2**-24 (6e-8) to 16, 16 bins per octave (53 per decade), both signs
RESIDUAL_BINNING = Log2Binning(-24, 4, 4, symmetric=True)
#: residual axis of the 2D residual-vs-pt histograms: |r| from 2**-20 (1e-6) to 16, 4/octave
COARSE_RESIDUAL_BINNING = Log2Binning(-20, 4, 2, symmetric=True)
#: original jet pt: 16 GeV to 8192 GeV, 4 bins per octave
PT_BINNING = Log2Binning(4, 13, 2)
#: anomaly scores (reconstruction error in normalised space): 2**-34 (6e-11) to 1024
SCORE_BINNING = Log2Binning(-34, 10, 2)
SCORE_EDGES = SCORE_BINNING.edges()
#: residuals with smaller magnitude share the central bin: widths below it read as "< it"
RESIDUAL_RESOLUTION = 2.0**RESIDUAL_BINNING.lo_exp


def _label(variable: str) -> str:
    unit = unit_label(variable)
    return f"{variable} [{unit}]" if unit else variable


def distribution_binning(
    variable: str, rng: Sequence[float] | None
) -> RegularBinning | VariableBinning:
    """Binning of a variable's original/reconstructed distribution, from its training range.

    ``rng`` is (min, median, max) of the training data, as stored in the model metadata.
    """
    canon = canonical_variable(variable)
    if canon == "phi":
        return RegularBinning(64, -math.pi, math.pi)
    if canon == "eta":
        return RegularBinning(100, -5.0, 5.0)
    lo, _, hi = rng if rng is not None else (0.0, 1.0, 1.0)
    if canon in ("pt", "mass", "E") and hi > 0:
        start = max(lo, hi * 1e-3, 1e-3)
        return VariableBinning(tuple(float(e) for e in np.geomspace(start, hi * 2.0, 81)))
    pad = 0.05 * (hi - lo) or 1.0
    return RegularBinning(100, lo - pad, hi + pad)


def distribution_axis(variable: str, rng: Sequence[float] | None) -> hist.axis.AxisProtocol:
    """Axis for a variable's original/reconstructed distribution, from its training range.

    ``rng`` is (min, median, max) of the training data, as stored in the model metadata.
    """
    return distribution_binning(variable, rng).axis("value", _label(variable))


def distribution_binnings(
    metadata: Mapping[str, Any],
) -> dict[str, RegularBinning | VariableBinning]:
    """``{variable: binning}`` of the ``distribution`` histograms of :func:`make_hists`."""
    ranges = metadata.get("training", {}).get("data", {}).get("ranges", {})
    return {
        v["name"]: distribution_binning(v["name"], ranges.get(v["name"]))
        for v in metadata["variables"]
    }


def latent_binnings(metadata: Mapping[str, Any]) -> tuple[RegularBinning, RegularBinning]:
    """Binnings of the ``latent`` histogram's values and of the ``latent_pairs`` axes."""
    lat = metadata.get("latent_range") or [0.0, 1.0]
    lo, hi = float(lat[0]), float(lat[1])
    return RegularBinning(200, lo, hi), RegularBinning(60, lo, hi)


def latent_pairs(latent_dim: int) -> list[tuple[int, int]]:
    """The latent pairs histogrammed: ``(i, j)``, ``i < j``, among the first four dimensions
    (six panels at most)."""
    first = range(min(latent_dim, 4))
    return [(i, j) for i in first for j in first if i < j]


def make_hists(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Empty histograms for one dataset, built from a model's metadata."""
    variables = [v["name"] for v in metadata["variables"]]
    k = int(metadata["latent_dim"])
    distributions = distribution_binnings(metadata)
    lat, lat_pair = latent_binnings(metadata)
    var_axis = hist.axis.StrCategory(variables, name="variable", label="Variable", overflow=False)
    res_axis = RESIDUAL_BINNING.axis("residual", "(rec - orig)/orig")
    abs_axis = RESIDUAL_BINNING.axis("residual", "rec - orig")
    coarse = COARSE_RESIDUAL_BINNING.axis("residual", "residual")
    return {
        "residual": hist.Hist(var_axis, res_axis),
        "residual_abs": hist.Hist(var_axis, abs_axis),
        "residual_moments": hist.Hist(
            var_axis,
            hist.axis.StrCategory(["relative", "absolute"], name="kind", overflow=False),
            storage=hist.storage.Mean(),
        ),
        "residual_vs_pt": hist.Hist(
            var_axis,
            PT_BINNING.axis("pt", "original jet pT [GeV]"),
            coarse,
        ),
        "distribution": {
            v: hist.Hist(
                distributions[v].axis("value", _label(v)),
                hist.axis.StrCategory(
                    ["original", "reconstructed"], name="version", overflow=False
                ),
            )
            for v in variables
        },
        "score_jet": hist.Hist(SCORE_BINNING.axis("score", "jet anomaly score")),
        "score_event_max": hist.Hist(SCORE_BINNING.axis("score", "event score (max over jets)")),
        "score_event_mean": hist.Hist(SCORE_BINNING.axis("score", "event score (mean over jets)")),
        "latent": hist.Hist(
            hist.axis.IntCategory(
                list(range(k)), name="dim", label="latent dimension", overflow=False
            ),
            lat.axis("z", "latent value"),
        ),
        "latent_pairs": hist.Hist(
            hist.axis.StrCategory(
                [f"{i}-{j}" for i, j in latent_pairs(k)] or ["0-0"],
                name="pair",
                label="latent pair",
                overflow=False,
            ),
            lat_pair.axis("zx", "first latent"),
            lat_pair.axis("zy", "second latent"),
        ),
        "counters": {
            "events": 0,
            "jets": 0,
            "jets_selected": 0,
            "jets_nonfinite": 0,
            "jets_unphysical": 0,
            "model_loads": 0,
            "jets_beyond_event_jets": 0,
            "jets_in_domain": 0,
            "jets_out_of_domain": 0,
            **{f"jets_out_of_domain_{r}": 0 for r in REASONS},
        },
    }


def moments_mean_rms(moments: hist.Hist[Any], variable: str, kind: str) -> tuple[float, float]:
    """Exact mean and RMS of a variable's ``kind`` (relative or absolute) residual from the
    ``residual_moments`` histogram (count, mean, sum of squared deviations); NaN, NaN when
    it holds no value."""
    i = list(moments.axes["variable"]).index(variable)
    view = moments.view()[i, list(moments.axes["kind"]).index(kind)]
    n = float(view["count"])
    if not n:
        return math.nan, math.nan
    mean = float(view["value"])
    return mean, math.sqrt(float(view["_sum_of_deltas_squared"]) / n + mean * mean)


def preferred_residual(
    h_rel: hist.Hist[Any], h_abs: hist.Hist[Any], variable: str
) -> hist.Hist[Any]:
    """The 1D residual of a variable: absolute for eta and phi, relative otherwise."""
    src = h_abs if residual_kind(variable) == "absolute" else h_rel
    return cast("hist.Hist[Any]", src[{"variable": variable}])  # one bin picked: a 1D Hist


def hist_quantile(h: hist.Hist[Any], q: Sequence[float]) -> np.ndarray:
    """Quantiles of a 1D histogram, interpolating linearly inside bins (flow bins included
    in the normalisation, reported at the axis edge)."""
    counts = h.values(flow=True).astype(float)
    edges = h.axes[0].edges
    total = counts.sum()
    if total <= 0:
        return np.full(len(q), np.nan)
    cum = np.cumsum(counts) / total
    # flow layout: [underflow, bins..., overflow]; map to positions on the edges
    lefts = np.concatenate([[edges[0]], edges[:-1], [edges[-1]]])
    rights = np.concatenate([[edges[0]], edges[1:], [edges[-1]]])
    out = []
    for qq in q:
        i = int(np.searchsorted(cum, qq))
        i = min(i, len(counts) - 1)
        prev = cum[i - 1] if i > 0 else 0.0
        frac = (qq - prev) / (cum[i] - prev) if cum[i] > prev else 0.5
        out.append(lefts[i] + frac * (rights[i] - lefts[i]))
    return np.asarray(out)


def sigma68_from_hist(h: hist.Hist[Any]) -> float:
    """Half the 16th-84th percentile width of a 1D histogram."""
    lo, hi = hist_quantile(h, [0.15865525393145708, 0.8413447460685429])
    return float(0.5 * (hi - lo))


def cdf_at(h: hist.Hist[Any], x: np.ndarray | float) -> np.ndarray:
    """Fraction of entries below ``x`` in a 1D histogram (linear inside bins; flow bins
    count as below the first / above the last edge)."""
    counts = h.values(flow=True).astype(float)
    total = counts.sum()
    edges = h.axes[0].edges
    if total <= 0:
        return np.full(np.shape(x), np.nan)
    cum = np.concatenate([[counts[0]], counts[0] + np.cumsum(counts[1:-1])]) / total
    return cast("np.ndarray", np.interp(x, edges, cum, left=0.0, right=1.0))


def abs_residual_stats(h: hist.Hist[Any], cuts: Sequence[float] = (0.01, 0.05)) -> dict[str, float]:
    """From a symmetric residual histogram: fractions with |r| beyond each cut and the
    99th percentile of |r| (interpolated)."""
    out: dict[str, float] = {}
    if h.sum(flow=True) <= 0:
        return {**{f"frac_beyond_{c:g}": float("nan") for c in cuts}, "q99_abs": float("nan")}

    def beyond(a: float) -> float:
        return float(cdf_at(h, -a) + 1.0 - cdf_at(h, a))

    for c in cuts:
        out[f"frac_beyond_{c:g}"] = beyond(c)
    edges = h.axes[0].edges
    grid = np.unique(np.abs(edges))
    vals = np.array([beyond(a) for a in grid])
    # beyond() falls with a; find where it crosses 1%
    idx = int(np.searchsorted(-vals, -0.01))
    if idx == 0:
        out["q99_abs"] = float(grid[0])
    elif idx >= len(grid):
        out["q99_abs"] = float(grid[-1])  # at least the last edge (overflow)
    else:
        a0, a1, v0, v1 = grid[idx - 1], grid[idx], vals[idx - 1], vals[idx]
        out["q99_abs"] = float(a0 + (v0 - 0.01) / (v0 - v1) * (a1 - a0)) if v0 != v1 else float(a1)
    return out
