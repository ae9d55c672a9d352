"""Run an exported model over jets read from files and summarise the residuals."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ModelFileError
from ..io.jets import read_jets
from ..model.cache import BLOCK
from ..model.export import LoadedModel, load_model
from ..model.handle import ModelSource
from .metrics import residual_summary, residuals

__all__ = ["Evaluation", "evaluate", "run_model"]


def run_model(
    model: LoadedModel | torch.jit.ScriptModule, values: np.ndarray, batch_size: int = BLOCK
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode -> decode ``values`` in float32 batches; return (latent, reconstruction, score)."""
    module = model.module if isinstance(model, LoadedModel) else model
    x = torch.as_tensor(np.ascontiguousarray(values, dtype=np.float32))
    zs, recs, scores = [], [], []
    with torch.inference_mode():
        for i in range(0, max(len(x), 1), batch_size):
            z, rec, s = module.encode_decode_score(x[i : i + batch_size])
            zs.append(z.numpy())
            recs.append(rec.numpy())
            scores.append(s.numpy())
    return np.concatenate(zs), np.concatenate(recs), np.concatenate(scores)


@dataclass
class Evaluation:
    """Original and reconstructed jets with their residual summary."""

    variables: tuple[str, ...]
    original: np.ndarray
    reconstructed: np.ndarray
    latent: np.ndarray
    score: np.ndarray
    summary: dict[str, Any]
    jets_per_second: float
    n_nonfinite_dropped: int

    @property
    def residuals(self) -> np.ndarray:
        return residuals(self.original, self.reconstructed, self.variables)


def evaluate(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    model: ModelSource | LoadedModel = None,
    *,
    prefix: str | None = None,
    tree: str | None = None,
    max_jets: int | None = None,
) -> Evaluation:
    """Read jets with the model's variables, pass them through the model, summarise.

    Parameters
    ----------
    inputs : path or list of paths
        Files readable by :func:`hepae_coffea.io.jets.read_jets` (the format is detected unless
        ``prefix`` or ``tree`` is given; values are read in GeV).
    model : path, bytes, ModelHandle or LoadedModel, optional
        Exported model; the shipped default when omitted.
    """
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    if loaded.metadata.get("level", "jet") != "jet":
        raise ModelFileError(
            f"{loaded.metadata['path']}: an event-level model; evaluate() takes jet-level "
            "models, use hepae_coffea.processing.run.run (hepae run) for event-level ones"
        )
    data = read_jets(inputs, loaded.variables, prefix=prefix, tree=tree, max_jets=max_jets)
    run_model(loaded, data.values[:256])  # TorchScript optimises on the first calls
    run_model(loaded, data.values[:256])
    t0 = time.perf_counter()
    z, rec, s = run_model(loaded, data.values)
    dt = time.perf_counter() - t0
    orig = data.values.astype(np.float32).astype(np.float64)
    return Evaluation(
        tuple(loaded.variables),
        orig,
        rec.astype(np.float64),
        z,
        s,
        residual_summary(orig, rec, loaded.variables),
        data.n_jets / max(dt, 1e-9),
        data.n_nonfinite,
    )
