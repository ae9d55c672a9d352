"""Per-event histograms for judging anomaly scores, filled by the compression processor.

One call per chunk, :func:`anomaly_hists`, turns the jets the model saw (their original
values, per-jet scores and jets per event) into:

- ``baseline``: the trivial event "scores" on the same events as the model's event
  scores (events with at least one selected jet): leading-jet pT, leading-jet mass, HT,
  16 bins per octave (fine enough for background efficiencies of 1e-4);
- ``score_vs_leading``: the event score (max or mean over jets) against the leading
  jet's pT and mass, for the sculpting of the background spectra by a score cut.

Both use the bit-pattern binning of :mod:`hepae_coffea.processing.binning`, computed with
the numba kernel `hepae_coffea.processing.fill_kernels.fill_baselines` in one pass
over the events, so a fill costs a few ns per event. Without a pt variable in the model the histograms stay empty (and without mass
the mass rows do); values <= 0 (massless jets) fall in the underflow bin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import hist
import numpy as np

from ..io.jets import canonical_variable
from ..variables.registry import unit_scale
from .anomaly import Roc, event_scores, roc_from_hists, sculpting_from_counts
from .binning import Log2Binning
from .hists import SCORE_BINNING

__all__ = [
    "BASELINES",
    "BASELINE_BINNING",
    "CURVES",
    "LEADING_BINNING",
    "SCORE_KINDS",
    "anomaly_hists",
    "baseline_label",
    "has_anomaly_hists",
    "make_anomaly_hists",
    "rocs_from_outputs",
    "sculpting_from_output",
]

#: baseline event observables, in the order of the ``observable`` axis
BASELINES: tuple[str, ...] = ("leading_jet_pt", "leading_jet_mass", "ht")
#: the model's event scores
SCORE_KINDS: tuple[str, ...] = ("max", "mean")
#: baselines: 1/16 GeV to 16 TeV, 16 bins per octave (4.4% wide)
BASELINE_BINNING = Log2Binning(-4, 14, 4)
#: leading-jet pT / mass axis of the sculpting histograms: 0.25 GeV to 8 TeV, 4 per octave
LEADING_BINNING = Log2Binning(-2, 13, 2)
_LABELS = {
    "leading_jet_pt": "leading-jet $p_T$ [GeV]",
    "leading_jet_mass": "leading-jet mass [GeV]",
    "ht": "$H_T$ [GeV]",
}


def make_anomaly_hists() -> dict[str, hist.Hist[Any]]:
    """Empty histograms (identical in every chunk, so they add across chunks)."""
    obs = hist.axis.StrCategory(list(BASELINES), name="observable", overflow=False)
    lead = hist.axis.StrCategory(list(BASELINES[:2]), name="observable", overflow=False)
    kind = hist.axis.StrCategory(
        list(SCORE_KINDS), name="kind", label="event score", overflow=False
    )
    return {
        "baseline": hist.Hist(obs, BASELINE_BINNING.axis("value", "value [GeV]")),
        "score_vs_leading": hist.Hist(
            kind,
            lead,
            SCORE_BINNING.axis("score", "event anomaly score"),
            LEADING_BINNING.axis("value", "leading-jet value [GeV]"),
        ),
    }


def anomaly_hists(
    original: np.ndarray,
    score: np.ndarray,
    counts: np.ndarray,
    variables: Sequence[str],
    *,
    event_score_index: Mapping[str, np.ndarray] | None = None,
    units: str = "GeV",
) -> dict[str, hist.Hist[Any]]:
    """Filled anomaly histograms of one chunk.

    Parameters
    ----------
    original : (n_jets, n_variables) array
        The jets the model saw, in physical units (flat over events), energies in
        ``units``; the histograms are in GeV.
    score : (n_jets,) array
        Their anomaly scores.
    counts : (n_events,) array
        Jets per event (``original`` rows belong to events in order).
    variables : sequence of str
        The model's variables (the columns of ``original``).
    event_score_index : mapping, optional
        ``{"max": ..., "mean": ...}``: the ``SCORE_BINNING`` flow-inclusive indices of the
        event scores (`hepae_coffea.processing.anomaly.event_scores`), when the caller
        has computed them already.
    units : {"GeV", "MeV"}
        Energy unit of ``original`` (the model's).
    """
    from .fill_kernels import fill_baselines  # numba: imported when first needed

    out = make_anomaly_hists()
    canon = [canonical_variable(v) for v in variables]
    if "pt" not in canon or len(score) == 0:
        return out
    gev = unit_scale(units)  # GeV per unit of ``original``
    pt = original[:, canon.index("pt")].astype(np.float64) * gev
    mass = original[:, canon.index("mass")].astype(np.float64) * gev if "mass" in canon else None
    counts = np.asarray(counts, dtype=np.int64)
    if (counts < 0).any():
        raise ValueError("negative jet counts")
    if counts.sum() != pt.size:
        raise ValueError(f"{pt.size} jets but the counts add up to {counts.sum()}")
    if not (counts > 0).any():
        return out
    if not np.isfinite(pt).all():
        raise ValueError(f"{int(np.count_nonzero(~np.isfinite(pt)))} jets with non-finite pt")
    if event_score_index is None:
        ev = event_scores(score, counts)
        event_score_index = {kind: SCORE_BINNING.index(ev[kind]) for kind in SCORE_KINDS}
    score_idx = np.stack([np.asarray(event_score_index[k], np.int64) for k in SCORE_KINDS])
    # one pass over the events: leading jet (first of highest pT), HT, and their bins
    fill_baselines(
        pt,
        mass if mass is not None else pt,
        mass is not None,
        counts,
        score_idx,
        BASELINE_BINNING.lo_exp,
        BASELINE_BINNING.hi_exp,
        BASELINE_BINNING.bits,
        LEADING_BINNING.lo_exp,
        LEADING_BINNING.hi_exp,
        LEADING_BINNING.bits,
        out["baseline"].view(flow=True),
        out["score_vs_leading"].view(flow=True),
    )
    return out


def baseline_label(name: str) -> str:
    """Axis label of a baseline observable."""
    return _LABELS.get(name, name)


def has_anomaly_hists(d: Mapping[str, Any]) -> bool:
    """Whether a dataset's processor output carries filled anomaly histograms."""
    a = d.get("anomaly")
    return isinstance(a, dict) and "baseline" in a and a["baseline"].sum(flow=True) > 0


#: display names of the curves compared by :func:`rocs_from_outputs`
CURVES: dict[str, str] = {
    "score_event_max": "event score (max)",
    "score_event_mean": "event score (mean)",
    "score_jet": "jet score (per jet)",
    "leading_jet_pt": "leading-jet $p_T$",
    "leading_jet_mass": "leading-jet mass",
    "ht": "$H_T$",
}


def rocs_from_outputs(outputs: Mapping[str, Any], background: str, signal: str) -> dict[str, Roc]:
    """Binned ROCs of the model's scores and of the baselines, background vs signal.

    Keys as in :data:`CURVES`; the baselines only where both datasets carry the anomaly
    histograms. The jet score's ROC counts jets, the others count events.
    """
    for name in (background, signal):
        if name not in outputs:
            raise KeyError(f"dataset {name!r} not in results; have {sorted(outputs)}")
    b, s = outputs[background], outputs[signal]
    out: dict[str, Roc] = {}
    for key in ("score_event_max", "score_event_mean", "score_jet"):
        if b[key].sum(flow=True) > 0 and s[key].sum(flow=True) > 0:
            out[key] = roc_from_hists(b[key], s[key])
    if has_anomaly_hists(b) and has_anomaly_hists(s):
        for name in BASELINES:
            hb = b["anomaly"]["baseline"][{"observable": name}]
            hs = s["anomaly"]["baseline"][{"observable": name}]
            if hb.sum(flow=True) > 0 and hs.sum(flow=True) > 0:
                out[name] = roc_from_hists(hb, hs)
    return out


def sculpting_from_output(
    d: Mapping[str, Any], kind: str = "max", eps_b: Sequence[float] = (0.1, 0.01)
) -> dict[str, dict[float, dict[str, Any]]]:
    """Binned sculpting of one dataset's leading-jet pT and mass spectra by event-score
    cuts keeping ``eps_b`` of its events: ``{observable: {eps: ...}}`` (see
    :func:`hepae_coffea.processing.anomaly.sculpting_from_counts`), plus the observable's edges under
    ``"edges"`` of each entry."""
    if not has_anomaly_hists(d):
        raise ValueError("no anomaly histograms in this output (a model without pt?)")
    h = d["anomaly"]["score_vs_leading"]
    edges = h.axes["score"].edges
    value_edges = h.axes["value"].edges
    out = {}
    for name in BASELINES[:2]:
        c = h[{"kind": kind, "observable": name}].values(flow=True)[:, 1:-1]
        if c.sum() <= 0:
            continue
        res = sculpting_from_counts(c, edges, eps_b)
        for v in res.values():
            v["edges"] = value_edges
        out[name] = res
    return out
