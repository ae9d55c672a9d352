"""Figures of training runs: loss curves, the learning-rate range test, the residual
previews drawn during training, and :func:`plot_training`, which draws a run folder's
figures.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..processing.metrics import sigma68
from .style import (
    DEFAULT_LABEL,
    atlas_label,
    atlas_style,
    residual_axis_label,
    save_figure,
    save_single,
    stats_text,
    use_file_backend,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "figure_loss_curves",
    "figure_previews",
    "plot_lr_find",
    "plot_residuals",
    "plot_training",
]


def figure_loss_curves(
    history: Sequence[Mapping[str, float]], label: str = DEFAULT_LABEL
) -> Figure:
    """Train and validation loss per epoch (log y)."""
    use_file_backend()
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    with atlas_style():
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


def figure_previews(previews: Sequence[str | os.PathLike[str]], max_images: int = 12) -> Figure:
    """The per-epoch preview PNGs (evenly chosen, at most ``max_images``) in one figure."""
    use_file_backend()
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

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
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    label: str = DEFAULT_LABEL,
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


def plot_residuals(
    residuals: np.ndarray,
    variables: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    label: str = DEFAULT_LABEL,
    bins: int = 80,
) -> Path:
    """Residual arrays, one panel per variable with mean / RMS / sigma68 (training previews)."""
    use_file_backend()
    import matplotlib.pyplot as plt
    import mplhep as mh

    n = len(variables)
    with atlas_style():
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
                stats_text(mean, rms, s68),
                transform=ax.transAxes,
                fontsize=11,
                va="top",
            )
            if i == 0:
                atlas_label(ax, label, loc=0, fontsize=12)
        if title:
            fig.suptitle(title, fontsize=13, y=0.995)
        fig.tight_layout()
        return save_single(fig, path)


def plot_lr_find(
    lrs: Sequence[float], losses: Sequence[float], suggestion: float, path: str | os.PathLike[str]
) -> Path:
    """Loss against learning rate from an LR range test, with the suggested value marked."""
    use_file_backend()
    import matplotlib.pyplot as plt

    with atlas_style():
        fig, ax = plt.subplots(figsize=(7, 5))
        ax.plot(lrs, losses, color="C0")
        ax.axvline(suggestion, color="C1", ls="--", label=f"suggested {suggestion:.2e}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Learning rate")
        ax.set_ylabel("Training loss (smoothed)")
        ax.legend(loc="upper right")
        atlas_label(ax, DEFAULT_LABEL, loc=0, fontsize=12)
        fig.tight_layout()
        return save_single(fig, path)
