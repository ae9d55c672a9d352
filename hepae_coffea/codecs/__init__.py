"""Array-level codecs for jet columns, with guaranteed maximum errors.

Every codec has the same two functions::

    encode(columns: dict[str, np.ndarray], counts: np.ndarray, spec) -> Encoded
    decode(branches: dict[str, np.ndarray], counts: np.ndarray, info: dict) -> dict[str, np.ndarray]

``columns`` are flat per-jet arrays (pt, eta, phi, mass, ...), ``counts`` the jets per
event, ``spec`` a precision SPEC (`parse_precision`). `Encoded` holds the arrays to store
as ROOT branches and a plain JSON-able ``info`` dict (no code, no pickles).

- ``truncate``: round-to-nearest mantissa truncation (float32 branches);
- ``quantize``: uniform quantiser in (log pt, eta, phi, log mass), integer branches;
- ``pcodec``: the quantiser's integers coded losslessly with pcodec, one byte branch;
- ``entropy``: the quantiser's integers range-coded with a learned, context-conditioned
  probability model (extra ``codecs``: ``constriction``); other columns as ``pcodec``.

``bounded_ae`` (not in `CODECS`: it also needs the model's encode and decode callables)
stores autoencoder latents plus corrections for every value beyond the bound.
"""

from __future__ import annotations

from types import ModuleType

from .base import CodecError, Encoded, circular_error, smallest_int_dtype, wrap_phi
from .precision import (
    PRESETS,
    Bound,
    Precision,
    PrecisionError,
    bits_max_abs_error,
    bits_max_rel_error,
    parse_precision,
)

__all__ = [
    "CODECS",
    "PRESETS",
    "Bound",
    "CodecError",
    "Encoded",
    "Precision",
    "PrecisionError",
    "bits_max_abs_error",
    "bits_max_rel_error",
    "circular_error",
    "get_codec",
    "parse_precision",
    "smallest_int_dtype",
    "wrap_phi",
]

CODECS = ("truncate", "quantize", "pcodec", "entropy")


def get_codec(name: str) -> ModuleType:
    """The codec module (with ``encode`` and ``decode``) called ``name``."""
    if name == "truncate":
        from . import truncate

        return truncate
    if name == "quantize":
        from . import quantize

        return quantize
    if name == "pcodec":
        from . import pco

        return pco
    if name == "entropy":
        try:
            from . import entropy
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise CodecError(
                f"codec 'entropy' needs the 'codecs' extra (constriction): {err}"
            ) from None
        return entropy
    raise CodecError(f"unknown codec {name!r}; choose from {', '.join(CODECS)}")
