"""The shipped model's domain, computed by hand from its metadata (the README's rule).

Jets outside it are counted, not decoded: pt and mass within the training range / 1.1 and
x 1.1, eta within the training range widened by 10% of its width. Tests use this to know
which jets the processor decodes without asking :mod:`hepae_coffea.variables.domain`.
"""

from __future__ import annotations

import numpy as np

from hepae_coffea.model.export import read_metadata


def in_domain(flat: np.ndarray, model: str | None = None) -> np.ndarray:
    """Mask of the jets (rows pt, eta, phi, mass in GeV) inside the model's domain."""
    rng = read_metadata(model)["training"]["data"]["ranges"]
    pad = 0.1 * (rng["eta"][2] - rng["eta"][0])
    return (
        (flat[:, 0] >= rng["pt"][0] / 1.1)
        & (flat[:, 0] <= rng["pt"][2] * 1.1)
        & (flat[:, 3] <= rng["mass"][2] * 1.1)
        & (flat[:, 1] >= rng["eta"][0] - pad)
        & (flat[:, 1] <= rng["eta"][2] + pad)
    )
