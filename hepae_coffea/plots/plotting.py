"""Public plotting entry points."""

from __future__ import annotations

from .results import (
    figure_distribution,
    figure_residual,
    figure_residual_vs_pt,
    figure_residuals_combined,
    plot_results,
)
from .scan import figure_latent_pairs, figure_latent_scan, figure_latents
from .scores import figure_roc, figure_scores, figure_sculpting, roc_from_hists
from .style import atlas_label, residual_axis_label, save_figure
from .training import (
    figure_loss_curves,
    figure_previews,
    plot_lr_find,
    plot_residuals,
    plot_training,
)

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
