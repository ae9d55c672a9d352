"""Jet autoencoders (AE and VAE) that take and return physical values.

The network works in the normalised space of :class:`~hepae_coffea.model.normalize.Normalizer`,
which lives inside the model, so ``encode``/``decode``/``forward``/``score`` all take or
return physical jet variables. Everything here is TorchScript-compatible.

Two bottlenecks are available:

``plain``
    ``latent_dim`` continuous numbers (a linear layer), as in the classic HEP autoencoders.
``packed``
    Each of the ``latent_dim`` float32 latents carries two learned channels: a coarse one,
    quantised to ``levels`` steps (straight-through gradient while training), and a fine,
    continuous one in the remaining fractional part: ``z = (round(a (L-1)) + b) / L``. The
    encoder and decoder are ordinary learned MLPs; the packing only lets one float hold
    more than one smooth coordinate, which a continuous 4 -> 3 map cannot do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .config import ModelConfig
from .normalize import Normalizer

__all__ = [
    "ACTIVATIONS",
    "ALIGN",
    "NARROW",
    "PIECE",
    "EventAutoencoder",
    "FeatureMajorLinear",
    "JetAutoencoder",
    "ModelConfig",
    "build_model",
    "weighted_mean",
]

#: the hidden layers' activations, keyed by the names of `config.ACTIVATION_NAMES`
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leakyrelu": nn.LeakyReLU,
    "silu": nn.SiLU,
    "hardswish": nn.Hardswish,
    "elu": nn.ELU,
    "gelu": nn.GELU,
}
_GUARD = 0.02  # keeps the fine channel away from the coarse steps' edges


def _pack(h: torch.Tensor, k: int, levels: int, guard: float, packed: bool) -> torch.Tensor:
    """Pre-latent (n, 2k) -> packed float latents (n, k); identity for a plain bottleneck."""
    if not packed:
        return h
    sig = torch.sigmoid(h)  # one call on the contiguous tensor (slices are 7x slower)
    b = guard + (1.0 - 2.0 * guard) * sig[:, k:]
    q = torch.round(sig[:, :k] * (levels - 1))
    return (q + b) / levels


def _unpack(z: torch.Tensor, levels: int, packed: bool) -> torch.Tensor:
    """Packed latents (n, k) -> decoder features (n, 2k): coarse and fine channels."""
    if not packed:
        return z
    t = z * levels
    q = torch.clamp(torch.floor(t), 0.0, float(levels - 1))
    b = t - q
    # feature-major, as the encoder's narrow output layer leaves the latents
    return torch.cat([(2.0 * q / (levels - 1) - 1.0).t(), (2.0 * b - 1.0).t()]).t()


def _features_train(
    h: torch.Tensor, k: int, levels: int, guard: float, packed: bool
) -> torch.Tensor:
    """Pack and unpack with straight-through gradients (same values as inference)."""
    if not packed:
        return h
    a = torch.sigmoid(h[:, :k])
    b = guard + (1.0 - 2.0 * guard) * torch.sigmoid(h[:, k:])
    exact = _unpack(_pack(h, k, levels, guard, packed), levels, packed)
    soft = torch.cat([2.0 * a - 1.0, 2.0 * b - 1.0], dim=1)
    return soft + (exact - soft).detach()


def _sample_kl(
    mean: torch.Tensor, log_sigma: torch.Tensor, is_vae: bool, sample: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """VAE: z = mean + exp(log_sigma) * eps when sampling, else the mean; and the KL term."""
    kl = torch.zeros(mean.shape[0], dtype=mean.dtype, device=mean.device)
    h = mean
    if is_vae:
        if sample:
            h = mean + torch.exp(log_sigma) * torch.randn_like(mean)
        kl = 0.5 * torch.sum(mean**2 + torch.exp(2 * log_sigma) - 1 - 2 * log_sigma, dim=1)
    return h, kl


def _column_weight(config: ModelConfig, normalizer: Normalizer) -> torch.Tensor:
    """Loss weight per normalised column from the config's per-variable weights."""
    w = torch.tensor([float(config.weights.get(v, 1.0)) for v in config.variables])
    if float(w.sum()) <= 0:
        raise ValueError("at least one variable needs a positive loss weight")
    return normalizer.column_weight(w)


