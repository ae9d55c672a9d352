"""ATLAS-style figures (mplhep) of processor outputs, training runs and the latent space.

Every ``figure_*`` function returns a matplotlib Figure (so tests can inspect what it
holds); :func:`plot_results` draws them all for a results file and saves PNG and PDF.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_output
from ..io.guards import safe_name
from ..processing.hists import (
    RESIDUAL_RESOLUTION,
    cdf_at,
    hist_quantile,
    moments_mean_rms,
    sigma68_from_hist,
)
from ..processing.metrics import is_count, residual_kind, sigma68
from ..variables.registry import nonnegative_energy, tex_label, unit_label

__all__ = [
    "atlas_label",
    "figure_distribution",
    "figure_latent_pairs",
    "figure_latent_scan",
    "figure_latents",
    "figure_loss_curves",
    "figure_previews",
    "figure_residual",
    "figure_residual_vs_pt",
    "figure_residuals_combined",
    "figure_roc",
    "figure_scores",
    "figure_sculpting",
    "plot_lr_find",
    "plot_residuals",
    "plot_results",
    "plot_training",
    "residual_axis_label",
    "roc_from_hists",
    "save_figure",
]

log = logging.getLogger(__name__)


def _tex(variable: str) -> str:
    return tex_label(variable)


def _var_label(variable: str) -> str:
    unit = unit_label(variable)
    return f"${_tex(variable)}$" + (f" [{unit}]" if unit else "")


def residual_axis_label(variable: str, kind: str | None = None) -> str:
    """Axis label of a variable's residual, e.g. ``(m_rec - m_orig)/m_orig``."""
    t = _tex(variable)
    if (kind or residual_kind(variable)) == "absolute":
        unit = unit_label(variable)
        return rf"${t}^{{rec}} - {t}^{{orig}}$" + (f" [{unit}]" if unit else "")
    return rf"$({t}^{{rec}} - {t}^{{orig}}) / {t}^{{orig}}$"


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in (
        "agg",
        "pdf",
        "svg",
        "module://matplotlib_inline.backend_inline",
    ):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as mh

    return plt, mh


def atlas_label(ax, text: str = "Simulation Internal", com: float = 13, lumi=None, **kw) -> None:
    """Place the ATLAS label; ``data=False`` prints "Simulation" before the rest of ``text``."""
    _, mh = _pyplot()
    label = text.removeprefix("Simulation").strip() if text.startswith("Simulation") else text
    mh.atlas.label(label, data=False, com=com, lumi=lumi, ax=ax, **kw)


def _style():
    plt, mh = _pyplot()
    return plt.style.context(mh.style.ATLAS)


def save_figure(
    fig, path: str | os.PathLike, formats: Sequence[str] = ("png", "pdf")
) -> list[Path]:
    """Save ``fig`` as ``path`` with each suffix in ``formats``, then close it."""
    plt, _ = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        p = path.with_suffix("." + fmt)
        with atomic_output(p) as tmp:
            fig.savefig(tmp, dpi=90, format=fmt)
        out.append(p)
    plt.close(fig)
    return out


def _stats_text(mean: float, rms: float, s68: float) -> str:
    width = f"<= {RESIDUAL_RESOLUTION:.0e}" if 0 <= s68 <= RESIDUAL_RESOLUTION else f"{s68:.2e}"
    return f"mean  {mean:+.2e}\nRMS   {rms:.2e}\n$\\sigma_{{68}}$   {width}"


