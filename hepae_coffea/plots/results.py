"""Figures of a processor output: residuals (overlaid per dataset, and against the original
jet pT), original vs reconstructed distributions, and :func:`plot_results`, which draws
every figure of a results file.

Every ``figure_*`` function returns a matplotlib Figure (so tests can inspect what it
holds); :func:`plot_results` saves them as PNG and PDF.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..io.guards import safe_name
from ..model.handle import ModelSource, open_model
from ..processing.hists import cdf_at, moments_mean_rms, sigma68_from_hist
from ..processing.metrics import is_count, residual_kind
from ..variables.registry import nonnegative_energy
from . import FIGURE_GROUPS
from .scan import figure_latent_pairs, figure_latent_scan, figure_latents
from .scores import figure_roc, figure_scores, figure_sculpting
from .style import (
    DEFAULT_LABEL,
    atlas_label,
    atlas_style,
    colors,
    plain_log_ticks,
    residual_axis_label,
    save_figure,
    stats_text,
    use_file_backend,
    var_label,
)

if TYPE_CHECKING:
    import hist
    from matplotlib.figure import Figure

__all__ = [
    "FIGURE_GROUPS",
    "figure_distribution",
    "figure_residual",
    "figure_residual_vs_pt",
    "figure_residuals_combined",
    "plot_results",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# residuals


def _residual_hist(d: Mapping[str, Any], variable: str, kind: str) -> hist.Hist[Any]:
    src = d["residual_abs"] if kind == "absolute" else d["residual"]
    h: hist.Hist[Any] = src[{"variable": variable}]
    return h


def _rebin_uniform(
    h: hist.Hist[Any], lo: float, hi: float, nbins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of a finely binned 1D histogram on uniform display bins (from its CDF)."""
    edges = np.linspace(lo, hi, nbins + 1)
    total = h.sum(flow=True)
    counts = np.diff(cdf_at(h, edges)) * total
    return counts, edges


def _draw_residual(
    ax: Any, outputs: Mapping[str, Any], variable: str, kind: str, label: str
) -> None:
    import mplhep as mh
    from matplotlib.ticker import MaxNLocator

    names = list(outputs)
    cols = colors(len(names))
    widths = [sigma68_from_hist(_residual_hist(d, variable, kind)) for d in outputs.values()]
    finite = [w for w in widths if np.isfinite(w) and w > 0]
    half = 6 * float(np.median(finite)) if finite else 1.0
    integer = kind == "absolute" and is_count(variable)
    if integer:  # whole-number differences: one bin per integer, -3 .. 3
        half = 3.5
    ymax = 1.0
    texts = []
    for name, color, d, s68 in zip(names, cols, outputs.values(), widths, strict=True):
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
            prefix + stats_text(mean, rms, s68),
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


def figure_residual(
    outputs: Mapping[str, Any],
    variable: str,
    *,
    kind: str | None = None,
    label: str = DEFAULT_LABEL,
) -> Figure:
    """Residual of one variable, every dataset overlaid, with mean / RMS / sigma68."""
    use_file_backend()
    import matplotlib.pyplot as plt

    with atlas_style():
        fig, ax = plt.subplots(figsize=(7.5, 6))
        _draw_residual(ax, outputs, variable, kind or residual_kind(variable), label)
        fig.tight_layout()
    return fig


def _variables(outputs: Mapping[str, Any]) -> list[str]:
    first = next(iter(outputs.values()))
    return list(first["residual"].axes["variable"])


def figure_residuals_combined(outputs: Mapping[str, Any], label: str = DEFAULT_LABEL) -> Figure:
    """All variables' residuals (relative for pt/mass, absolute for eta/phi), one panel each."""
    use_file_backend()
    import matplotlib.pyplot as plt

    variables = _variables(outputs)
    n = len(variables)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    with atlas_style():
        fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 5.6 * rows), squeeze=False)
        for ax, v in zip(axes.flat, variables, strict=False):
            _draw_residual(ax, outputs, v, residual_kind(v), label)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------
# distributions


def figure_distribution(
    d: Mapping[str, Any], variable: str, dataset: str, label: str = DEFAULT_LABEL
) -> Figure:
    """Original vs reconstructed distribution of one variable with a ratio panel."""
    use_file_backend()
    import matplotlib.pyplot as plt
    import mplhep as mh

    h = d["distribution"][variable]
    orig = h[{"version": "original"}]
    rec = h[{"version": "reconstructed"}]
    edges = orig.axes[0].edges
    o, r = orig.values(), rec.values()
    with atlas_style():
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
        rax.set_xlabel(var_label(variable))
        if nonnegative_energy(variable):
            ax.set_xscale("log")
        filled = np.nonzero((o + r) > 0)[0]
        if filled.size:  # show the populated range
            ax.set_xlim(edges[max(filled[0] - 1, 0)], edges[min(filled[-1] + 2, len(edges) - 1)])
        fig.subplots_adjust(left=0.14, right=0.96, top=0.95, bottom=0.11)
    return fig


# ---------------------------------------------------------------------------------------
# residual versus pt


