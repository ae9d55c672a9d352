"""Training on samples larger than memory: jets streamed from the files, epoch after epoch.

`prepare_streamed` scans the files once (counting jets, keeping the validation jets and
drawing a uniform sample to fit the normalisation) and a second time to count the absurd
training jets and the mean event weight; `JetStream` then yields every epoch's batches.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..model.networks import build_model
from ..model.normalize import VariableTransform, flag_absurd
from .config import MODEL_UNITS, TrainConfig
from .prepare import Prepared, absurd_summary, fit_normalizer, to_tensor
from .stream import ShuffleBuffer, batches, iter_weighted_jets

__all__ = ["JetStream", "prepare_streamed"]

log = logging.getLogger(__name__)


class JetStream:
    """Training jets streamed from the input files, epoch after epoch.

    Jets are read in chunks of ``config.step_events`` events; each chunk's jets go to
    validation with probability ``val_fraction`` (a fixed draw per chunk, so every pass
    splits the same way); training jets outside the fitted domain (absurd) are dropped
    and counted; the rest pass through a shuffle buffer into batches.
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.transforms: list[VariableTransform] | None = None
        self.n_absurd_seen = 0

    def chunks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """(chunk number, values, weights), up to ``max_jets`` jets in all."""
        c = self.config
        n = 0
        for i, chunk in enumerate(
            iter_weighted_jets(
                c.inputs,
                c.variables,
                prefix=c.prefix or None,
                tree=c.tree or None,
                weight_branch=c.weight_branch or None,
                step_events=c.step_events,
                fmt=c.format or None,
                units=c.units or None,
                collection=c.collection or None,
                to_units=MODEL_UNITS,
            )
        ):
            values, weights = chunk.values, chunk.weights
            if c.max_jets and n + len(values) > c.max_jets:
                values = values[: c.max_jets - n]
                weights = None if weights is None else weights[: len(values)]
            n += len(values)
            yield i, values, weights
            if c.max_jets and n >= c.max_jets:
                return

    def is_val(self, i: int, n: int) -> np.ndarray:
        """Which of chunk ``i``'s ``n`` jets are validation jets (the same every pass)."""
        rng = np.random.default_rng([self.config.seed, 7, i])
        return rng.random(n) < self.config.val_fraction

    def epoch(self, epoch: int) -> Iterator[list[np.ndarray]]:
        """Training batches ``[values, (weights)]`` of one pass over the files."""
        transforms = self.transforms
        assert transforms is not None, "prepare_streamed sets the fitted transforms"
        c = self.config
        rng = np.random.default_rng([c.seed, 11, epoch])
        self.n_absurd_seen = 0

        def blocks() -> Iterator[list[np.ndarray]]:
            for i, values, weights in self.chunks():
                tr = ~self.is_val(i, len(values))
                bad, _ = flag_absurd(values[tr], transforms, max_z=c.max_z)
                self.n_absurd_seen += int(bad.sum())
                keep = np.flatnonzero(tr)[~bad]
                block = [values[keep]]
                if weights is not None:
                    block.append(weights[keep])
                yield block

        yield from batches(blocks(), c.batch_size, ShuffleBuffer(c.shuffle_buffer, rng))


def prepare_streamed(config: TrainConfig, device: str) -> Prepared:
    """First pass over the files: count, keep the validation jets, draw the fit sample;
    second pass: count the absurd training jets and their mean event weight."""
    if config.level == "event":
        raise ValueError("streaming training is supported for jet-level models only")
    stream = JetStream(config)
    rng = np.random.default_rng([config.seed, 3])
    fit_vals = np.empty((0, len(config.variables)))
    fit_keys = np.empty(0)
    val_parts: list[np.ndarray] = []
    val_w: list[np.ndarray] = []
    n_val = n_train = n_val_dropped = 0
    t0 = time.perf_counter()
    for i, values, weights in stream.chunks():
        v = stream.is_val(i, len(values))
        if n_val < config.max_val_jets:
            take = np.flatnonzero(v)[: config.max_val_jets - n_val]
            val_parts.append(values[take])
            if weights is not None:
                val_w.append(weights[take])
            n_val += len(take)
            n_val_dropped += int(v.sum()) - len(take)
        else:
            n_val_dropped += int(v.sum())
        tr = values[~v]
        n_train += len(tr)
        # uniform sample of the training jets for the fit: the smallest random keys
        keys = rng.random(len(tr))
        fit_vals = np.concatenate([fit_vals, tr])
        fit_keys = np.concatenate([fit_keys, keys])
        if len(fit_keys) > config.fit_jets:
            part = np.argpartition(fit_keys, config.fit_jets)[: config.fit_jets]
            fit_vals, fit_keys = fit_vals[part], fit_keys[part]
    sources = [os.path.basename(os.fspath(p)) for p in config.inputs]
    if n_train < 1 or n_val < 1:
        raise ValueError(f"streaming needs training and validation jets, got {n_train}, {n_val}")
    normalizer, transforms, report = fit_normalizer(config, fit_vals)
    stream.transforms = transforms
    model = build_model(config.model_config(), normalizer).to(device)
    x_va = np.concatenate(val_parts)
    w_va = np.concatenate(val_w) if val_w else None
    bad_va, _ = flag_absurd(x_va, transforms, max_z=config.max_z)
    x_va = x_va[~bad_va]
    w_va = None if w_va is None else w_va[~bad_va]
    # training jets outside the fitted domain, counted over the whole sample (one pass)
    n_absurd = 0
    mean_w_sum = 0.0
    for i, values, weights in stream.chunks():
        tr = ~stream.is_val(i, len(values))
        bad, _ = flag_absurd(values[tr], transforms, max_z=config.max_z)
        n_absurd += int(bad.sum())
        if weights is not None:
            mean_w_sum += float(weights[tr][~bad].sum())
    n_keep = n_train - n_absurd
    mean_w = mean_w_sum / n_keep if config.weight_branch else 1.0
    if config.weight_branch and not (np.isfinite(mean_w) and mean_w != 0):
        raise ValueError(f"event weights of the training jets have mean {mean_w}; cannot weight")
    q = np.quantile(fit_vals[report.keep], [0.0, 0.5, 1.0], axis=0)
    summary: dict[str, Any] = {
        "files": sources,
        "n_jets": n_train + n_val + n_val_dropped,
        "n_events": None,
        "streamed": True,
        "n_train": n_keep,
        "n_validation": len(x_va),
        "n_validation_unused": n_val_dropped,
        "fit_jets": len(fit_vals),
        "ranges": {
            v: [float(q[0, j]), float(q[1, j]), float(q[2, j])]
            for j, v in enumerate(config.variables)
        },
    }
    if config.weight_branch:
        summary["weight_branch"] = config.weight_branch
    absurd = absurd_summary(report, int(bad_va.sum()))
    absurd["n_train_absurd"] = n_absurd
    summary["absurd"] = absurd
    if n_absurd:
        log.warning(
            "%d of %d training jets outside the fitted domain are left out", n_absurd, n_train
        )
    log.info(
        "streaming %d training jets from %d file(s); %d validation jets; scan %.1f s",
        n_keep,
        len(sources),
        len(x_va),
        time.perf_counter() - t0,
    )
    t_va = torch.tensor(x_va, dtype=torch.float32)
    with torch.no_grad():
        u_va = normalizer(t_va).to(device)
    return Prepared(
        model, summary, transforms, None, None, u_va, to_tensor(w_va, device), t_va,
        mean_w, n_keep, stream,
    )  # fmt: skip