def _rebin_uniform(h, lo: float, hi: float, nbins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of a finely binned 1D histogram on uniform display bins (from its CDF)."""
    edges = np.linspace(lo, hi, nbins + 1)
    total = h.sum(flow=True)
    counts = np.diff(cdf_at(h, edges)) * total
    return counts, edges


def _colors(n: int) -> list[str]:
    plt, _ = _pyplot()
    cycle = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    return [cycle[i % len(cycle)] for i in range(n)]


# ---------------------------------------------------------------------------------------
# residuals


def _draw_residual(ax, outputs: Mapping[str, Any], variable: str, kind: str, label: str) -> None:
    _, mh = _pyplot()
    names = list(outputs)
    colors = _colors(len(names))
    widths = [sigma68_from_hist(_residual_hist(d, variable, kind)) for d in outputs.values()]
    finite = [w for w in widths if np.isfinite(w) and w > 0]
    half = 6 * float(np.median(finite)) if finite else 1.0
    integer = kind == "absolute" and is_count(variable)
    if integer:  # whole-number differences: one bin per integer, -3 .. 3
        half = 3.5
    ymax = 1.0
    texts = []
    for name, color, d, s68 in zip(names, colors, outputs.values(), widths, strict=True):
        h = _residual_hist(d, variable, kind)
        counts, edges = _rebin_uniform(h, -half, half, 7 if integer else 60)
        total = h.sum(flow=True)
        counts[0] += total * float(cdf_at(h, -half))  # tails shown in the edge bins
        counts[-1] += total * (1.0 - float(cdf_at(h, half)))
        if h.sum(flow=True) > 0:
            mh.histplot(
                counts, edges, ax=ax, histtype="step", color=color, lw=1.8, label=name, flow=None
            )
            ymax = max(ymax, float(counts.max()))
        mean, rms = moments_mean_rms(d["residual_moments"], variable, kind)
        texts.append((name, color, mean, rms, s68))
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(-half, half)
    ax.set_yscale("log")
    # headroom for the label and one stats box per dataset (up to four)
    ax.set_ylim(0.5, ymax * 10.0 ** (2.5 + min(len(texts), 4)))
    if integer:
        ax.set_xticks(np.arange(-3, 4))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(5, symmetric=True))
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax.set_xlabel(residual_axis_label(variable, kind), fontsize=15)
    ax.set_ylabel("Jets / bin", fontsize=15)
    for k, (name, color, mean, rms, s68) in enumerate(texts[:4]):
        prefix = f"{name}\n" if len(texts) > 1 else ""
        ax.text(
            0.97,
            0.80 - 0.2 * k,
            prefix + _stats_text(mean, rms, s68),
            color=color,
            transform=ax.transAxes,
            fontsize=10,
            ha="right",
            va="top",
            family="monospace",
        )
    atlas_label(ax, label, loc=4, fontsize=13)
    if len(names) > 1:
        ax.legend(loc="upper left", fontsize=10, bbox_to_anchor=(0.0, 0.84))
    ax.text(0.03, 0.03, "tails in edge bins", transform=ax.transAxes, fontsize=8, color="gray")


def _residual_hist(d: Mapping[str, Any], variable: str, kind: str):
    src = d["residual_abs"] if kind == "absolute" else d["residual"]
    return src[{"variable": variable}]


def figure_residual(
    outputs: Mapping[str, Any],
    variable: str,
    *,
    kind: str | None = None,
    label: str = "Simulation Internal",
):
    """Residual of one variable, every dataset overlaid, with mean / RMS / sigma68."""
    plt, _ = _pyplot()
    with _style():
        fig, ax = plt.subplots(figsize=(7.5, 6))
        _draw_residual(ax, outputs, variable, kind or residual_kind(variable), label)
        fig.tight_layout()
    return fig


def figure_residuals_combined(outputs: Mapping[str, Any], label: str = "Simulation Internal"):
    """All variables' residuals (relative for pt/mass, absolute for eta/phi), one panel each."""
    plt, _ = _pyplot()
    variables = _variables(outputs)
    n = len(variables)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    with _style():
        fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 5.6 * rows), squeeze=False)
        for ax, v in zip(axes.flat, variables, strict=False):
            _draw_residual(ax, outputs, v, residual_kind(v), label)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        fig.tight_layout()
    return fig


def _variables(outputs: Mapping[str, Any]) -> list[str]:
    first = next(iter(outputs.values()))
    return list(first["residual"].axes["variable"])


# ---------------------------------------------------------------------------------------
# distributions


