"""The array codecs inside ``hepae compress``: choosing one, encoding a file's jets, and
storing the result as ROOT branches.

With a precision SPEC the whole input's jets (a few floats per jet) are read first and
encoded at once, so every codec's ``info`` (grids, bits, the entropy model fitted on these
jets) is one plain JSON object stored once per file. Each codec branch ``b`` becomes
``<collection>Codec_<b>``: per jet (jagged with the jets' counter) or, for branches with
their own sizes (the entropy coder's words, the autoencoder's corrections), with its own
counter ``n<collection>Codec_<b>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from ..codecs import CODECS, Precision, circular_error, get_codec, parse_precision
from ..errors import HepaeError
from .root_copy import BranchSpec

__all__ = [
    "CODEC_CHOICES",
    "ENTROPY_MIN_JETS",
    "ENTROPY_MIN_JETS_MANY",
    "KINEMATICS",
    "CodecPayload",
    "choose_codec",
    "decode_payload",
    "default_codec",
    "encode_payload",
    "max_errors",
    "precision_for",
    "resolve_codec",
]

#: what ``--codec`` accepts: the autoencoder and the array codecs
CODEC_CHOICES = ("ae", *CODECS)
#: the variables the array codecs compress
KINEMATICS = ("pt", "eta", "phi", "mass")

Transform = Callable[[np.ndarray], np.ndarray]


#: fewest jets for which ``entropy`` is the default on (pt, eta, phi, mass): below, the
#: model it embeds (about 2.2 kB) outweighs what it saves over ``pcodec`` (the codec race
#: in benchmarks/README.md: break-even at 5,900-14,300 jets, by sample and preset)
ENTROPY_MIN_JETS = 15_000
#: the same for larger variable sets, whose other columns both codecs store with pcodec
#: (break-even at 7,100-29,300 jets on the 13-variable set)
ENTROPY_MIN_JETS_MANY = 30_000


def default_codec(n_jets: int | None = None, variables: Sequence[str] = KINEMATICS) -> str:
    """The codec the race crowns for ``variables`` with a precision.

    ``entropy`` (smallest once its embedded model is amortised) for ``n_jets`` of at
    least `ENTROPY_MIN_JETS` (`ENTROPY_MIN_JETS_MANY` beyond the four kinematics) or
    unknown, ``pcodec`` for fewer jets.
    """
    many = any(v not in KINEMATICS for v in variables)
    limit = ENTROPY_MIN_JETS_MANY if many else ENTROPY_MIN_JETS
    return "pcodec" if n_jets is not None and n_jets < limit else "entropy"


def choose_codec(
    codec: str | None,
    precision: str | None,
    n_jets: int | None = None,
    variables: Sequence[str] = KINEMATICS,
) -> str:
    """The codec used: ``ae`` without a precision, `default_codec` with one, unless given.

    ``n_jets`` (the jets to compress, when known) and ``variables`` pick between
    ``entropy`` and ``pcodec``. Raises `HepaeError` for an unknown codec or an array
    codec without a precision.
    """
    if codec is None:
        return default_codec(n_jets, variables) if precision is not None else "ae"
    if codec not in CODEC_CHOICES:
        raise HepaeError(f"unknown codec {codec!r}; choose from {', '.join(CODEC_CHOICES)}")
    if codec != "ae" and precision is None:
        raise HepaeError(f"codec {codec!r} needs a precision (e.g. --precision nanoaod)")
    return codec


def resolve_codec(codec: str | None, precision: str | None) -> str:
    """`choose_codec` for a whole command (the jets not yet counted); a bad precision SPEC
    fails here, before anything is read."""
    chosen = choose_codec(codec, precision)
    if precision is not None:
        parse_precision(precision)
    return chosen


def precision_for(precision: str | Precision, variables: Sequence[str]) -> Precision:
    """The SPEC's bounds, with E bounded as the mass when the SPEC names the mass but not E
    (jets stored with E instead of mass, as ATLAS Open Data; the presets name the mass)."""
    prec = parse_precision(precision)
    if "E" in variables and "E" not in prec and "mass" in prec:
        bounds = {**prec.bounds, "E": prec["mass"]}
        return Precision(bounds, prec.spec)
    return prec


@dataclass
class CodecPayload:
    """An encoded file: branches by ROOT name, their specs, and the JSON to store."""

    data: dict[str, np.ndarray]  # flat values per ROOT branch
    sizes: dict[str, np.ndarray]  # per-event sizes of the branches with their own counter
    specs: list[BranchSpec]  # the added branches, counters before their branches
    info: dict[str, Any]  # {"name", "info", "branches"}
    counts: np.ndarray  # jets per event


def _names(coll: str, key: str) -> tuple[str, str]:
    return f"{coll}Codec_{key}", f"n{coll}Codec_{key}"


def encode_payload(
    codec: str,
    x: np.ndarray,
    counts: np.ndarray,
    variables: Sequence[str],
    precision: str,
    coll: str,
    jet_counter: str,
    *,
    encoder: Transform | None = None,
    decoder: Transform | None = None,
    latent_bits: int | None = None,
) -> CodecPayload:
    """Encode the jets ``x`` (n, len(variables)) in model units with ``codec``.

    ``codec`` 'ae' needs ``encoder`` and ``decoder`` (latents plus corrections, see
    `~hepae_coffea.codecs.bounded_ae`); the others compress (pt, eta, phi, mass).
    """
    prec = precision_for(precision, variables)
    counts = np.asarray(counts, np.int64)
    columns = {v: np.ascontiguousarray(x[:, i]) for i, v in enumerate(variables)}
    if codec == "ae":
        from ..codecs import bounded_ae

        if encoder is None or decoder is None:
            raise HepaeError("codec 'ae' needs the model's encoder and decoder")
        enc = bounded_ae.encode(
            columns,
            counts,
            prec,
            encoder=encoder,
            decoder=decoder,
            variables=list(variables),
            latent_bits=latent_bits,
        )
    else:
        enc = get_codec(codec).encode(columns, counts, prec)
    data: dict[str, np.ndarray] = {}
    sizes: dict[str, np.ndarray] = {}
    specs: list[BranchSpec] = []
    entries: list[dict[str, str | None]] = []
    for key, arr in enc.branches.items():
        name, counter = _names(coll, key)
        a = np.ascontiguousarray(arr)
        dtype = np.dtype(a.dtype).newbyteorder("=").name
        if key in enc.entry_sizes:
            sz = np.asarray(enc.entry_sizes[key], np.int64)
            if len(sz) != len(counts) or int(sz.sum()) != len(a):
                raise HepaeError(f"codec {codec!r}: sizes of branch {key!r} do not match")
            specs.append(BranchSpec(counter, "int32", None, f"{codec} values per event"))
            specs.append(BranchSpec(name, dtype, counter, f"{codec} codec"))
            sizes[name] = sz
            entries.append({"key": key, "name": name, "counter": counter})
        else:
            if len(a) != int(counts.sum()):
                raise HepaeError(f"codec {codec!r}: branch {key!r} is not one value per jet")
            specs.append(BranchSpec(name, dtype, jet_counter, f"{codec} codec"))
            entries.append({"key": key, "name": name, "counter": None})
        data[name] = a
    info = {"name": codec, "precision": prec.spec, "info": enc.info, "branches": entries}
    return CodecPayload(data, sizes, specs, info, counts)


def _decode_flat(
    payload: CodecPayload, variables: Sequence[str], decoder: Transform | None = None
) -> np.ndarray:
    """Decode a payload held in memory (as decompress will decode the stored one)."""
    arrays = {b["name"]: payload.data[b["name"]] for b in payload.info["branches"]}
    return decode_payload(payload.info, arrays, payload.counts, variables, decoder=decoder)


def slice_block(
    payload: CodecPayload, e0: int, e1: int, j0: int, j1: int, counts: np.ndarray
) -> dict[str, Any]:
    """The branches of events [e0, e1) (jets [j0, j1)) as jagged arrays to fill."""
    out: dict[str, Any] = {}
    for name, a in payload.data.items():
        if name in payload.sizes:
            sz = payload.sizes[name]
            off = int(sz[:e0].sum())
            part = sz[e0:e1]
            out[name] = ak.unflatten(a[off : off + int(part.sum())], part)
            out["n" + name] = part.astype(np.int32)
        else:
            out[name] = ak.unflatten(a[j0:j1], counts)
    return out


def decode_payload(
    info: Mapping[str, Any],
    arrays: Mapping[str, Any],
    counts: np.ndarray,
    variables: Sequence[str],
    *,
    decoder: Transform | None = None,
) -> np.ndarray:
    """Decoded jets (n, len(variables)) float32 in model units from the stored branches."""
    codec = info["name"]
    branches = {}
    for b in info["branches"]:
        a = arrays[b["name"]]
        branches[b["key"]] = a if isinstance(a, np.ndarray) else ak.to_numpy(ak.flatten(a))
    if codec == "ae":
        from ..codecs import bounded_ae

        if decoder is None:
            raise HepaeError("codec 'ae' needs the model to decode")
        cols = bounded_ae.decode(branches, counts, info["info"], decoder=decoder)
    else:
        cols = get_codec(codec).decode(branches, counts, info["info"])
    return np.stack([np.asarray(cols[v], np.float32) for v in variables], axis=1)


def max_errors(
    x: np.ndarray, rec: np.ndarray, variables: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per variable: the largest absolute (circular for phi) and relative error."""
    out = {}
    for i, v in enumerate(variables):
        a = x[:, i].astype(np.float64)
        b = rec[:, i].astype(np.float64)
        d = circular_error(b, a) if v == "phi" else np.abs(b - a)
        rel = d / np.where(a != 0, np.abs(a), 1.0)
        out[v] = {"abs": float(d.max(initial=0.0)), "rel": float(rel.max(initial=0.0))}
    return out