def weighted_mean(
    per_jet: torch.Tensor, weights: torch.Tensor | None = None, mean_weight: float = 1.0
) -> torch.Tensor:
    """Batch loss from per-jet losses, weighted by event weights.

    ``sum_i w_i l_i / (n * mean_weight)``: with ``mean_weight`` the mean weight of the
    whole training sample this is an unbiased estimate of the weighted mean loss, and it
    stays finite for batches whose weights nearly cancel (negative weights).
    Without weights it is the plain mean.
    """
    if weights is None:
        return per_jet.mean()
    if not mean_weight or not torch.isfinite(torch.tensor(mean_weight)):
        raise ValueError(f"mean_weight must be finite and non-zero, got {mean_weight!r}")
    return (per_jet * weights).mean() / mean_weight


#: layers with at most this many outputs compute ``W @ x^T`` (see `FeatureMajorLinear`)
NARROW = 12


class FeatureMajorLinear(nn.Linear):
    """``nn.Linear`` computed as ``(W @ x^T + b)^T``, returned as a transposed view.

    The same map, with the same parameters (and state-dict names) as ``nn.Linear``. For a
    layer with few outputs and many rows, BLAS multiplies ``(out, in) @ (in, n)`` several
    times faster than ``(n, in) @ (in, out)``, and the result keeps each output column
    contiguous in memory: the per-column work that follows (packing the latents, undoing
    the normalisation) reads whole contiguous columns.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias.unsqueeze(1), self.weight, x.t()).t()


def _mlp(sizes: list[int], activation: str, feature_major: bool = False) -> nn.Sequential:
    """Linear layers with activations between them; with ``feature_major``, the layers of
    at most NARROW outputs are `FeatureMajorLinear`."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        narrow = feature_major and sizes[i + 1] <= NARROW
        layers.append((FeatureMajorLinear if narrow else nn.Linear)(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


#: rows per piece of a jet model's call, and the multiple of rows each piece is padded to
PIECE = 32768
ALIGN = 64


def _starts(n: int, piece: int) -> list[int]:
    """First rows of the pieces of an ``n``-row call (one empty piece for ``n == 0``)."""
    return list(range(0, n, piece)) if n > 0 else [0]


def _padded(x: torch.Tensor, align: int) -> torch.Tensor:
    """``x`` with its last row repeated up to a multiple of ``align`` rows (at least one
    multiple).

    Elementwise kernels run whole vectors over the first multiple of the vector width and
    finish the rest one value at a time (with other rounding for exp, atan2 and the like),
    and BLAS picks other kernels for a few rows; padded, every real row gets the
    vectorised path."""
    n = x.shape[0]
    if n == 0:
        return x
    pad = max(align - n, (-n) % align)
    if pad == 0:
        return x
    return torch.cat([x, x[n - 1 :].expand(pad, x.shape[1])])


class JetAutoencoder(nn.Module):
    """Autoencoder (``kind="ae"``) or VAE (``kind="vae"``) for flat jet variables.

    Parameters
    ----------
    config : ModelConfig
        Architecture and loss.
    normalizer : Normalizer
        Fixed physical <-> normalised transforms (see :func:`build_model`).
    """

    if TYPE_CHECKING:  # buffers, declared for mypy only (TorchScript infers them)
        column_weight: torch.Tensor  # loss weight per normalised column

    def __init__(self, config: ModelConfig, normalizer: Normalizer) -> None:
        super().__init__()
        self.normalizer = normalizer
        n_norm = normalizer.n_norm
        self.n_vars = normalizer.n_vars
        self.latent_dim = config.latent_dim
        self.channels = 2 if config.bottleneck == "packed" else 1
        self.packed = config.bottleneck == "packed"
        self.is_vae = config.kind == "vae"
        self.bce = config.loss == "bce"
        self.levels = config.levels
        self.guard = _GUARD
        self.piece = PIECE
        self.align = ALIGN
        n_pre = config.latent_dim * self.channels
        enc_out = 2 * n_pre if self.is_vae else n_pre
        self.encoder = _mlp([n_norm, *config.hidden, enc_out], config.activation, True)
        self.decoder = _mlp([n_pre, *reversed(config.hidden), n_norm], config.activation, True)
        self.register_buffer("column_weight", _column_weight(config, normalizer))

    # --- building blocks in normalised space ------------------------------------------
    def _pre_latent(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output: (mean, log_sigma); log_sigma is empty for the plain AE."""
        h = self.encoder(u)
        if self.is_vae:
            n = h.shape[1] // 2
            return h[:, :n], h[:, n:]
        return h, h[:, :0]

    def _pack(self, h: torch.Tensor) -> torch.Tensor:
        return _pack(h, self.latent_dim, self.levels, self.guard, self.packed)

    def _unpack(self, z: torch.Tensor) -> torch.Tensor:
        return _unpack(z, self.levels, self.packed)

    def _features_train(self, h: torch.Tensor) -> torch.Tensor:
        return _features_train(h, self.latent_dim, self.levels, self.guard, self.packed)

    def _decode_norm(self, feats: torch.Tensor) -> torch.Tensor:
        out = self.decoder(feats)
        return torch.sigmoid(out) if self.bce else out

    def reconstruct_normalised(
        self, u: torch.Tensor, sample: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: normalised in -> (normalised reconstruction, KL per jet)."""
        mean, log_sigma = self._pre_latent(u)
        h, kl = _sample_kl(mean, log_sigma, self.is_vae, sample)
        return self._decode_norm(self._features_train(h)), kl

    def per_column_error(self, u: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """Loss per jet and normalised column (squared error, or BCE for ``loss="bce"``;
        cross entropy in one-hot blocks)."""
        return self.normalizer.column_error(u, recon, self.bce)

    # --- one piece of rows: PIECE at most, a multiple of ALIGN --------------------------
    def _encode_rows(self, x: torch.Tensor) -> torch.Tensor:
        mean, _ = self._pre_latent(self.normalizer(x))
        return self._pack(mean)

    def _decode_rows(self, z: torch.Tensor) -> torch.Tensor:
        return self.normalizer.inverse(self._decode_norm(self._unpack(z)))

    def _score_rows(self, x: torch.Tensor) -> torch.Tensor:
        u = self.normalizer(x)
        mean, _ = self._pre_latent(u)
        return self._score(u, self._decode_norm(self._unpack(self._pack(mean))))

    def _encode_decode_score_rows(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u = self.normalizer(x)
        mean, _ = self._pre_latent(u)
        z = self._pack(mean)
        recon = self._decode_norm(self._unpack(z))
        return z, self.normalizer.inverse(recon), self._score(u, recon)

    # --- public, physical-units interface ---------------------------------------------
    # Each call runs on pieces of at most PIECE rows, each padded to a multiple of ALIGN
    # rows, so that every row goes through the same vectorised arithmetic whatever the
    # batch: a jet's outputs do not depend on the rows around it (one torch thread).
    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Physical ``(n, n_vars)`` -> latent ``(n, latent_dim)`` (the VAE mean)."""
        parts: list[torch.Tensor] = []
        for start in _starts(x.shape[0], self.piece):
            piece = x[start : start + self.piece]
            parts.append(self._encode_rows(_padded(piece, self.align))[: piece.shape[0]])
        return torch.cat(parts)

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``(n, latent_dim)`` -> physical ``(n, n_vars)``."""
        parts: list[torch.Tensor] = []
        for start in _starts(z.shape[0], self.piece):
            piece = z[start : start + self.piece]
            parts.append(self._decode_rows(_padded(piece, self.align))[: piece.shape[0]])
        return torch.cat(parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction: ``decode(encode(x))``."""
        return self.decode(self.encode(x))

    @torch.jit.export
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Per-jet anomaly score: weighted mean squared error in normalised space."""
        parts: list[torch.Tensor] = []
        for start in _starts(x.shape[0], self.piece):
            piece = x[start : start + self.piece]
            parts.append(self._score_rows(_padded(piece, self.align))[: piece.shape[0]])
        return torch.cat(parts)

    @torch.jit.export
    def encode_decode_score(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All three in one pass: (latent, physical reconstruction, score)."""
        zs: list[torch.Tensor] = []
        recs: list[torch.Tensor] = []
        scores: list[torch.Tensor] = []
        for start in _starts(x.shape[0], self.piece):
            piece = x[start : start + self.piece]
            m = piece.shape[0]
            z, rec, s = self._encode_decode_score_rows(_padded(piece, self.align))
            zs.append(z[:m])
            recs.append(rec[:m])
            scores.append(s[:m])
        return torch.cat(zs), torch.cat(recs), torch.cat(scores)

    def _score(self, u: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """Weighted reconstruction error per jet (squared error; cross entropy for one-hot),
        summed column after column (the same order for every row)."""
        err = self.normalizer.column_error(u, recon, False)
        s = err[:, 0] * self.column_weight[0]
        for j in range(1, err.shape[1]):
            s = s + err[:, j] * self.column_weight[j]
        return s


def build_model(config: ModelConfig, normalizer: Normalizer) -> JetAutoencoder | EventAutoencoder:
    """Create a jet- or event-level model (weights from torch's current RNG)."""
    if normalizer.n_vars != len(config.variables):
        raise ValueError(
            f"normalizer has {normalizer.n_vars} variables, config {len(config.variables)}"
        )
    if config.level == "event":
        return EventAutoencoder(config, normalizer)
    return JetAutoencoder(config, normalizer)


class EventAutoencoder(nn.Module):
    """Compresses an event's leading ``event_jets`` (J) jets together into ``latent_dim`` numbers.

    Inputs are ``x`` (n_events, J, n_vars) in physical units, padded, and ``mask``
    (n_events, J) with 1 for real jets. The jet count is not compressed: it travels beside
    the latents and the decoder sees the mask too. Padded slots never enter the loss and are
    returned as zeros. The same normalisation, bottlenecks and VAE option as
    :class:`JetAutoencoder`; ``score`` is the mean of the real jets' errors per event.
    """

    if TYPE_CHECKING:  # buffers, declared for mypy only (TorchScript infers them)
        jet_column_weight: torch.Tensor  # loss weight per normalised column of one jet
        column_weight: torch.Tensor  # the same for all J jets of an event

    def __init__(self, config: ModelConfig, normalizer: Normalizer) -> None:
        super().__init__()
        self.normalizer = normalizer
        self.n_vars = normalizer.n_vars
        self.n_norm = normalizer.n_norm
        self.max_jets = config.event_jets
        self.latent_dim = config.latent_dim
        self.channels = 2 if config.bottleneck == "packed" else 1
        self.packed = config.bottleneck == "packed"
        self.is_vae = config.kind == "vae"
        self.bce = config.loss == "bce"
        self.levels = config.levels
        self.guard = _GUARD
        jm = self.max_jets * self.n_norm
        n_pre = config.latent_dim * self.channels
        enc_out = 2 * n_pre if self.is_vae else n_pre
        self.encoder = _mlp([jm + self.max_jets, *config.hidden, enc_out], config.activation)
        self.decoder = _mlp(
            [n_pre + self.max_jets, *reversed(config.hidden), jm], config.activation
        )
        col_w = _column_weight(config, normalizer)
        self.register_buffer("jet_column_weight", col_w)
        # training loss: every real jet's weighted error, summed over the event's jets
        self.register_buffer("column_weight", col_w.repeat(self.max_jets))

    def _column_mask(self, mask: torch.Tensor) -> torch.Tensor:
        return mask.repeat_interleave(self.n_norm, dim=1)

    @torch.jit.export
    def normalise_events(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(n, J, N) physical + (n, J) mask -> (n, J*M + J) network input (padding zeroed)."""
        n = x.shape[0]
        m = mask.to(x.dtype)
        u = self.normalizer(x.reshape(n * self.max_jets, self.n_vars))
        u = u.reshape(n, self.max_jets * self.n_norm) * self._column_mask(m)
        return torch.cat([u, m], dim=1)

    def _pre_latent(self, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(inp)
        if self.is_vae:
            k = h.shape[1] // 2
            return h[:, :k], h[:, k:]
        return h, h[:, :0]

    def _decode_norm(self, feats: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        out = self.decoder(torch.cat([feats, m], dim=1))
        return torch.sigmoid(out) if self.bce else out

    def reconstruct_normalised(
        self, inp: torch.Tensor, sample: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: network input -> (normalised reconstruction (n, J*M), KL)."""
        m = inp[:, self.max_jets * self.n_norm :]
        mean, log_sigma = self._pre_latent(inp)
        h, kl = _sample_kl(mean, log_sigma, self.is_vae, sample)
        feats = _features_train(h, self.latent_dim, self.levels, self.guard, self.packed)
        return self._decode_norm(feats, m), kl

    def per_column_error(self, inp: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """Per event and normalised column; zero for padded jets."""
        jm = self.max_jets * self.n_norm
        u, m = inp[:, :jm], inp[:, jm:]
        n = u.shape[0]
        err = self.normalizer.column_error(
            u.reshape(n * self.max_jets, self.n_norm),
            recon.reshape(n * self.max_jets, self.n_norm),
            self.bce,
        )
        return err.reshape(n, jm) * self._column_mask(m)

    @torch.jit.export
    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(n, J, N) physical + mask -> latent (n, latent_dim) (the VAE mean)."""
        mean, _ = self._pre_latent(self.normalise_events(x, mask))
        return _pack(mean, self.latent_dim, self.levels, self.guard, self.packed)

    @torch.jit.export
    def decode(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Latent (n, latent_dim) + mask -> (n, J, N) physical; padded slots are zero."""
        n = z.shape[0]
        m = mask.to(z.dtype)
        u = self._decode_norm(_unpack(z, self.levels, self.packed), m)
        x = self.normalizer.inverse(u.reshape(n * self.max_jets, self.n_norm))
        return x.reshape(n, self.max_jets, self.n_vars) * m.unsqueeze(2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Reconstruction: ``decode(encode(x, mask), mask)``."""
        return self.decode(self.encode(x, mask), mask)

    @torch.jit.export
    def jet_scores(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-jet error in normalised space (n, J); zero for padded slots."""
        inp = self.normalise_events(x, mask)
        n = x.shape[0]
        m = mask.to(x.dtype)
        mean, _ = self._pre_latent(inp)
        z = _pack(mean, self.latent_dim, self.levels, self.guard, self.packed)
        recon = self._decode_norm(_unpack(z, self.levels, self.packed), m)
        u = inp[:, : self.max_jets * self.n_norm].reshape(n * self.max_jets, self.n_norm)
        err = self.normalizer.column_error(u, recon.reshape(n * self.max_jets, self.n_norm), False)
        err = err.reshape(n, self.max_jets, self.n_norm) * self.jet_column_weight
        return err.sum(dim=2) * m

    @torch.jit.export
    def score(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-event anomaly score: mean error of its real jets (0 without jets)."""
        m = mask.to(x.dtype)
        return self.jet_scores(x, mask).sum(dim=1) / torch.clamp(m.sum(dim=1), min=1.0)

    @torch.jit.export
    def encode_decode_score(
        self, x: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(latent, physical reconstruction (n, J, N), per-jet scores (n, J)) in one call."""
        z = self.encode(x, mask)
        return z, self.decode(z, mask), self.jet_scores(x, mask)