def figure_distribution(
    d: Mapping[str, Any], variable: str, dataset: str, label: str = "Simulation Internal"
):
    """Original vs reconstructed distribution of one variable with a ratio panel."""
    plt, mh = _pyplot()
    h = d["distribution"][variable]
    orig = h[{"version": "original"}]
    rec = h[{"version": "reconstructed"}]
    edges = orig.axes[0].edges
    o, r = orig.values(), rec.values()
    with _style():
        fig, (ax, rax) = plt.subplots(
            2,
            1,
            figsize=(7.5, 7),
            sharex=True,
            gridspec_kw={"height_ratios": [3, 1], "hspace": 0.06},
        )
        mh.histplot(o, edges, ax=ax, histtype="fill", alpha=0.35, color="C0", label="original")
        mh.histplot(r, edges, ax=ax, histtype="step", color="C1", lw=2, label="reconstructed")
        ax.set_ylabel("Jets / bin")
        ax.set_yscale("log")
        ax.set_ylim(0.5, max(o.max() if o.size else 1, 1) * 300)
        ax.legend(loc="upper right", fontsize=12, title=dataset, title_fontsize=12)
        atlas_label(ax, label, loc=0, fontsize=13)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(o > 0, r / o, np.nan)
            err = np.where(o > 0, np.sqrt(r) / o, np.nan)
        centers = 0.5 * (edges[1:] + edges[:-1])
        rax.errorbar(centers, ratio, yerr=err, fmt="o", ms=3, color="C1")
        rax.axhline(1.0, color="gray", lw=1, ls="--")
        rax.set_ylim(0.8, 1.2)
        rax.set_ylabel("rec / orig")
        rax.set_xlabel(_var_label(variable))
        if nonnegative_energy(variable):
            ax.set_xscale("log")
        filled = np.nonzero((o + r) > 0)[0]
        if filled.size:  # show the populated range
            ax.set_xlim(edges[max(filled[0] - 1, 0)], edges[min(filled[-1] + 2, len(edges) - 1)])
        fig.subplots_adjust(left=0.14, right=0.96, top=0.95, bottom=0.11)
    return fig


# ---------------------------------------------------------------------------------------
# residual versus pt


