"""ATLAS-style figures (mplhep) for training previews and residuals."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import canonical_variable
from .metrics import residual_kind, sigma68

__all__ = ["atlas_label", "plot_lr_find", "plot_residuals", "residual_axis_label"]

_TEX = {"pt": r"p_{T}", "eta": r"\eta", "phi": r"\phi", "mass": "m", "E": "E"}


def _tex(variable: str) -> str:
    return _TEX.get(canonical_variable(variable), variable.replace("_", r"\_"))


def residual_axis_label(variable: str) -> str:
    """Axis label of a variable's residual, e.g. ``(m_rec - m_orig)/m_orig``."""
    t = _tex(variable)
    if residual_kind(variable) == "absolute":
        return rf"${t}^{{rec}} - {t}^{{orig}}$"
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
    """Place the ATLAS label (``data=False`` prints "Simulation" before ``text``)."""
    _, mh = _pyplot()
    label = text.removeprefix("Simulation").strip() if text.startswith("Simulation") else text
    mh.atlas.label(label, data=False, com=com, lumi=lumi, ax=ax, **kw)


def plot_residuals(
    residuals: np.ndarray,
    variables: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str = "",
    label: str = "Simulation Internal",
    bins: int = 80,
) -> Path:
    """One panel per variable with the residual histogram and mean / RMS / sigma68 on it."""
    plt, mh = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(variables)
    with plt.style.context(mh.style.ATLAS):
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
                f"mean {mean:.2e}\nRMS {rms:.2e}\n$\\sigma_{{68}}$ {s68:.2e}",
                transform=ax.transAxes,
                fontsize=11,
                va="top",
            )
            if i == 0:
                atlas_label(ax, label, loc=0, fontsize=12)
        if title:
            fig.suptitle(title, fontsize=13, y=0.995)
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
    return path


def plot_lr_find(
    lrs: Sequence[float], losses: Sequence[float], suggestion: float, path: str | os.PathLike
) -> Path:
    """Loss against learning rate from an LR range test, with the suggested value marked."""
    plt, mh = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.style.context(mh.style.ATLAS):
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
        fig.savefig(path, dpi=80)
        plt.close(fig)
    return path
