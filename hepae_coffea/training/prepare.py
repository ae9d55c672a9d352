"""Before the first epoch: read the jets, split them, fit the normalisation, build the model.

`prepare` returns a `Prepared`: the model (its normaliser fitted on the training jets),
the normalised training jets (or a stream of them, see `hepae_coffea.training.prepare_stream`)
and the validation set. Jets outside the fitted domain (absurd) are left out and counted.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import torch

from ..io.jets import JetData, pad_events, read_jets
from ..model.networks import EventAutoencoder, JetAutoencoder, build_model
from ..model.normalize import FitReport, Normalizer, VariableTransform, fit_transforms, flag_absurd
from ..variables.registry import check_units
from .config import MODEL_UNITS, TrainConfig
from .stream import iter_weighted_jets

if TYPE_CHECKING:
    from .prepare_stream import JetStream

__all__ = ["Model", "Prepared", "ValidationJets", "prepare", "split_indices"]

log = logging.getLogger(__name__)

#: the models trained here
Model: TypeAlias = JetAutoencoder | EventAutoencoder
#: physical validation jets: (n, N) values, or (events (n, J, N), mask (n, J)) for events
ValidationJets: TypeAlias = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class Prepared:
    """Model, normalised training data (in memory) or a stream, and the validation set."""

    model: Model
    summary: dict[str, Any]  # the training data, stored in the model's metadata
    transforms: list[VariableTransform]
    u_tr: torch.Tensor | None  # normalised training jets (None when streaming)
    w_tr: torch.Tensor | None  # event weight per training jet
    u_va: torch.Tensor  # normalised validation jets
    w_va: torch.Tensor | None
    x_va: ValidationJets  # physical validation jets
    mean_weight: float  # mean event weight of the training jets (1 when unweighted)
    n_train: int
    stream: JetStream | None = None


def prepare(config: TrainConfig, device: str = "cpu") -> Prepared:
    """Read, split (by jet, or by event for event-level models), normalise, build.

    Seeds torch's RNG with ``config.seed`` first, so the model's initial weights are
    reproducible. With ``config.stream`` the files are scanned instead of read into memory.
    """
    torch.manual_seed(config.seed)
    if config.stream:
        from .prepare_stream import prepare_streamed

        return prepare_streamed(config, device)
    if config.weight_branch and config.level == "event":
        raise ValueError("event weights are supported for jet-level models only")
    if config.weight_branch:
        values, weights, summary = _read_weighted(config)
        return _prepare_jets(config, device, values, weights, summary)
    data = _read(config)
    if config.level == "event":
        return _prepare_events(config, device, data)
    return _prepare_jets(config, device, data.values, None, data.summary())


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) indices of ``n`` items, a seeded random split."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 1:
        raise ValueError(f"need at least 2 jets to split train/validation, got {n}")
    return perm[n_val:], perm[:n_val]


def _read(config: TrainConfig) -> JetData:
    """All jets of the input files, in memory and in the model's units."""
    data = read_jets(
        config.inputs,
        config.variables,
        prefix=config.prefix or None,
        tree=config.tree or None,
        max_jets=config.max_jets or None,
        fmt=config.format or None,
        units=config.units or None,
        collection=config.collection or None,
        to_units=MODEL_UNITS,
    )
    for f in data.formats:
        log.info("%s: %s", f.source, f.describe(MODEL_UNITS))
    check_units(data.units, {"units": MODEL_UNITS}, "training data")
    return data


def _read_weighted(config: TrainConfig) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """All jets and their event weights (in memory), via the streaming reader, and the
    data summary."""
    vals, wts, n_bad, sources = [], [], 0, []
    n = 0
    for chunk in iter_weighted_jets(
        config.inputs,
        config.variables,
        prefix=config.prefix or None,
        tree=config.tree or None,
        fmt=config.format or None,
        units=config.units or None,
        collection=config.collection or None,
        to_units=MODEL_UNITS,
        weight_branch=config.weight_branch,
        step_events=config.step_events,
    ):
        vals.append(chunk.values)
        assert chunk.weights is not None  # a weight branch was given
        wts.append(chunk.weights)
        n_bad += chunk.n_bad_weight
        if chunk.source not in sources:
            sources.append(chunk.source)
        n += len(chunk.values)
        if config.max_jets and n >= config.max_jets:
            break
    values, weights = np.concatenate(vals), np.concatenate(wts)
    if config.max_jets:
        values, weights = values[: config.max_jets], weights[: config.max_jets]
    summary = {
        "files": [os.path.basename(p) for p in sources],
        "n_jets": len(values),
        "n_events": None,
        "weight_branch": config.weight_branch,
        "n_bad_weight_dropped": n_bad,
    }
    return values, weights, summary