def _profile(h2: hist.Hist[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sigma68 of the residual in each pt bin of a (pt, residual) histogram."""
    pt_edges = h2.axes["pt"].edges
    s68 = []
    for i in range(len(pt_edges) - 1):
        sl = cast("hist.Hist[Any]", h2[i, :])  # one pt bin: a 1D Hist
        s68.append(sigma68_from_hist(sl) if sl.sum(flow=True) >= 20 else np.nan)
    centers = np.sqrt(pt_edges[1:] * pt_edges[:-1])
    return centers, np.asarray(s68), pt_edges


def figure_residual_vs_pt(
    d: Mapping[str, Any], variable: str, dataset: str, label: str = DEFAULT_LABEL
) -> Figure:
    """2D residual vs original pt (symmetric-log y) and the sigma68 profile in pt bins."""
    use_file_backend()
    import matplotlib.pyplot as plt
    import mplhep as mh
    from matplotlib.ticker import NullLocator

    h2 = d["residual_vs_pt"][{"variable": variable}]
    centers, s68, _ = _profile(h2)
    finite = s68[np.isfinite(s68)]
    with atlas_style():
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
        ax.yaxis.set_minor_locator(NullLocator())
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
                plain_log_ticks(a.xaxis, *ax.get_xlim())
        fig.tight_layout()
        fig.subplots_adjust(wspace=0.45)  # keep the profile's y label clear of the colour bar
    return fig


# ---------------------------------------------------------------------------------------
# everything for a results file


def plot_results(
    outputs: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    label: str = DEFAULT_LABEL,
    background: str | None = None,
    signal: str | None = None,
    model: ModelSource = None,
    formats: Sequence[str] = ("png", "pdf"),
    figures: Collection[str] = FIGURE_GROUPS,
) -> dict[str, list[Path]]:
    """Draw the figures for a processor output into ``out_dir``; returns name -> files.

    ``model`` (a model file, its bytes or a :class:`~hepae_coffea.model.handle.ModelHandle`)
    enables the latent-space scan; ``background`` and ``signal`` (dataset names) the ROC
    curves. ``figures`` selects groups of figures (default: all of :data:`FIGURE_GROUPS`):
    ``residuals`` (combined, per variable, and against pt per dataset), ``distributions``
    (original and reconstructed, per dataset), ``scores`` (anomaly scores; with
    ``background`` and ``signal`` the ROC curves and the sculpting check) and ``latents``
    (the latents, their pairs per dataset and, with ``model``, the latent-space scan).
    """
    unknown = sorted(set(figures) - set(FIGURE_GROUPS))
    if unknown:
        raise ValueError(
            f"unknown figure group(s) {', '.join(unknown)}; choose from {', '.join(FIGURE_GROUPS)}"
        )
    out = Path(out_dir)
    made: dict[str, list[Path]] = {}
    datasets = {k: v for k, v in outputs.items() if not str(k).startswith("_")}
    if not datasets:
        raise ValueError("no datasets in the results")
    handle = open_model(model) if model is not None else None  # fail early on a bad file
    variables = _variables(datasets)
    if "residuals" in figures:
        made.update(_residual_figures(datasets, variables, out, label, formats))
    for name, d in datasets.items():
        if d["score_jet"].sum(flow=True) == 0:
            log.warning("dataset %r has no processed jets: no per-dataset figures", name)
            continue
        made.update(_dataset_figures(d, name, variables, out, label, formats, figures))
    if "scores" in figures:
        made.update(_score_figures(datasets, out, label, formats, background, signal))
    if "latents" in figures:
        made["latents"] = save_figure(figure_latents(datasets, label), out / "latents", formats)
        if handle is not None:
            first = next(iter(datasets.values()))
            made["latent_scan"] = save_figure(
                figure_latent_scan(handle, first, label=label), out / "latent_scan", formats
            )
    return made


def _residual_figures(
    datasets: Mapping[str, Any],
    variables: Sequence[str],
    out: Path,
    label: str,
    formats: Sequence[str],
) -> dict[str, list[Path]]:
    """The residuals of all datasets together: combined and per variable."""
    made = {
        "residuals": save_figure(
            figure_residuals_combined(datasets, label), out / "residuals", formats
        )
    }
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
    return made


def _dataset_figures(
    d: Mapping[str, Any],
    name: str,
    variables: Sequence[str],
    out: Path,
    label: str,
    formats: Sequence[str],
    figures: Collection[str],
) -> dict[str, list[Path]]:
    """One dataset's figures of the selected groups (file names carry the dataset's
    name, sanitised)."""
    made: dict[str, list[Path]] = {}
    safe = safe_name(name, "dataset")
    for v in variables:
        if "distributions" in figures:
            made[f"distribution_{safe}_{v}"] = save_figure(
                figure_distribution(d, v, name, label), out / f"distribution_{safe}_{v}", formats
            )
        if "residuals" in figures and d["residual_vs_pt"][{"variable": v}].sum(flow=True) > 0:
            made[f"residual_vs_pt_{safe}_{v}"] = save_figure(
                figure_residual_vs_pt(d, v, name, label),
                out / f"residual_vs_pt_{safe}_{v}",
                formats,
            )
    pairs = d["latent_pairs"]
    if "latents" in figures and len(pairs.axes["pair"]) and pairs.sum() > 0:
        made[f"latent_pairs_{safe}"] = save_figure(
            figure_latent_pairs(d, name, label), out / f"latent_pairs_{safe}", formats
        )
    return made


def _score_figures(
    datasets: Mapping[str, Any],
    out: Path,
    label: str,
    formats: Sequence[str],
    background: str | None,
    signal: str | None,
) -> dict[str, list[Path]]:
    """Anomaly scores; with ``background`` and ``signal`` the ROC curves and, where the
    background has the anomaly histograms, the sculpting check."""
    made: dict[str, list[Path]] = {}
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
    return made
