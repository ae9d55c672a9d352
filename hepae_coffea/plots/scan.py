"""Figures of the latent space: the latent distributions of a processor output, their
pairwise 2D distributions, and a scan that decodes a regular grid over two latent
dimensions with the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..model.export import LoadedModel
from ..model.handle import ModelSource, open_model
from ..processing.hists import hist_quantile
from ..variables.registry import nonnegative_energy
from .style import DEFAULT_LABEL, atlas_label, atlas_style, colors, use_file_backend, var_label

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

__all__ = ["figure_latent_pairs", "figure_latent_scan", "figure_latents"]


def figure_latents(outputs: Mapping[str, Any], label: str = DEFAULT_LABEL) -> Figure:
    """1D latent distributions per dimension, every dataset overlaid (normalised)."""
    use_file_backend()
    import matplotlib.pyplot as plt
    import mplhep as mh

    first = next(iter(outputs.values()))["latent"]
    dims = list(first.axes["dim"])
    cols = min(len(dims), 4)
    rows = math.ceil(len(dims) / cols)
    with atlas_style():
        fig, grid = plt.subplots(rows, cols, figsize=(6 * cols, 5.4 * rows), squeeze=False)
        for ax in list(grid.flat)[len(dims) :]:
            ax.set_visible(False)
        for ax, k in zip(list(grid.flat)[: len(dims)], dims, strict=True):
            for (name, d), color in zip(outputs.items(), colors(len(outputs)), strict=True):
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


def figure_latent_pairs(d: Mapping[str, Any], dataset: str, label: str = DEFAULT_LABEL) -> Figure:
    """Pairwise 2D latent distributions of one dataset."""
    use_file_backend()
    import matplotlib.pyplot as plt
    import mplhep as mh

    h = d["latent_pairs"]
    pairs = list(h.axes["pair"])
    with atlas_style():
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


def _decoder(model: ModelSource | LoadedModel) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """The TorchScript module and metadata of a model: one already loaded is used as it
    is; anything else goes through :func:`~hepae_coffea.model.handle.open_model` (the
    module from the per-worker cache)."""
    if isinstance(model, LoadedModel):
        return model.module, model.metadata
    handle = open_model(model)
    return handle.module("cpu"), handle.metadata


def figure_latent_scan(
    model: ModelSource | LoadedModel,
    d: Mapping[str, Any] | None = None,
    dims: tuple[int, int] = (0, 1),
    n: int = 60,
    label: str = DEFAULT_LABEL,
) -> Figure:
    """Decode a regular grid over two latent dimensions (the others at their median).

    Each panel shows one decoded jet variable (the leading jet for an event-level model).

    Parameters
    ----------
    model : ModelHandle, path, bytes, LoadedModel or None
        The model (None: the shipped default).
    d : mapping, optional
        A dataset's processor output: the grid spans the 1st-99th percentile of each
        scanned dimension in ``d["latent"]``; without it, the model's latent range.
    dims : (int, int)
        The two latent dimensions scanned (x, y).
    n : int
        Grid points per dimension.
    """
    import torch

    use_file_backend()
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import MaxNLocator

    module, metadata = _decoder(model)
    k = int(metadata["latent_dim"])
    if k < 2:
        raise ValueError("a latent scan needs at least two latent dimensions")
    lat_range = metadata.get("latent_range") or [0.0, 1.0]
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
        if metadata.get("level") == "event":  # events with J jets; show the leading jet
            j = int(metadata["event_jets"])
            mask = torch.ones(len(grid), j)
            dec = module.decode(torch.from_numpy(grid), mask)[:, 0, :].numpy()
        else:
            dec = module.decode(torch.from_numpy(grid)).numpy()
    variables = [v["name"] for v in metadata["variables"]]
    cols = min(len(variables), 4)
    rows = math.ceil(len(variables) / cols)
    with atlas_style():
        fig, axes = plt.subplots(
            rows, cols, figsize=(6.8 * cols, 5.6 * rows), squeeze=False, layout="constrained"
        )
        for ax, (i, v) in zip(axes.flat, enumerate(variables), strict=False):
            vals = dec[:, i].reshape(n, n)
            logc = nonnegative_energy(v) and np.all(vals > 0)
            mesh = ax.pcolormesh(
                xs, ys, vals, shading="nearest", norm=LogNorm() if logc else None, cmap="viridis"
            )
            fig.colorbar(mesh, ax=ax, label=var_label(v))
            ax.set_xlim(xs[0], xs[-1])  # the scanned grid, no rounded-out margins
            ax.set_ylim(ys[0], ys[-1])
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.yaxis.set_major_locator(MaxNLocator(5))
            ax.set_xlabel(f"latent $z_{{{a}}}$")
            ax.set_ylabel(f"latent $z_{{{b}}}$")
        for ax in list(axes.flat)[len(variables) :]:
            ax.set_visible(False)
        # lay out first: mplhep spaces the label's parts for the axes' size at creation
        fig.canvas.draw()
        for ax in list(axes.flat)[: len(variables)]:
            atlas_label(ax, label, loc=0, fontsize=13)
    return fig
