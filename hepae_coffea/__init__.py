"""hepae-coffea: autoencoder compression of jet data for coffea analyses."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
