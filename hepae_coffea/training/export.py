"""The end of a run: the model file's metadata and the exported TorchScript model."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..model.export import export_model, variable_unit
from ..model.normalize import VariableTransform
from .config import MODEL_UNITS, TrainConfig
from .prepare import Model, Prepared
from .validation import encode_validation

__all__ = ["build_metadata", "export_trained", "latent_range"]


def build_metadata(
    model: Model,
    config: TrainConfig,
    data_summary: dict[str, Any],
    metrics: dict[str, Any],
    transforms: Sequence[VariableTransform],
) -> dict[str, Any]:
    """The JSON metadata stored in the exported model file."""
    norm = model.normalizer
    mcfg = config.model_config()
    return {
        "level": mcfg.level,
        "event_jets": mcfg.event_jets if mcfg.level == "event" else None,
        "kind": mcfg.kind,
        "loss": mcfg.loss,
        "bottleneck": mcfg.bottleneck,
        "levels": mcfg.levels if mcfg.bottleneck == "packed" else None,
        "latent_dim": mcfg.latent_dim,
        "units": MODEL_UNITS,
        "variables": [{"name": v, "unit": variable_unit(v)} for v in config.variables],
        "normalisation": [t.to_dict() for t in transforms],
        "unit_range": {
            "lo": norm.get_buffer("lo").tolist(),
            "width": norm.get_buffer("width").tolist(),
        },
        "architecture": {
            "hidden": list(mcfg.hidden),
            "activation": mcfg.activation,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "loss_weights": {v: float(mcfg.weights.get(v, 1.0)) for v in config.variables},
        "training": {"config": config.to_dict(), "data": data_summary},
        "metrics": metrics,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def latent_range(model: Model, prep: Prepared, bottleneck: str) -> list[float]:
    """The range of the latents: [0, 1] for packed latents, else the validation jets'
    range widened by 10% on each side."""
    if bottleneck == "packed":
        return [0.0, 1.0]
    z = encode_validation(model, prep.x_va)
    lo, hi = float(z.min()), float(z.max())
    pad = 0.1 * (hi - lo) or 1.0
    return [lo - pad, hi + pad]


def export_trained(
    model: Model, config: TrainConfig, prep: Prepared, metrics: dict[str, Any], path: Path
) -> Model:
    """Move the model to the CPU (exported models load anywhere) and write it with its
    metadata to ``path``; returns the CPU model."""
    model = model.cpu()
    metadata = build_metadata(model, config, prep.summary, metrics, prep.transforms)
    metadata["latent_range"] = latent_range(model, prep, config.bottleneck)
    export_model(model, path, metadata)
    return model
