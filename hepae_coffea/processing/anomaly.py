"""Judging anomaly scores: ROC curves, background rejection, signal efficiency at fixed
background efficiency, trivial baselines and the sculpting of background spectra.

Conventions
-----------
- A cut keeps events whose score is **at or above** a threshold; ``eps_S`` and ``eps_B``
  are the kept fractions of signal and background, the background rejection is
  ``1 / eps_B``.
- :func:`roc_from_scores` is exact (unbinned): one ROC point per distinct score value,
  ties counted together. :func:`roc_from_counts` / :func:`roc_from_hists` work on
  histograms (the processor's outputs), cutting at bin edges.
- Signal efficiency at a fixed ``eps_B`` interpolates linearly between the two ROC points
  around it (the efficiency of cutting at the upper point and keeping a random fraction
  of the events between the two, so it is achievable, not an extrapolation).
- A working point is *measurable* only when the background sample has at least
  ``min_background`` (default 10) events passing it, i.e. ``N_B * eps_B >= 10``. Below
  that, :class:`WorkingPoint` says so, gives the number of background events and, instead
  of a number that would be mostly noise, a lower limit: the signal efficiency of the cut
  that keeps no background event at all, where the rejection is above ``N_B / 3.0`` at
  95% confidence (zero events observed: ``eps_B < -ln(0.05) / N_B``).
- Baselines (:func:`event_baselines`) are computed from the same jets, on the same events,
  as the model's event scores (:func:`event_scores`): events with at least one jet.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import hist

__all__ = [
    "DEFAULT_EPS_B",
    "Roc",
    "WorkingPoint",
    "efficiency_at",
    "event_baselines",
    "event_scores",
    "roc_from_counts",
    "roc_from_hists",
    "roc_from_scores",
    "sculpting",
    "sculpting_from_counts",
    "summary_table",
    "threshold_at",
]

#: the background efficiencies at which anomaly-detection benchmarks quote eps_S
DEFAULT_EPS_B: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
#: -ln(0.05): upper limit (95% CL) on the expected count when none is observed
ZERO_COUNT_UL95 = -math.log(0.05)


@dataclass(frozen=True)
class Roc:
    """A ROC curve: points ordered by loosening cut, from (0, 0) to (1, 1).

    ``thresholds[i]`` is the cut (keep ``score >= thresholds[i]``) of point ``i``; the
    first point keeps nothing (``+inf``). ``n_background``/``n_signal`` are the effective
    numbers of events ((sum w)^2 / sum w^2; the plain counts without weights).
    """

    eps_b: np.ndarray
    eps_s: np.ndarray
    thresholds: np.ndarray
    n_background: float
    n_signal: float

    @property
    def auc(self) -> float:
        """Area under eps_S(eps_B): the probability that a signal event scores above a
        background one (ties count one half)."""
        return float(np.trapezoid(self.eps_s, self.eps_b))

    @property
    def rejection(self) -> np.ndarray:
        """1 / eps_B (``inf`` where eps_B = 0)."""
        with np.errstate(divide="ignore"):
            return np.where(self.eps_b > 0, 1.0 / np.where(self.eps_b > 0, self.eps_b, 1), np.inf)


def _n_eff(w: np.ndarray) -> float:
    s2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else 0.0


def _check_scores(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError(f"{name}: no events")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise ValueError(f"{name}: {bad} of {x.size} scores are not finite")
    return x


def _check_weights(w: np.ndarray | None, n: int, name: str) -> np.ndarray:
    if w is None:
        return np.ones(n)
    w = np.asarray(w, dtype=np.float64).ravel()
    if w.shape != (n,):
        raise ValueError(f"{name}: {w.size} weights for {n} scores")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"{name}: weights must be finite, non-negative, not all zero")
    return w


def roc_from_scores(
    background: np.ndarray,
    signal: np.ndarray,
    *,
    background_weights: np.ndarray | None = None,
    signal_weights: np.ndarray | None = None,
) -> Roc:
    """Exact ROC of "score >= t" cuts, one point per distinct score (ties together).

    Raises ``ValueError`` for empty inputs, non-finite scores or bad weights.
    """
    b = _check_scores(background, "background")
    s = _check_scores(signal, "signal")
    wb = _check_weights(background_weights, b.size, "background")
    ws = _check_weights(signal_weights, s.size, "signal")
    scores = np.concatenate([b, s])
    w_b = np.concatenate([wb, np.zeros(s.size)])
    w_s = np.concatenate([np.zeros(b.size), ws])
    order = np.argsort(-scores, kind="stable")
    scores, w_b, w_s = scores[order], w_b[order], w_s[order]
    last = np.flatnonzero(np.diff(scores) != 0)  # last index of each tie group
    last = np.concatenate([last, [scores.size - 1]])
    eb = np.cumsum(w_b)[last] / wb.sum()
    es = np.cumsum(w_s)[last] / ws.sum()
    eb[-1] = es[-1] = 1.0  # exactly, despite rounding of the sums
    return Roc(
        np.concatenate([[0.0], eb]),
        np.concatenate([[0.0], es]),
        np.concatenate([[np.inf], scores[last]]),
        _n_eff(wb),
        _n_eff(ws),
    )


def roc_from_counts(
    background: np.ndarray,
    signal: np.ndarray,
    edges: np.ndarray,
    *,
    background_sumw2: np.ndarray | None = None,
    signal_sumw2: np.ndarray | None = None,
) -> Roc:
    """Binned ROC from flow-inclusive counts (``[underflow, bins..., overflow]``).

    The cut of point ``i`` keeps the top ``i`` flow-inclusive bins: thresholds are the
    lower edges (``-inf`` for the underflow, the last edge for the overflow). Bins empty
    in both samples give no point. ``*_sumw2`` (sums of squared weights) set the effective
    numbers of events; without them the counts are taken as unweighted.
    """
    b = np.asarray(background, dtype=np.float64)
    s = np.asarray(signal, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if b.shape != s.shape or b.ndim != 1 or b.size != edges.size + 1:
        raise ValueError(
            f"flow-inclusive counts of {edges.size - 1} bins need {edges.size + 1} entries; "
            f"got {b.shape} and {s.shape}"
        )
    if b.sum() <= 0 or s.sum() <= 0:
        raise ValueError("binned ROC: the background or the signal histogram is empty")
    lower = np.concatenate([[-np.inf], edges])  # lower edge of each flow-inclusive bin
    filled = (b + s) > 0
    rb, rs, lo = b[filled][::-1], s[filled][::-1], lower[filled][::-1]
    eb = np.cumsum(rb) / b.sum()
    es = np.cumsum(rs) / s.sum()
    eb[-1] = es[-1] = 1.0
    sb2 = b.sum() if background_sumw2 is None else float(np.sum(background_sumw2))
    ss2 = s.sum() if signal_sumw2 is None else float(np.sum(signal_sumw2))
    return Roc(
        np.concatenate([[0.0], eb]),
        np.concatenate([[0.0], es]),
        np.concatenate([[np.inf], lo]),
        b.sum() ** 2 / sb2 if sb2 > 0 else 0.0,
        s.sum() ** 2 / ss2 if ss2 > 0 else 0.0,
    )


def roc_from_hists(background: hist.Hist[Any], signal: hist.Hist[Any]) -> Roc:
    """Binned ROC of two 1D ``hist.Hist`` with the same axis (Double or Weight storage)."""
    eb, es = background.axes[0].edges, signal.axes[0].edges
    if len(eb) != len(es) or not np.array_equal(eb, es):
        raise ValueError("binned ROC: the two histograms have different axes")

    def sumw2(h: hist.Hist[Any]) -> np.ndarray | None:
        v = h.variances(flow=True)
        return None if v is None or h.storage_type.__name__ == "Double" else v

    return roc_from_counts(
        background.values(flow=True),
        signal.values(flow=True),
        eb,
        background_sumw2=sumw2(background),
        signal_sumw2=sumw2(signal),
    )


@dataclass(frozen=True)
class WorkingPoint:
    """Signal efficiency at a fixed background efficiency, or why it is not measurable.

    Attributes
    ----------
    eps_b : float
        The requested background efficiency.
    eps_s : float
        Signal efficiency there (NaN when not measurable).
    eps_s_error : float
        Binomial standard error of ``eps_s`` from the signal sample (NaN when not measurable).
    measurable : bool
        Whether at least ``min_background`` background events pass the cut.
    n_background : float
        (Effective) number of background events in the sample.
    n_background_pass : float
        Background events expected to pass the cut, ``n_background * eps_b``.
    eps_s_no_background : float
        Signal efficiency of the loosest cut that keeps no background event.
    rejection_lower_limit : float
        ``n_background / 3.0``: at ``eps_s_no_background`` the rejection is above this at
        95% confidence (no background event observed).
    """

    eps_b: float
    eps_s: float
    eps_s_error: float
    measurable: bool
    n_background: float
    n_background_pass: float
    eps_s_no_background: float
    rejection_lower_limit: float
    min_background: int

    def describe(self) -> str:
        """One line for tables: the number, or the reach statement with the lower limit."""
        if self.measurable:
            return f"{self.eps_s:.3g} ± {self.eps_s_error:.2g}"
        return (
            f"not measurable ({self.n_background:.0f} background events, "
            f"{self.n_background_pass:.2g} would pass; needs >= {self.min_background}); "
            f"eps_S = {self.eps_s_no_background:.3g} with no background passing, "
            f"rejection > {self.rejection_lower_limit:.3g} (95% CL)"
        )

    def cell(self) -> str:
        """A short table cell: the number, or ``n/m (> eps_S at 1/eps_B > R)``."""
        if self.measurable:
            return f"{self.eps_s:.3g}"
        return f"n/m (eps_S {self.eps_s_no_background:.2g} at 1/eps_B > {self.rejection_lower_limit:.3g})"

    def as_dict(self) -> dict[str, float | bool | int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def efficiency_at(
    roc: Roc, eps_b: Sequence[float] = DEFAULT_EPS_B, *, min_background: int = 10
) -> list[WorkingPoint]:
    """Signal efficiency at each requested background efficiency (see the module notes)."""
    out = []
    zero = roc.eps_b == 0
    es_zero = float(roc.eps_s[zero].max()) if zero.any() else 0.0
    for target in eps_b:
        if not 0 < target <= 1:
            raise ValueError(f"background efficiency {target} is not in (0, 1]")
        n_pass = roc.n_background * target
        ok = n_pass >= min_background
        eps_s = err = math.nan
        if ok:
            i = int(np.searchsorted(roc.eps_b, target, side="right")) - 1
            if i + 1 < roc.eps_b.size and roc.eps_b[i] < target:
                x0, x1 = roc.eps_b[i], roc.eps_b[i + 1]
                y0, y1 = roc.eps_s[i], roc.eps_s[i + 1]
                eps_s = float(y0 + (target - x0) / (x1 - x0) * (y1 - y0))
            else:
                eps_s = float(roc.eps_s[i])
            err = math.sqrt(max(eps_s * (1 - eps_s), 0.0) / roc.n_signal) if roc.n_signal else 0.0
        out.append(
            WorkingPoint(
                float(target),
                eps_s,
                err,
                bool(ok),
                roc.n_background,
                n_pass,
                es_zero,
                roc.n_background / ZERO_COUNT_UL95 if roc.n_background else 0.0,
                min_background,
            )
        )
    return out


def _event_index(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts = np.asarray(counts, dtype=np.int64)
    if (counts < 0).any():
        raise ValueError("negative jet counts")
    has = counts > 0
    starts = (np.cumsum(counts) - counts)[has]
    return has, starts


def event_scores(score: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Event scores from per-jet scores: ``max`` and ``mean`` over each event's jets.

    ``score`` is flat over the jets, ``counts`` the jets per event; events without jets
    are left out (as in :func:`event_baselines`).
    """
    score = np.asarray(score, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() != score.size:
        raise ValueError(f"{score.size} jet scores but the counts add up to {counts.sum()}")
    has, starts = _event_index(counts)
    if not has.any():
        return {"max": np.zeros(0), "mean": np.zeros(0)}
    return {
        "max": np.maximum.reduceat(score, starts),
        "mean": np.add.reduceat(score, starts) / counts[has],
    }


def event_baselines(
    pt: np.ndarray, mass: np.ndarray | None, counts: np.ndarray
) -> dict[str, np.ndarray]:
    """Trivial event "scores" from the same jets: leading-jet pT, leading-jet mass, HT.

    The leading jet is the jet of highest pT in the event (whatever the input order; the
    first of equal-pT jets); HT is the scalar sum of the jets' pT. Non-finite pT raises
    ``ValueError``. Events without jets are left out. Without
    ``mass``, ``leading_jet_mass`` is omitted.
    """
    pt = np.asarray(pt, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() != pt.size:
        raise ValueError(f"{pt.size} jets but the counts add up to {counts.sum()}")
    has, starts = _event_index(counts)
    out: dict[str, np.ndarray] = {}
    if not has.any():
        out = {"leading_jet_pt": np.zeros(0), "ht": np.zeros(0)}
        if mass is not None:
            out["leading_jet_mass"] = np.zeros(0)
        return out
    if not np.isfinite(pt).all():
        raise ValueError(f"{int(np.count_nonzero(~np.isfinite(pt)))} jets with non-finite pt")
    # O(n): the first jet of each event whose pt equals the event's maximum
    max_pt = np.maximum.reduceat(pt, starts)
    cand = np.flatnonzero(pt == np.repeat(max_pt, counts[has]))
    event = np.repeat(np.arange(int(has.sum())), counts[has])[cand]
    lead = cand[np.concatenate([[True], event[1:] != event[:-1]])]
    out["leading_jet_pt"] = pt[lead]
    if mass is not None:
        mass = np.asarray(mass, dtype=np.float64)
        if mass.shape != pt.shape:
            raise ValueError(f"{mass.size} masses for {pt.size} jets")
        out["leading_jet_mass"] = mass[lead]
    out["ht"] = np.add.reduceat(pt, starts)
    return out


def threshold_at(background: np.ndarray, eps_b: float) -> float:
    """The loosest score cut (keep ``score >= t``) that keeps at most a fraction ``eps_b``
    of the background: the ``floor(eps_b * N)``-th highest score, or the next distinct
    score above it when ties would keep more; ``inf`` when no event can be kept."""
    b = np.sort(_check_scores(background, "background"))[::-1]
    k = math.floor(eps_b * b.size + 1e-9)
    if k == 0:
        return math.inf
    t = b[k - 1]
    if np.count_nonzero(b >= t) > k:
        above = b[b > t]
        return float(above.min()) if above.size else math.inf
    return float(t)


def sculpting(
    score: np.ndarray,
    observable: np.ndarray,
    edges: np.ndarray,
    eps_b: Sequence[float] = (0.1, 0.01),
) -> dict[float, dict[str, np.ndarray | float]]:
    """How a score cut reshapes a background spectrum.

    For each background efficiency, the cut ``score >= threshold_at(score, eps)`` is
    applied and the observable's spectrum after the cut, normalised to unit area, is
    divided by the inclusive one (also unit area): 1 everywhere means no sculpting.

    Returns ``{eps: {"threshold", "kept", "counts", "inclusive", "ratio", "ratio_error"}}``
    (counts over ``edges``, no flow bins; ratio NaN where the inclusive bin is empty).
    """
    score = np.asarray(score, dtype=np.float64)
    observable = np.asarray(observable, dtype=np.float64)
    if score.shape != observable.shape:
        raise ValueError(f"{score.size} scores for {observable.size} observable values")
    inclusive, _ = np.histogram(observable, edges)
    out = {}
    for eps in eps_b:
        t = threshold_at(score, eps)
        cut, _ = np.histogram(observable[score >= t], edges)
        out[float(eps)] = {"threshold": t, **_shape_ratio(cut, inclusive)}
    return out


def _shape_ratio(cut: np.ndarray, inclusive: np.ndarray) -> dict[str, np.ndarray | float]:
    cut = np.asarray(cut, dtype=np.float64)
    inclusive = np.asarray(inclusive, dtype=np.float64)
    n_cut, n_inc = cut.sum(), inclusive.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(
            inclusive > 0, (cut / max(n_cut, 1e-300)) / (inclusive / max(n_inc, 1e-300)), np.nan
        )
        # the cut events are a subset: binomial error of the kept fraction per bin
        frac = np.where(inclusive > 0, cut / inclusive, np.nan)
        err = np.sqrt(frac * (1 - frac) / inclusive) * n_inc / max(n_cut, 1e-300)
    if n_cut == 0:
        ratio = np.full_like(ratio, np.nan)
        err = np.full_like(err, np.nan)
    return {
        "kept": float(n_cut),
        "counts": cut,
        "inclusive": inclusive,
        "ratio": ratio,
        "ratio_error": err,
    }


def sculpting_from_counts(
    counts2d: np.ndarray, score_edges: np.ndarray, eps_b: Sequence[float] = (0.1, 0.01)
) -> dict[float, dict[str, np.ndarray | float]]:
    """Binned :func:`sculpting` from a 2D histogram ``(score bins, observable bins)``
    (flow-inclusive on the score axis, ``len(score_edges) + 1`` rows).

    The cut is at the lowest score bin edge that keeps at most ``eps`` of the events
    (so the kept fraction, reported as ``kept / inclusive total``, may be below ``eps``).
    """
    c = np.asarray(counts2d, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != len(score_edges) + 1:
        raise ValueError(
            f"2D counts need {len(score_edges) + 1} flow-inclusive score rows; got {c.shape}"
        )
    inclusive = c.sum(axis=0)
    total = inclusive.sum()
    above = np.cumsum(c.sum(axis=1)[::-1])[::-1]  # events with score in row >= i
    lower = np.concatenate([[-np.inf], np.asarray(score_edges, dtype=np.float64)])
    out = {}
    for eps in eps_b:
        ok = np.flatnonzero(above <= eps * total + 1e-9)
        i = int(ok[0]) if ok.size else c.shape[0]
        cut = c[i:].sum(axis=0)
        t = float(lower[i]) if i < c.shape[0] else math.inf
        out[float(eps)] = {"threshold": t, **_shape_ratio(cut, inclusive)}
    return out


def summary_table(
    rocs: Mapping[str, Roc], eps_b: Sequence[float] = DEFAULT_EPS_B, *, min_background: int = 10
) -> dict[str, dict[str, object]]:
    """``{name: {"auc", "n_background", "n_signal", "working_points": [...]}}`` for JSON."""
    return {
        name: {
            "auc": roc.auc,
            "n_background": roc.n_background,
            "n_signal": roc.n_signal,
            "working_points": [
                wp.as_dict() for wp in efficiency_at(roc, eps_b, min_background=min_background)
            ],
        }
        for name, roc in rocs.items()
    }
