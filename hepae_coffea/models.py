"""Jet autoencoders (AE and VAE) that take and return physical values.

The network works in the normalised space of :class:`~hepae_coffea.normalize.Normalizer`,
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

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .normalize import Normalizer

__all__ = ["ACTIVATIONS", "JetAutoencoder", "ModelConfig", "build_model"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leakyrelu": nn.LeakyReLU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
}
KINDS = ("ae", "vae")
LOSSES = ("mse", "bce")
BOTTLENECKS = ("plain", "packed")
_GUARD = 0.02  # keeps the fine channel away from the coarse steps' edges


@dataclass
class ModelConfig:
    """Architecture and loss of a jet autoencoder (all fields are saved with the model)."""

    variables: tuple[str, ...] = ("pt", "eta", "phi", "mass")
    latent_dim: int = 3
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "silu"
    kind: str = "ae"
    loss: str = "mse"
    bottleneck: str = "packed"
    levels: int = 1024
    beta: float = 1e-3
    weights: dict[str, float] = field(default_factory=dict)
    transforms: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.variables = tuple(self.variables)
        self.hidden = tuple(int(h) for h in self.hidden)
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} not in {KINDS}")
        if self.loss not in LOSSES:
            problems.append(f"loss {self.loss!r} not in {LOSSES}")
        if self.bottleneck not in BOTTLENECKS:
            problems.append(f"bottleneck {self.bottleneck!r} not in {BOTTLENECKS}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation {self.activation!r} not in {sorted(ACTIVATIONS)}")
        if not self.latent_dim >= 1:
            problems.append(f"latent_dim must be >= 1, got {self.latent_dim}")
        if not 2 <= self.levels <= 1 << 16:
            problems.append(f"levels must be in [2, 65536], got {self.levels}")
        if len(set(self.variables)) != len(self.variables) or not self.variables:
            problems.append(f"variables must be distinct and non-empty: {list(self.variables)}")
        bad_w = set(self.weights) - set(self.variables)
        if bad_w:
            problems.append(f"weights given for unknown variable(s) {sorted(bad_w)}")
        if any(w < 0 for w in self.weights.values()):
            problems.append(f"weights must be >= 0: {self.weights}")
        if problems:
            raise ValueError("invalid model configuration: " + "; ".join(problems))

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["variables"] = list(self.variables)
        d["hidden"] = list(self.hidden)
        return d


def _mlp(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class JetAutoencoder(nn.Module):
    """Autoencoder (``kind="ae"``) or VAE (``kind="vae"``) for flat jet variables.

    Parameters
    ----------
    config : ModelConfig
        Architecture and loss.
    normalizer : Normalizer
        Fixed physical <-> normalised transforms (see :func:`build_model`).
    """

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
        n_pre = config.latent_dim * self.channels
        enc_out = 2 * n_pre if self.is_vae else n_pre
        self.encoder = _mlp([n_norm, *config.hidden, enc_out], config.activation)
        self.decoder = _mlp([n_pre, *reversed(config.hidden), n_norm], config.activation)
        owner = normalizer.column_owner()
        w = torch.tensor([float(config.weights.get(v, 1.0)) for v in config.variables])
        col_w = w[owner]
        if float(col_w.sum()) <= 0:
            raise ValueError("at least one variable needs a positive loss weight")
        self.register_buffer("column_weight", col_w / col_w.sum())

    # --- building blocks in normalised space ------------------------------------------
    def _pre_latent(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output: (mean, log_sigma); log_sigma is empty for the plain AE."""
        h = self.encoder(u)
        if self.is_vae:
            n = h.shape[1] // 2
            return h[:, :n], h[:, n:]
        return h, h[:, :0]

    def _pack(self, h: torch.Tensor) -> torch.Tensor:
        if not self.packed:
            return h
        k = self.latent_dim
        a = torch.sigmoid(h[:, :k])
        b = self.guard + (1.0 - 2.0 * self.guard) * torch.sigmoid(h[:, k:])
        q = torch.round(a * (self.levels - 1))
        return (q + b) / self.levels

    def _unpack(self, z: torch.Tensor) -> torch.Tensor:
        if not self.packed:
            return z
        t = z * self.levels
        q = torch.clamp(torch.floor(t), 0.0, float(self.levels - 1))
        b = t - q
        return torch.cat([2.0 * q / (self.levels - 1) - 1.0, 2.0 * b - 1.0], dim=1)

    def _features_train(self, h: torch.Tensor) -> torch.Tensor:
        """Pack and unpack with straight-through gradients (same values as inference)."""
        if not self.packed:
            return h
        k = self.latent_dim
        a = torch.sigmoid(h[:, :k])
        b = self.guard + (1.0 - 2.0 * self.guard) * torch.sigmoid(h[:, k:])
        exact = self._unpack(self._pack(h))
        soft = torch.cat([2.0 * a - 1.0, 2.0 * b - 1.0], dim=1)
        return soft + (exact - soft).detach()

    def _decode_norm(self, feats: torch.Tensor) -> torch.Tensor:
        out = self.decoder(feats)
        return torch.sigmoid(out) if self.bce else out

    def reconstruct_normalised(
        self, u: torch.Tensor, sample: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: normalised in -> (normalised reconstruction, KL per jet)."""
        mean, log_sigma = self._pre_latent(u)
        h = mean
        kl = torch.zeros(u.shape[0], dtype=u.dtype, device=u.device)
        if self.is_vae:
            if sample:
                h = mean + torch.exp(log_sigma) * torch.randn_like(mean)
            kl = 0.5 * torch.sum(mean**2 + torch.exp(2 * log_sigma) - 1 - 2 * log_sigma, dim=1)
        return self._decode_norm(self._features_train(h)), kl

    def per_column_error(self, u: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """Loss per jet and normalised column (squared error, or BCE for ``loss="bce"``)."""
        if self.bce:
            target = torch.clamp(u, 0.0, 1.0)
            r = torch.clamp(recon, 1e-7, 1.0 - 1e-7)
            return -(target * torch.log(r) + (1.0 - target) * torch.log(1.0 - r))
        return (recon - u) ** 2

    # --- public, physical-units interface ---------------------------------------------
    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Physical ``(n, n_vars)`` -> latent ``(n, latent_dim)`` (the VAE mean)."""
        mean, _ = self._pre_latent(self.normalizer(x))
        return self._pack(mean)

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``(n, latent_dim)`` -> physical ``(n, n_vars)``."""
        return self.normalizer.inverse(self._decode_norm(self._unpack(z)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction: ``decode(encode(x))``."""
        return self.decode(self.encode(x))

    @torch.jit.export
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Per-jet anomaly score: weighted mean squared error in normalised space."""
        u = self.normalizer(x)
        mean, _ = self._pre_latent(u)
        recon = self._decode_norm(self._unpack(self._pack(mean)))
        return torch.sum((recon - u) ** 2 * self.column_weight, dim=1)

    @torch.jit.export
    def encode_decode_score(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All three in one pass: (latent, physical reconstruction, score)."""
        u = self.normalizer(x)
        mean, _ = self._pre_latent(u)
        z = self._pack(mean)
        recon = self._decode_norm(self._unpack(z))
        s = torch.sum((recon - u) ** 2 * self.column_weight, dim=1)
        return z, self.normalizer.inverse(recon), s


def build_model(config: ModelConfig, normalizer: Normalizer) -> JetAutoencoder:
    """Create a :class:`JetAutoencoder` (weights initialised from torch's current RNG)."""
    if normalizer.n_vars != len(config.variables):
        raise ValueError(
            f"normalizer has {normalizer.n_vars} variables, config {len(config.variables)}"
        )
    return JetAutoencoder(config, normalizer)
