"""Figures of the anomaly scores in a processor output: score distributions, ROC curves of
the model's scores against trivial baselines, and the sculpting of a background's spectra
by a score cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

# processing.anomaly_hists brings in the jet readers (awkward, uproot): imported where used
from ..processing import anomaly
from .style import (
    DEFAULT_LABEL,
    atlas_label,
    atlas_style,
    colors,
    plain_log_ticks,
    use_file_backend,
)

if TYPE_CHECKING:
    import hist
    from matplotlib.figure import Figure

__all__ = ["figure_roc", "figure_scores", "figure_sculpting", "roc_from_hists"]

_SCORE_TITLES = {
    "score_jet": "jet anomaly score",
    "score_event_max": "event score (max over jets)",
    "score_event_mean": "event score (mean over jets)",
}


def figure_scores(
    outputs: Mapping[str, Any], which: str = "score_jet", label: str = DEFAULT_LABEL
) -> Figure:
    """Normalised anomaly-score distributions of every dataset (log x and y)."""
    use_file_backend()
    import matplotlib.pyplot as plt
    import mplhep as mh

    with atlas_style():
        fig, ax = plt.subplots(figsize=(7.5, 6))
        drawn = False
        lo_edge, hi_edge = np.inf, 0.0
        for (name, d), color in zip(outputs.items(), colors(len(outputs)), strict=True):
            h = d[which]
            total = h.sum(flow=True)
            if total <= 0:
                continue
            mh.histplot(
                h.values() / total,
                h.axes[0].edges,
                ax=ax,
                histtype="step",
                lw=1.8,
                color=color,
                label=f"{name} ({int(total)})",
            )
            drawn = True
            filled = np.nonzero(h.values() > 0)[0]
            if filled.size:
                lo_edge = min(lo_edge, h.axes[0].edges[filled[0]])
                hi_edge = max(hi_edge, h.axes[0].edges[filled[-1] + 1])
        ax.set_xscale("log")
        if drawn and hi_edge > 0:  # the populated range, a decade either side
            ax.set_xlim(lo_edge / 10, hi_edge * 10)
        if drawn:
            ax.set_yscale("log")
        ax.set_xlabel(_SCORE_TITLES.get(which, which))
        ax.set_ylabel("Fraction / bin")
        lo, hi = ax.get_ylim()
        ax.set_ylim(max(lo, 1e-6), hi * 50)
        if drawn:
            ax.legend(loc="upper right", fontsize=11)
        atlas_label(ax, label, loc=0, fontsize=13)
        fig.tight_layout()
    return fig


def roc_from_hists(
    background: hist.Hist[Any], signal: hist.Hist[Any]
) -> tuple[np.ndarray, np.ndarray, float]:
    """(background efficiency, signal efficiency, AUC) for "score above threshold" cuts.

    The binned ROC of :func:`hepae_coffea.processing.anomaly.roc_from_hists` as plain
    arrays; an empty histogram gives the diagonal and a NaN AUC instead of an error.
    """
    if background.sum(flow=True) <= 0 or signal.sum(flow=True) <= 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")
    roc = anomaly.roc_from_hists(background, signal)
    return roc.eps_b, roc.eps_s, roc.auc


_ROC_STYLES = {
    "score_jet": ("C0", ":"),
    "score_event_max": ("C1", "-"),
    "score_event_mean": ("C2", "-"),
    "leading_jet_pt": ("C3", "--"),
    "leading_jet_mass": ("C4", "--"),
    "ht": ("C5", "--"),
}


def figure_roc(
    outputs: Mapping[str, Any],
    background: str,
    signal: str,
    label: str = DEFAULT_LABEL,
    *,
    min_background: int = 10,
) -> Figure:
    """Background rejection 1/eps_B (log axis) against signal efficiency for the model's
    scores and, where the results hold them, the trivial baselines on the same events
    (leading-jet pT and mass, HT; dashed). The hatched band is beyond the statistical
    reach of the background sample (fewer than ``min_background`` events pass)."""
    from ..processing.anomaly_hists import CURVES, rocs_from_outputs

    use_file_backend()
    import matplotlib.pyplot as plt

    rocs = rocs_from_outputs(outputs, background, signal)
    with atlas_style():
        fig, ax = plt.subplots(figsize=(7.5, 6.5))
        n_b = []
        for key, roc in rocs.items():
            finite = roc.eps_b > 0
            color, ls = _ROC_STYLES[key]
            ax.plot(
                roc.eps_s[finite],
                1.0 / roc.eps_b[finite],
                color=color,
                ls=ls,
                lw=2,
                label=f"{CURVES[key].replace('event score', 'event')}, AUC = {roc.auc:.3f}"
                if key != "score_jet"
                else f"jet score, AUC = {roc.auc:.3f}",
            )
            if key != "score_jet":
                n_b.append(roc.n_background)
        x = np.linspace(1e-3, 1, 200)
        ax.plot(x, 1 / x, color="gray", ls=":", lw=1, label="random")
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        top = max(n_b) if n_b else 10.0
        ax.set_ylim(1, top * 30)
        if n_b:  # rejections that fewer than min_background background events measure
            reach = max(n_b) / min_background
            ax.axhspan(reach, top * 30, color="gray", alpha=0.15, hatch="//", lw=0)
            ax.text(
                0.98,
                reach * 1.15,
                f"beyond reach: < {min_background} of {max(n_b):.0f} background events",
                ha="right",
                va="bottom",
                fontsize=9,
                color="dimgray",
            )
        ax.set_xlabel(rf"signal efficiency $\varepsilon_S$ ({signal})")
        ax.set_ylabel(rf"background rejection $1/\varepsilon_B$ ({background})")
        ax.legend(loc="lower left", fontsize=10, frameon=True, framealpha=0.9)
        atlas_label(ax, label, loc=0, fontsize=13)
        fig.tight_layout()
    return fig


_CUT_COLORS = ("tab:orange", "tab:red", "tab:blue", "tab:green")


def figure_sculpting(
    d: Mapping[str, Any],
    dataset: str,
    label: str = DEFAULT_LABEL,
    *,
    kind: str = "max",
    eps_b: Sequence[float] = (0.1, 0.01),
) -> Figure:
    """How an event-score cut reshapes a (background) dataset's leading-jet pT and mass
    spectra: normalised spectra before and after cuts keeping ``eps_b`` of the events
    (top), and their ratio, cut over inclusive (bottom; 1 = no sculpting)."""
    from ..processing.anomaly_hists import baseline_label, sculpting_from_output

    use_file_backend()
    import matplotlib.pyplot as plt
    import mplhep as mh

    sc = sculpting_from_output(d, kind, eps_b)
    names = list(sc)
    with atlas_style():
        fig, axes = plt.subplots(
            2,
            max(len(names), 1),
            figsize=(6.5 * max(len(names), 1), 7),
            gridspec_kw={"height_ratios": [2, 1], "hspace": 0.05},
            sharex="col",
            squeeze=False,
        )
        for col, name in enumerate(names):
            top, bottom = axes[0, col], axes[1, col]
            first = next(iter(sc[name].values()))
            edges = first["edges"]
            inc = first["inclusive"]
            filled = np.flatnonzero(inc > 0)
            lo, hi = edges[filled[0]], edges[filled[-1] + 1]
            mh.histplot(inc / inc.sum(), edges, ax=top, color="black", lw=1.8, label="inclusive")
            for r, color in zip(sc[name].values(), _CUT_COLORS, strict=False):
                if r["kept"] <= 0:
                    continue
                frac = r["kept"] / inc.sum()
                tag = rf"score $\geq$ {r['threshold']:.3g} ({frac:.2%} kept)"
                mh.histplot(r["counts"] / r["kept"], edges, ax=top, color=color, lw=1.8, label=tag)
                centres = np.sqrt(edges[:-1] * edges[1:])
                ok = np.isfinite(r["ratio"])
                bottom.errorbar(
                    centres[ok],
                    r["ratio"][ok],
                    yerr=r["ratio_error"][ok],
                    fmt="o",
                    ms=3,
                    color=color,
                )
            bottom.axhline(1.0, color="black", lw=1, ls="--")
            for ax in (top, bottom):
                ax.set_xscale("log")
                ax.set_xlim(lo, hi)
            plain_log_ticks(bottom.xaxis, lo, hi)
            top.set_yscale("log")
            top.set_ylabel("Fraction / bin")
            top.legend(loc="upper right", fontsize=9, title=f"{dataset}, event score ({kind})")
            bottom.set_yscale("log")
            bottom.set_ylabel("cut / inclusive")
            bottom.set_xlabel(baseline_label(name))
            t_lo, t_hi = top.get_ylim()
            top.set_ylim(max(t_lo, 1e-5), t_hi * 30)
            atlas_label(top, label, loc=0, fontsize=12)
        fig.subplots_adjust(left=0.1, right=0.97, top=0.97, bottom=0.1, wspace=0.25)
    return fig
