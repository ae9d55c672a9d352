"""A hand-built TorchScript "autoencoder" whose reconstruction is a known formula.

The latents are the jet's (pt, eta, phi, mass) themselves; the decoder applies

    pt   -> pt * pt_scale + pt_shift
    eta  -> eta + eta_shift
    phi  -> phi + phi_shift            (wrapped with atan2 when ``wrap_phi``)
    mass -> mass * mass_scale

and the score is the sum of squared differences. Tests compute the expected residuals,
counters and verdicts from these formulas with plain numpy, independently of the library,
and choose parameters that make the output unphysical (negative pt, |phi| > pi) on purpose.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from hepae_coffea.model.export import export_model

VARIABLES = ["pt", "eta", "phi", "mass"]


class KnownModel(nn.Module):
    """(pt, eta, phi, mass) -> itself as latents -> the formula above."""

    def __init__(
        self,
        pt_scale: float = 1.0,
        pt_shift: float = 0.0,
        eta_shift: float = 0.0,
        phi_shift: float = 0.0,
        mass_scale: float = 1.0,
        wrap_phi: bool = True,
    ) -> None:
        super().__init__()
        self.latent_dim = 4
        self.pt_scale = pt_scale
        self.pt_shift = pt_shift
        self.eta_shift = eta_shift
        self.phi_shift = phi_shift
        self.mass_scale = mass_scale
        self.wrap_phi = wrap_phi

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        pt = z[:, 0] * self.pt_scale + self.pt_shift
        eta = z[:, 1] + self.eta_shift
        phi = z[:, 2] + self.phi_shift
        if self.wrap_phi:
            phi = torch.atan2(torch.sin(phi), torch.cos(phi))
        mass = z[:, 3] * self.mass_scale
        return torch.stack([pt, eta, phi, mass], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.jit.export
    def encode_decode_score(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        rec = self.decode(z)
        return z, rec, torch.sum((rec - x) ** 2, dim=1)


def export_known_model(path: Path, **params: float | bool) -> Path:
    """Write a :class:`KnownModel` as a hepae-coffea model file."""
    meta = {
        "level": "jet",
        "kind": "known-formula test model",
        "latent_dim": 4,
        "variables": [{"name": v} for v in VARIABLES],
        "latent_range": [-10.0, 1000.0],
    }
    return export_model(KnownModel(**params), path, meta)  # type: ignore[arg-type]


def expected_reconstruction(x: np.ndarray, **params: float | bool) -> np.ndarray:
    """The formula in numpy float32 (equal to torch's result up to sin/cos/atan2 ulps)."""
    p = {
        "pt_scale": 1.0,
        "pt_shift": 0.0,
        "eta_shift": 0.0,
        "phi_shift": 0.0,
        "mass_scale": 1.0,
        "wrap_phi": True,
    }
    p.update(params)
    x = np.asarray(x, dtype=np.float32)
    f = np.float32
    pt = x[:, 0] * f(p["pt_scale"]) + f(p["pt_shift"])
    eta = x[:, 1] + f(p["eta_shift"])
    phi = x[:, 2] + f(p["phi_shift"])
    if p["wrap_phi"]:
        phi = np.arctan2(np.sin(phi), np.cos(phi)).astype(np.float32)
    mass = x[:, 3] * f(p["mass_scale"])
    return np.stack([pt, eta, phi, mass], axis=1)