def _profile(h2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sigma68 of the residual in each pt bin of a (pt, residual) histogram."""
    pt_edges = h2.axes["pt"].edges
    s68 = []
    for i in range(len(pt_edges) - 1):
        sl = h2[i, :]
        s68.append(sigma68_from_hist(sl) if sl.sum(flow=True) >= 20 else np.nan)
    centers = np.sqrt(pt_edges[1:] * pt_edges[:-1])
    return centers, np.asarray(s68), pt_edges


def _ticker():
    import matplotlib.ticker

    return matplotlib.ticker


def _plain_log_ticks(axis, lo: float, hi: float) -> None:
    """Major ticks at 1-2-5 values inside (lo, hi) with plain labels, no minor labels
    (matplotlib labels minor ticks of a log axis spanning under two decades, which overlap)."""
    ticker = _ticker()
    cands = np.array([m * 10.0**e for e in range(-3, 6) for m in (1, 2, 5)])
    ticks = cands[(cands > lo) & (cands < hi)]
    if ticks.size >= 2:
        axis.set_major_locator(ticker.FixedLocator(ticks))
        axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        axis.set_minor_formatter(ticker.NullFormatter())


def figure_residual_vs_pt(
    d: Mapping[str, Any], variable: str, dataset: str, label: str = "Simulation Internal"
):
    """2D residual vs original pt (symmetric-log y) and the sigma68 profile in pt bins."""
    plt, mh = _pyplot()
    h2 = d["residual_vs_pt"][{"variable": variable}]
    centers, s68, _ = _profile(h2)
    finite = s68[np.isfinite(s68)]
    with _style():
        fig, (ax, pax) = plt.subplots(1, 2, figsize=(14, 6))
        vals = h2.values()
        art = mh.hist2dplot(
            np.where(vals > 0, vals, np.nan),
            h2.axes["pt"].edges,
            h2.axes["residual"].edges,
            ax=ax,
            cbar=True,
            flow=None,
        )
        art.cbar.set_label("jets / bin", fontsize=13)
        ax.set_xscale("log")
        filled = np.flatnonzero(vals.sum(axis=1) > 0)
        if filled.size:  # show the populated pt range, not the axis' 16 GeV - 8 TeV
            edges = h2.axes["pt"].edges
            xlim = (edges[filled[0]] / 1.2, edges[filled[-1] + 1] * 1.2)
            ax.set_xlim(*xlim)
        lin = float(np.median(finite)) if finite.size else 1e-3
        lin = max(lin, 1e-6)
        ax.set_yscale("symlog", linthresh=lin)
        top = 20 * (float(finite.max()) if finite.size else 1.0)
        ax.set_ylim(-top, top)
        # decades outside the linear region only, so labels near 0 do not overlap
        dec = 10.0 ** np.arange(np.ceil(np.log10(lin)), np.floor(np.log10(top)) + 1)
        ax.set_yticks(np.concatenate([-dec[::-1], [0.0], dec]))
        ax.yaxis.set_minor_locator(_ticker().NullLocator())
        ax.set_xlabel("original jet $p_{T}$ [GeV]")
        ax.set_ylabel(residual_axis_label(variable), fontsize=13)
        atlas_label(ax, label, loc=0, fontsize=12)
        pax.plot(centers, s68, "o-", color="C0", ms=4, label=dataset)
        pax.set_xscale("log")
        pax.set_yscale("log")
        pax.set_xlabel("original jet $p_{T}$ [GeV]")
        pax.set_ylabel(r"$\sigma_{68}$ of " + residual_axis_label(variable), fontsize=13)
        pax.legend(loc="upper right", fontsize=11)
        atlas_label(pax, label, loc=0, fontsize=12)
        if filled.size:
            pax.set_xlim(*ax.get_xlim())
            for a in (ax, pax):
                _plain_log_ticks(a.xaxis, *ax.get_xlim())
        fig.tight_layout()
        fig.subplots_adjust(wspace=0.45)  # keep the profile's y label clear of the colour bar
    return fig


# ---------------------------------------------------------------------------------------
# anomaly scores


def figure_scores(
    outputs: Mapping[str, Any], which: str = "score_jet", label: str = "Simulation Internal"
):
    """Normalised anomaly-score distributions of every dataset (log x and y)."""
    plt, mh = _pyplot()
    titles = {
        "score_jet": "jet anomaly score",
        "score_event_max": "event score (max over jets)",
        "score_event_mean": "event score (mean over jets)",
    }
    with _style():
        fig, ax = plt.subplots(figsize=(7.5, 6))
        drawn = False
        lo_edge, hi_edge = np.inf, 0.0
        for (name, d), color in zip(outputs.items(), _colors(len(outputs)), strict=True):
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
        ax.set_xlabel(titles.get(which, which))
        ax.set_ylabel("Fraction / bin")
        lo, hi = ax.get_ylim()
        ax.set_ylim(max(lo, 1e-6), hi * 50)
        if drawn:
            ax.legend(loc="upper right", fontsize=11)
        atlas_label(ax, label, loc=0, fontsize=13)
        fig.tight_layout()
    return fig


def roc_from_hists(background, signal) -> tuple[np.ndarray, np.ndarray, float]:
    """(background efficiency, signal efficiency, AUC) for "score above threshold" cuts."""
    b = background.values(flow=True).astype(float)
    s = signal.values(flow=True).astype(float)
    if b.sum() <= 0 or s.sum() <= 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")
    # efficiency of "score >= lower edge of bin i", scanning thresholds from high to low
    eb = np.concatenate([[0.0], np.cumsum(b[::-1]) / b.sum()])
    es = np.concatenate([[0.0], np.cumsum(s[::-1]) / s.sum()])
    auc = float(np.trapezoid(es, eb))
    return eb, es, auc


def figure_roc(
    outputs: Mapping[str, Any],
    background: str,
    signal: str,
    label: str = "Simulation Internal",
    *,
    min_background: int = 10,
):
    """Background rejection 1/eps_B (log axis) against signal efficiency for the model's
    scores and, where the results hold them, the trivial baselines on the same events
    (leading-jet pT and mass, HT; dashed). The hatched band is beyond the statistical
    reach of the background sample (fewer than ``min_background`` events pass)."""
    from ..processing.anomaly_hists import CURVES, rocs_from_outputs

    plt, _ = _pyplot()
    rocs = rocs_from_outputs(outputs, background, signal)
    styles = {
        "score_jet": ("C0", ":"),
        "score_event_max": ("C1", "-"),
        "score_event_mean": ("C2", "-"),
        "leading_jet_pt": ("C3", "--"),
        "leading_jet_mass": ("C4", "--"),
        "ht": ("C5", "--"),
    }
    with _style():
        fig, ax = plt.subplots(figsize=(7.5, 6.5))
        n_b = []
        for key, roc in rocs.items():
            finite = roc.eps_b > 0
            color, ls = styles[key]
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
    label: str = "Simulation Internal",
    *,
    kind: str = "max",
    eps_b: Sequence[float] = (0.1, 0.01),
):
    """How an event-score cut reshapes a (background) dataset's leading-jet pT and mass
    spectra: normalised spectra before and after cuts keeping ``eps_b`` of the events
    (top), and their ratio, cut over inclusive (bottom; 1 = no sculpting)."""
    from ..processing.anomaly_hists import baseline_label, sculpting_from_output

    plt, mh = _pyplot()
    sc = sculpting_from_output(d, kind, eps_b)
    names = list(sc)
    with _style():
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
            _plain_log_ticks(bottom.xaxis, lo, hi)
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


# ---------------------------------------------------------------------------------------
# latent space


def figure_latents(outputs: Mapping[str, Any], label: str = "Simulation Internal"):
    """1D latent distributions per dimension, every dataset overlaid (normalised)."""
    plt, mh = _pyplot()
    first = next(iter(outputs.values()))["latent"]
    dims = list(first.axes["dim"])
    cols = min(len(dims), 4)
    rows = math.ceil(len(dims) / cols)
    with _style():
        fig, grid = plt.subplots(rows, cols, figsize=(6 * cols, 5.4 * rows), squeeze=False)
        for ax in list(grid.flat)[len(dims) :]:
            ax.set_visible(False)
        axes = [list(grid.flat)[: len(dims)]]
        for ax, k in zip(axes[0], dims, strict=True):
            for (name, d), color in zip(outputs.items(), _colors(len(outputs)), strict=True):
                h = d["latent"][{"dim": k}]
                tot = h.sum()
                if tot > 0:
                    mh.histplot(
                        h.values() / tot,
                        h.axes[0].edges,
                        ax=ax,
                        histtype="step",
                        color=color,
                        lw=1.6,
                        label=name,
                    )
            ax.set_xlabel(f"latent $z_{{{k}}}$")
            ax.set_ylabel("Fraction / bin")
            ax.set_ylim(0, ax.get_ylim()[1] * 1.4)
            ax.ticklabel_format(axis="y", style="plain", useOffset=False)
            ax.legend(loc="upper right", fontsize=10)
            atlas_label(ax, label, loc=0, fontsize=12)
        fig.tight_layout()
    return fig


def figure_latent_pairs(d: Mapping[str, Any], dataset: str, label: str = "Simulation Internal"):
    """Pairwise 2D latent distributions of one dataset."""
    plt, mh = _pyplot()
    h = d["latent_pairs"]
    pairs = list(h.axes["pair"])
    with _style():
        fig, axes = plt.subplots(1, len(pairs), figsize=(6.4 * len(pairs), 5.6), squeeze=False)
        for ax, p in zip(axes[0], pairs, strict=True):
            sl = h[{"pair": p}]
            vals = sl.values()
            mh.hist2dplot(
                np.where(vals > 0, vals, np.nan),
                sl.axes[0].edges,
                sl.axes[1].edges,
                ax=ax,
                flow=None,
            )
            i, j = p.split("-")
            ax.set_xlabel(f"latent $z_{{{i}}}$")
            ax.set_ylabel(f"latent $z_{{{j}}}$")
            ax.text(0.96, 0.95, dataset, transform=ax.transAxes, ha="right", va="top", fontsize=11)
            atlas_label(ax, label, loc=0, fontsize=11)
        fig.tight_layout()
    return fig


def figure_latent_scan(
    model,
    d: Mapping[str, Any] | None = None,
    dims: tuple[int, int] = (0, 1),
    n: int = 60,
    label: str = "Simulation Internal",
):
    """Decode a regular grid over two latent dimensions (the others at their median).

    The grid spans the 1st-99th percentile of each scanned dimension in ``d["latent"]``
    (or the model's latent range); each panel shows one decoded jet variable.
    """
    import torch

    from ..model.export import load_model

    plt, _ = _pyplot()
    loaded = model if hasattr(model, "module") else load_model(model)
    k = loaded.latent_dim
    if k < 2:
        raise ValueError("a latent scan needs at least two latent dimensions")
    lat_range = loaded.metadata.get("latent_range") or [0.0, 1.0]
    med = np.full(k, 0.5 * (lat_range[0] + lat_range[1]))
    ranges = [(lat_range[0], lat_range[1])] * k
    if d is not None and d["latent"].sum() > 0:
        for m in range(k):
            h = d["latent"][{"dim": m}]
            q = hist_quantile(h, [0.01, 0.5, 0.99])
            med[m] = q[1]
            ranges[m] = (q[0], q[2])
    a, b = dims
    xs = np.linspace(*ranges[a], n)
    ys = np.linspace(*ranges[b], n)
    grid = np.tile(med, (n * n, 1)).astype(np.float32)
    gx, gy = np.meshgrid(xs, ys)
    grid[:, a] = gx.ravel()
    grid[:, b] = gy.ravel()
    with torch.inference_mode():
        if loaded.metadata.get("level") == "event":  # events with J jets; show the leading jet
            j = int(loaded.metadata["event_jets"])
            mask = torch.ones(len(grid), j)
            dec = loaded.module.decode(torch.from_numpy(grid), mask)[:, 0, :].numpy()
        else:
            dec = loaded.module.decode(torch.from_numpy(grid)).numpy()
    variables = loaded.variables
    cols = min(len(variables), 4)
    rows = math.ceil(len(variables) / cols)
    with _style():
        fig, axes = plt.subplots(
            rows, cols, figsize=(6.8 * cols, 5.6 * rows), squeeze=False, layout="constrained"
        )
        for ax, (i, v) in zip(axes.flat, enumerate(variables), strict=False):
            vals = dec[:, i].reshape(n, n)
            logc = nonnegative_energy(v) and np.all(vals > 0)
            from matplotlib.colors import LogNorm

            mesh = ax.pcolormesh(
                xs, ys, vals, shading="nearest", norm=LogNorm() if logc else None, cmap="viridis"
            )
            fig.colorbar(mesh, ax=ax, label=_var_label(v))
            ax.set_xlim(xs[0], xs[-1])  # the scanned grid, no rounded-out margins
            ax.set_ylim(ys[0], ys[-1])
            ax.xaxis.set_major_locator(_ticker().MaxNLocator(4))
            ax.yaxis.set_major_locator(_ticker().MaxNLocator(5))
            ax.set_xlabel(f"latent $z_{{{a}}}$")
            ax.set_ylabel(f"latent $z_{{{b}}}$")
        for ax in list(axes.flat)[len(variables) :]:
            ax.set_visible(False)
        # lay out first: mplhep spaces the label's parts for the axes' size at creation
        fig.canvas.draw()
        for ax in list(axes.flat)[: len(variables)]:
            atlas_label(ax, label, loc=0, fontsize=13)
    return fig


# ---------------------------------------------------------------------------------------
# training runs


def figure_loss_curves(history: Sequence[Mapping[str, float]], label: str = "Simulation Internal"):
    """Train and validation loss per epoch (log y)."""
    plt, _ = _pyplot()
    ep = [h["epoch"] for h in history]
    with _style():
        fig, ax = plt.subplots(figsize=(7.5, 6))
        ax.plot(ep, [h["train_loss"] for h in history], "o-", ms=3, label="training")
        ax.plot(ep, [h["val_loss"] for h in history], "s-", ms=3, label="validation")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (normalised space)")
        ax.legend(loc="upper right")
        atlas_label(ax, label, loc=0, fontsize=13)
        fig.tight_layout()
    return fig


def figure_previews(previews: Sequence[str | os.PathLike], max_images: int = 12):
    """The per-epoch preview PNGs (evenly chosen, at most ``max_images``) in one figure."""
    plt, _ = _pyplot()
    import matplotlib.image as mpimg

    paths = sorted(Path(p) for p in previews)
    if not paths:
        raise ValueError("no preview images found")
    idx = np.unique(np.linspace(0, len(paths) - 1, min(max_images, len(paths))).round().astype(int))
    chosen = [paths[i] for i in idx]
    fig, axes = plt.subplots(len(chosen), 1, figsize=(16, 3.9 * len(chosen)), squeeze=False)
    for ax, p in zip(axes[:, 0], chosen, strict=True):
        ax.imshow(mpimg.imread(p))
        ax.set_axis_off()
        ax.set_title(p.stem.replace("_", " "), fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def plot_training(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    label: str = "Simulation Internal",
    formats: Sequence[str] = ("png", "pdf"),
) -> list[Path]:
    """Loss curves and the gathered previews of a training run folder (``model_run/``)."""
    run_dir = Path(run_dir)
    hist_path = run_dir / "history.json"
    if not hist_path.exists():
        raise FileNotFoundError(f"{hist_path}: no training history (is {run_dir} a *_run folder?)")
    out = Path(out_dir)
    files = save_figure(
        figure_loss_curves(json.loads(hist_path.read_text()), label), out / "training_loss", formats
    )
    previews = sorted((run_dir / "previews").glob("epoch_*.png"))
    if previews:
        files += save_figure(figure_previews(previews), out / "training_previews", ("png",))
    return files


# ---------------------------------------------------------------------------------------
# everything for a results file


def plot_results(
    outputs: Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    label: str = "Simulation Internal",
    background: str | None = None,
    signal: str | None = None,
    model: str | os.PathLike | None = None,
    formats: Sequence[str] = ("png", "pdf"),
) -> dict[str, list[Path]]:
    """Draw every figure for a processor output into ``out_dir``; returns name -> files.

    ``model`` (a model file) enables the latent-space scan; ``background`` and ``signal``
    (dataset names) the ROC curves.
    """
    out = Path(out_dir)
    made: dict[str, list[Path]] = {}
    datasets = {k: v for k, v in outputs.items() if not str(k).startswith("_")}
    if not datasets:
        raise ValueError("no datasets in the results")
    variables = _variables(datasets)
    made["residuals"] = save_figure(
        figure_residuals_combined(datasets, label), out / "residuals", formats
    )
    for v in variables:
        made[f"residual_{v}"] = save_figure(
            figure_residual(datasets, v, kind="relative", label=label),
            out / f"residual_{v}",
            formats,
        )
        if residual_kind(v) == "absolute":
            made[f"residual_abs_{v}"] = save_figure(
                figure_residual(datasets, v, kind="absolute", label=label),
                out / f"residual_abs_{v}",
                formats,
            )
    for name, d in datasets.items():
        if d["score_jet"].sum(flow=True) == 0:
            log.warning("dataset %r has no processed jets: no per-dataset figures", name)
            continue
        safe = safe_name(name, "dataset")
        for v in variables:
            made[f"distribution_{safe}_{v}"] = save_figure(
                figure_distribution(d, v, name, label), out / f"distribution_{safe}_{v}", formats
            )
            if d["residual_vs_pt"][{"variable": v}].sum(flow=True) > 0:
                made[f"residual_vs_pt_{safe}_{v}"] = save_figure(
                    figure_residual_vs_pt(d, v, name, label),
                    out / f"residual_vs_pt_{safe}_{v}",
                    formats,
                )
        if len(d["latent_pairs"].axes["pair"]) and d["latent_pairs"].sum() > 0:
            made[f"latent_pairs_{safe}"] = save_figure(
                figure_latent_pairs(d, name, label), out / f"latent_pairs_{safe}", formats
            )
    for which in ("score_jet", "score_event_max", "score_event_mean"):
        made[which] = save_figure(figure_scores(datasets, which, label), out / which, formats)
    if background and signal:
        made["roc"] = save_figure(
            figure_roc(datasets, background, signal, label), out / "roc", formats
        )
        from ..processing.anomaly_hists import has_anomaly_hists

        if has_anomaly_hists(datasets[background]):
            made["sculpting"] = save_figure(
                figure_sculpting(datasets[background], background, label),
                out / "sculpting",
                formats,
            )
    made["latents"] = save_figure(figure_latents(datasets, label), out / "latents", formats)
    if model is not None:
        first = next(iter(datasets.values()))
        made["latent_scan"] = save_figure(
            figure_latent_scan(model, first, label=label), out / "latent_scan", formats
        )
    return made


# ---------------------------------------------------------------------------------------
# arrays (training previews, LR finder)


def plot_residuals(
    residuals: np.ndarray,
    variables: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str = "",
    label: str = "Simulation Internal",
    bins: int = 80,
) -> Path:
    """Residual arrays, one panel per variable with mean / RMS / sigma68 (training previews)."""
    plt, mh = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(variables)
    with _style():
        fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 5.0), squeeze=False)
        for i, (ax, var) in enumerate(zip(axes[0], variables, strict=True)):
            r = residuals[:, i]
            r = r[np.isfinite(r)]
            s68 = sigma68(r)
            half = max(5 * s68, 1e-4) if np.isfinite(s68) else 1.0
            h, edges = np.histogram(np.clip(r, -half, half), bins=bins, range=(-half, half))
            mh.histplot(h, edges, ax=ax, histtype="fill", alpha=0.6, color="C0")
            ax.ticklabel_format(axis="x", style="plain", useOffset=False)
            ax.set_xlabel(residual_axis_label(var), fontsize=14)
            ax.set_ylabel("Jets / bin", fontsize=14)
            ax.set_yscale("log")
            ax.set_ylim(0.5, max(h.max(), 1) * 60)
            rms = float(np.sqrt(np.mean(r**2))) if r.size else float("nan")
            mean = float(r.mean()) if r.size else float("nan")
            ax.text(
                0.04,
                0.78,
                _stats_text(mean, rms, s68),
                transform=ax.transAxes,
                fontsize=11,
                va="top",
            )
            if i == 0:
                atlas_label(ax, label, loc=0, fontsize=12)
        if title:
            fig.suptitle(title, fontsize=13, y=0.995)
        fig.tight_layout()
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=80, format=path.suffix.lstrip(".") or "png")
        plt.close(fig)
    return path


def plot_lr_find(
    lrs: Sequence[float], losses: Sequence[float], suggestion: float, path: str | os.PathLike
) -> Path:
    """Loss against learning rate from an LR range test, with the suggested value marked."""
    plt, _ = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _style():
        fig, ax = plt.subplots(figsize=(7, 5))
        ax.plot(lrs, losses, color="C0")
        ax.axvline(suggestion, color="C1", ls="--", label=f"suggested {suggestion:.2e}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Learning rate")
        ax.set_ylabel("Training loss (smoothed)")
        ax.legend(loc="upper right")
        atlas_label(ax, "Simulation Internal", loc=0, fontsize=12)
        fig.tight_layout()
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=80, format=path.suffix.lstrip(".") or "png")
        plt.close(fig)
    return path