def fit_normalizer(
    config: TrainConfig, x_fit: np.ndarray
) -> tuple[Normalizer, list[VariableTransform], FitReport]:
    """Fit the transforms on ``x_fit`` (absurd jets left out) and, for the BCE loss, the
    unit range of the normalised values."""
    transforms, report = fit_transforms(
        x_fit, config.variables, config.transforms, max_z=config.max_z
    )
    normalizer = Normalizer(transforms)
    if config.loss == "bce":
        normalizer.set_unit_range(normalizer(torch.tensor(x_fit[report.keep], dtype=torch.float32)))
    return normalizer, transforms, report


def _prepare_events(config: TrainConfig, device: str, data: JetData) -> Prepared:
    """Event-level model: the leading jets of each event, split by event."""
    if data.counts is None:
        raise ValueError("event-level models need per-event (jagged) inputs, e.g. ROOT files")
    summary = data.summary()
    x_ev, mask = pad_events(data.values, data.counts, config.event_jets)
    tr_idx, va_idx = split_indices(len(x_ev), config.val_fraction, config.seed)
    x_tr = x_ev[tr_idx][mask[tr_idx]]  # the training jets, for the normalisation
    normalizer, transforms, report = fit_normalizer(config, x_tr)
    model = build_model(config.model_config(), normalizer).to(device)
    assert isinstance(model, EventAutoencoder)
    summary["absurd"] = report.to_dict()
    with torch.no_grad():
        tx = torch.tensor(x_ev, dtype=torch.float32)
        tm = torch.tensor(mask, dtype=torch.float32)
        u_tr = model.normalise_events(tx[tr_idx].to(device), tm[tr_idx].to(device))
        u_va = model.normalise_events(tx[va_idx].to(device), tm[va_idx].to(device))
    return Prepared(
        model, summary, transforms, u_tr, None, u_va, None,
        (tx[va_idx], tm[va_idx]), 1.0, len(u_tr),
    )  # fmt: skip


def _prepare_jets(
    config: TrainConfig,
    device: str,
    values: np.ndarray,
    weights: np.ndarray | None,
    summary: dict[str, Any],
) -> Prepared:
    """Jet-level model: jets split one by one; absurd validation jets are left out too."""
    tr_idx, va_idx = split_indices(len(values), config.val_fraction, config.seed)
    x_tr = values[tr_idx]
    normalizer, transforms, report = fit_normalizer(config, x_tr)
    model = build_model(config.model_config(), normalizer).to(device)
    keep_tr = report.keep
    bad_va, _ = flag_absurd(values[va_idx], transforms, max_z=config.max_z)
    summary["absurd"] = absurd_summary(report, int(bad_va.sum()))
    va_idx = va_idx[~bad_va]
    w_tr = weights[tr_idx][keep_tr] if weights is not None else None
    mean_w = mean_weight(w_tr)
    with torch.no_grad():
        t_va = torch.tensor(values[va_idx], dtype=torch.float32)
        u_tr = normalizer(torch.tensor(x_tr[keep_tr], dtype=torch.float32)).to(device)
        u_va = normalizer(t_va).to(device)
    return Prepared(
        model,
        summary,
        transforms,
        u_tr,
        to_tensor(w_tr, device),
        u_va,
        to_tensor(weights[va_idx] if weights is not None else None, device),
        t_va,
        mean_w,
        len(u_tr),
    )


def mean_weight(w: np.ndarray | None) -> float:
    """Mean event weight of the training jets (1 without weights); it must be finite and
    non-zero to scale the loss."""
    if w is None:
        return 1.0
    mean = float(np.mean(w))
    if not (np.isfinite(mean) and mean != 0):
        raise ValueError(f"event weights of the training jets have mean {mean}; cannot weight")
    return mean


def to_tensor(w: np.ndarray | None, device: str) -> torch.Tensor | None:
    """A float32 tensor on ``device`` (None stays None)."""
    return None if w is None else torch.tensor(w, dtype=torch.float32, device=device)


def absurd_summary(report: FitReport, n_val: int) -> dict[str, Any]:
    """The fit report with the number of absurd validation jets; a warning when any jet
    was left out."""
    out = report.to_dict()
    out["n_validation_absurd"] = n_val
    if report.n_absurd or n_val:
        log.warning(
            "absurd jets left out of training: %d of %d training, %d validation (%s)",
            report.n_absurd,
            report.n_jets,
            n_val,
            report.rule,
        )
    return out
