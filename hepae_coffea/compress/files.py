"""Real compression of ROOT files: jets replaced by latent values, and back.

``compress`` writes the input's jet tree with the jet variables the model covers
(``Jet_pt``, ``Jet_eta``, ... for a (pt, eta, phi, mass) model) replaced by the latent
branches ``Jet_z0``, ``Jet_z1``, ... (float32, optionally rounded to ``latent_bits`` mantissa
bits), at the place of the first replaced branch; every other branch keeps its name, type,
counter, title and position, and every other tree and string of the file is copied (what
uproot cannot write is listed, never copied half). The output uses the input's compression
algorithm and level unless told otherwise, and one basket per branch for each block of
``step_size``.

The model travels as plain weights and an architecture description
(:mod:`~hepae_coffea.model.weights`), never as code, or only as a reference (name and
SHA-256) with ``model_ref=True``. Files that uproot cannot rewrite (ATLAS PHYSLITE's xAOD
containers) are written as a flat tree of the event identifiers, the jets' latents and the
branches named in ``keep``; ``decompress`` then gives a NanoAOD-style flat tree
(``nJet``, ``Jet_pt``, ...) in the file's own units. Both stream chunk by chunk, keep event
order and jet counts exactly, and write atomically.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch

from .. import __version__
from ..codecs import CodecError, parse_precision
from ..errors import HepaeError, InputFileError, MissingBranchError, ModelFileError
from ..io.atomic import atomic_output, is_disk_full
from ..io.jets import _find, pad_events
from ..io.rootfile import open_root
from ..model.cache import in_blocks, resolve_device
from ..model.export import default_model_path, file_sha256
from ..model.weights import blob_sha256, load_weights, weights_from_model_file
from ..variables.registry import from_gev, to_gev
from .choose import (
    KINEMATICS,
    CodecPayload,
    choose_codec,
    decode_payload,
    encode_payload,
    max_errors,
    slice_block,
)
from .root_copy import (
    BranchSpec,
    Unwritable,
    branch_specs,
    copy_object,
    create_tree,
    file_compression,
    fill,
    finish_tree,
    register_streamers,
    tree_keys,
)

__all__ = [
    "COMPRESSIONS",
    "ChunkJets",
    "CompressionSummary",
    "JetSource",
    "compress",
    "decompress",
    "read_compression_info",
    "truncate_mantissa",
    "write_compressed_chunk",
]

log = logging.getLogger(__name__)

COMPRESSIONS = ("zlib", "lzma", "lz4", "zstd")
INFO_KEY = "hepae_compression"
MODEL_TREE = "hepae_model"
MODEL_KEY = MODEL_TREE  # the stored model's object (kept name for the benchmarks)
LEGACY_MODEL_KEY = "hepae_model_b64"
FORMAT = "hepae-coffea-compressed"
FORMAT_VERSION = 2
#: the least level used when the input's algorithm is kept (the input's own if higher)
_AT_LEAST = {"ZLIB": 6, "LZMA": 9, "ZSTD": 5, "LZ4": 4}


@dataclass
class CompressionSummary:
    """What a compress or decompress call wrote."""

    input_paths: list[str]
    output: str
    events: int
    jets: int
    bytes_in: int
    bytes_out: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Output size over input size."""
        return self.bytes_out / self.bytes_in if self.bytes_in else float("nan")


@dataclass
class JetSource:
    """Where the jets are in an input file and in which units.

    ``branches`` maps each model variable to its branch (``{"pt": "Jet_pt", ...}``);
    ``layout`` is ``"copy"`` (the tree is rewritten branch for branch) or ``"flat"`` (only
    ``event_ids``, the jets and ``keep`` are written, for trees uproot cannot rewrite).
    ``mass_from_energy``: the jets have E instead of mass (ATLAS Open Data) and the model's
    mass is computed from E (``branches`` then holds ``E``, not ``mass``).
    """

    tree: str = "Events"
    collection: str = "Jet"
    branches: dict[str, str] = field(default_factory=dict)
    units: str = "GeV"
    layout: str = "copy"
    event_ids: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    mass_from_energy: bool = False


#: the four-vector as ATLAS Open Data ntuples store it (E instead of mass)
ENERGY_KINEMATICS = ("pt", "eta", "phi", "E")
#: the default codec with a precision for jets with E (the entropy coder's model is
#: built for the mass)
ENERGY_DEFAULT_CODEC = "quantize"

#: ATLAS DAOD_PHYSLITE: small-R jets of ``CollectionTree`` in MeV
PHYSLITE = {
    "tree": "CollectionTree",
    "collection": "AnalysisJets",
    "branches": {
        "pt": "AnalysisJetsAuxDyn.pt",
        "eta": "AnalysisJetsAuxDyn.eta",
        "phi": "AnalysisJetsAuxDyn.phi",
        "mass": "AnalysisJetsAuxDyn.m",
    },
    "units": "MeV",
    "event_ids": [
        "EventInfoAuxDyn.runNumber",
        "EventInfoAuxDyn.eventNumber",
        "EventInfoAuxDyn.lumiBlock",
        "EventInfoAuxDyn.mcChannelNumber",
        "EventInfoAuxDyn.mcEventNumber",
    ],
}


def to_model_units(values: np.ndarray, variables: Sequence[str], units: str) -> np.ndarray:
    """Convert jet values from the file's ``units`` (MeV or GeV) to the model's GeV."""
    return to_gev(values, variables, units)


def from_model_units(values: np.ndarray, variables: Sequence[str], units: str) -> np.ndarray:
    """Convert decoded GeV values back to the file's ``units``."""
    return from_gev(values, variables, units)


def detect_source(
    path: str,
    variables: Sequence[str],
    *,
    fmt: str | None = None,
    units: str | None = None,
    collection: str | None = None,
    tree: str | None = None,
) -> tuple[dict[str, Any], str]:
    """`resolve_source` keyword arguments for ``path`` from `formats.detect_format`,
    and its one-line description.

    Jets with E instead of mass (ATLAS Open Data) give ``branches`` for pt, eta, phi and E
    and ``energy=True`` (see `energy_route`). Raises `InputFileError` for formats compress
    cannot write back (pickles, parquet) or jets without a branch for each of ``variables``.
    """
    from ..io.formats import detect_format

    found = detect_format(path, fmt=fmt, units=units, collection=collection, tree=tree)
    if found.tree is None:
        raise InputFileError(f"{path}: {found.title} files cannot be compressed (ROOT files only)")
    missing = [v for v in variables if v in KINEMATICS and v not in found.branches]
    if missing == ["mass"] and all(v in found.branches for v in ENERGY_KINEMATICS):
        kw_e: dict[str, Any] = {"units": found.units, "energy": True}
        kw_e["branches"] = {v: found.branches[v] for v in ENERGY_KINEMATICS}
        kw_e["tree"], kw_e["collection"] = found.tree, found.prefix.rstrip("_.")
        return kw_e, found.describe("GeV")
    if missing:
        raise InputFileError(
            f"{path}: {found.title} jets have {'/'.join(found.branches)} branches; compress "
            f"supports this format only with {'/'.join(KINEMATICS)} branches (no {missing})"
        )
    kw: dict[str, Any] = {"units": found.units}
    if all(v in found.branches for v in variables):
        kw["branches"] = {v: found.branches[v] for v in variables}
    # else: the model's other variables are found as <collection>_<variable>
    if found.name == "physlite":  # the flat layout with PHYSLITE's event identifiers
        kw["collection"] = found.prefix.split("AuxDyn")[0]
    else:
        kw["tree"], kw["collection"] = found.tree, found.prefix.rstrip("_.")
    return kw, found.describe("GeV")


def energy_route(
    kw: dict[str, Any],
    codec: str,
    variables: Sequence[str],
    precision: str | None,
    where: str,
    *,
    event_level: bool = False,
) -> tuple[list[str], dict[str, Any]]:
    """The variables to compress for a source found by `detect_source`, and the keyword
    arguments for `resolve_source`.

    Jets with E instead of mass: the array codecs store the file's own pt, eta, phi and E
    (each within its bound); the autoencoder takes the mass, computed from E, and
    decompress writes E back from the decoded values. Raises `HepaeError` for what cannot
    be done with E (an event-level model, a model with other variables, ``ae`` with a
    precision, which would bound the mass rather than E).
    """
    kw = dict(kw)
    if not kw.pop("energy", False):
        return list(variables), kw
    if codec != "ae":
        return list(ENERGY_KINEMATICS), kw
    if list(variables) != list(KINEMATICS) or event_level:
        raise HepaeError(
            f"{where}: the jets have E instead of mass; the autoencoder route computes the mass "
            f"from E for jet-level (pt, eta, phi, mass) models only, not {list(variables)}"
            + (" (event-level)" if event_level else "")
        )
    if precision is not None:
        raise HepaeError(
            f"{where}: the jets have E instead of mass; --codec ae --precision would bound the "
            f"mass computed from E, not E: use --codec quantize or truncate for E within a bound"
        )
    kw["mass_from_energy"] = True
    return list(variables), kw


def _file_variables(src: JetSource, variables: Sequence[str]) -> list[str]:
    """The file's variables behind ``variables`` (E for the mass of Open Data jets)."""
    if not src.mass_from_energy:
        return list(variables)
    return ["E" if v == "mass" else v for v in variables]


def mass_from_energy(pt: np.ndarray, eta: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """sqrt(max(E^2 - p^2, 0)) with p = pt cosh(eta) (float64): jets with E < p (negative
    m^2, outside the model's domain) get mass 0; `negative_m2` counts them."""
    p = np.asarray(pt, np.float64) * np.cosh(np.asarray(eta, np.float64))
    e = np.asarray(energy, np.float64)
    return np.sqrt(np.maximum((e - p) * (e + p), 0.0))


def negative_m2(pt: np.ndarray, eta: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Jets whose E is below |p| = pt cosh(eta) (E^2 < p^2: no real mass)."""
    p = np.asarray(pt, np.float64) * np.cosh(np.asarray(eta, np.float64))
    return np.asarray(energy, np.float64) < p


def energy_from_mass(rec: np.ndarray, variables: Sequence[str]) -> np.ndarray:
    """Decoded (pt, eta, phi, mass) with the mass column replaced by
    E = sqrt(m^2 + (pt cosh eta)^2) (any common energy unit)."""
    out = np.array(rec, np.float64, copy=True)
    i, ipt, ieta = (list(variables).index(v) for v in ("mass", "pt", "eta"))
    out[:, i] = np.hypot(out[:, ipt] * np.cosh(out[:, ieta]), out[:, i])
    return out


def truncate_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """Round float32 values to ``bits`` mantissa bits (round to nearest, ties away from 0).

    ``bits`` in 0..23; 23 returns the values unchanged. Non-finite values are kept. (The
    truncate codec's :func:`~hepae_coffea.codecs.truncate.round_mantissa`; a ValueError for
    bits outside 0..23.)
    """
    from ..codecs.truncate import round_mantissa

    return round_mantissa(x, bits)


def _compression(name: str | None, level: int | None, f=None):
    """The output compression: the input file's own unless ``name`` is given."""
    import uproot

    classes = {"zlib": uproot.ZLIB, "lzma": uproot.LZMA, "lz4": uproot.LZ4, "zstd": uproot.ZSTD}
    if name is None:
        own = file_compression(f) if f is not None else None
        if own is None:
            return uproot.ZLIB(_AT_LEAST["ZLIB"]) if level is None else uproot.ZLIB(level)
        if level is None:  # the input's algorithm, at least at its usual level
            level = max(int(own.level), _AT_LEAST.get(type(own).__name__, 0))
        return type(own)(level)
    if name not in classes:
        raise ValueError(f"compression {name!r} not in {COMPRESSIONS}")
    return classes[name](5 if level is None else level)


def _describe_compression(comp) -> list[Any]:
    return [type(comp).__name__.lower(), int(comp.level)] if comp is not None else ["none", 0]


def _tree(f, path: str, tree: str):
    try:
        if tree not in f:
            raise InputFileError(f"{path}: no tree {tree!r}; keys: {f.keys(cycle=False)}")
        t = f[tree]
        t.keys()
    except HepaeError:
        raise
    except Exception as err:  # noqa: BLE001
        raise InputFileError(f"{path}: cannot be read as a ROOT file ({err})") from None
    return t


def resolve_source(
    f,
    path: str,
    variables: Sequence[str],
    *,
    tree: str | None = None,
    collection: str | None = None,
    branches: Mapping[str, str] | None = None,
    units: str | None = None,
    keep: Sequence[str] = (),
    mass_from_energy: bool = False,
) -> JetSource:
    """Work out the tree, jet branches, units and layout for ``variables`` (NanoAOD style
    ``<collection>_<variable>`` by default; ATLAS PHYSLITE when the file has its tree)."""
    if tree is None and "Events" not in f and PHYSLITE["tree"] in f:
        src = JetSource(**{k: v for k, v in PHYSLITE.items()})  # type: ignore[arg-type]
    else:
        src = JetSource(tree=tree or "Events", collection=collection or "Jet")
    if collection is not None:
        src.collection = collection
    src.mass_from_energy = mass_from_energy
    t = _tree(f, path, src.tree)
    keys = t.keys()
    if branches:
        src.branches = dict(branches)
    elif not src.branches:
        prefix = src.collection + "_"
        for v in variables:
            name = _find(keys, prefix, v)
            if name is None:
                raise MissingBranchError(
                    f"{path}: no branch for jet variable {v!r} of collection "
                    f"{src.collection!r}; available: {sorted(k for k in keys if k.startswith(prefix))}"
                )
            src.branches[v] = name
    missing = [b for b in src.branches.values() if b not in keys]
    if missing:
        raise MissingBranchError(f"{path}: tree {src.tree!r} has no branch {missing}")
    if units is not None:
        src.units = units
    src.keep = list(keep)
    absent = [k for k in src.keep if k not in keys]
    if absent:
        raise MissingBranchError(f"{path}: no branch {absent} to keep in tree {src.tree!r}")
    try:
        branch_specs(t)
        src.layout = "copy"
    except Unwritable:
        src.layout = "flat"
        src.event_ids = [b for b in src.event_ids if b in keys]
    return src


# --- the main tree ---------------------------------------------------------------------


@dataclass
class _Plan:
    """Specs of the compressed main tree and how to fill them."""

    specs: list[BranchSpec]  # the compressed tree
    jet_specs: list[BranchSpec]  # the replaced jet branches as restored
    positions: list[int]  # their positions in the restored tree
    added: list[str]  # latent (and extra-jet) branches of the compressed tree
    read: list[str]  # input branches to read
    counter: str  # the jets' counter


def _layout_info(src: JetSource, plan: _Plan, out_tree: str, latent_bits) -> dict[str, Any]:
    """What decompress needs to know of the source and the compressed tree's layout."""
    return {
        "source": {
            "tree": src.tree,
            "collection": src.collection,
            "branches": src.branches,
            "units": src.units,
            "layout": src.layout,
            "event_ids": src.event_ids,
            "keep": src.keep,
            **({"mass_from_energy": True} if src.mass_from_energy else {}),
        },
        "tree": out_tree,
        "latent_bits": latent_bits,
        "jet_specs": [s.to_dict() for s in plan.jet_specs],
        "jet_positions": plan.positions,
        "added": plan.added,
        "jet_branches": [s.name for s in plan.jet_specs],
        "counter": plan.counter,
    }


def _latent_names(collection: str, k: int, event_level: bool) -> list[str]:
    return [f"{collection}{'Latent' if event_level else ''}_z{i}" for i in range(k)]


def _extra_branch(collection: str, jet_branch: str) -> str:
    """The branch of an event-level file holding the jets beyond the model's of
    ``jet_branch`` (``<collection>_<variable>``): ``<collection>Extra_<variable>``, the
    variable's own underscores kept."""
    return f"{collection}Extra_{jet_branch.partition('_')[2]}"


def _plan(
    t,
    src: JetSource,
    variables: Sequence[str],
    k: int,
    event_jets: int | None,
    added: Sequence[BranchSpec] | None = None,
) -> _Plan:
    file_vars = _file_variables(src, variables)
    cols = [src.branches[v] for v in file_vars]
    colset = set(cols)
    out_coll = src.collection if src.layout == "copy" else "Jet"
    names = _latent_names(out_coll, k, event_jets is not None)
    if src.layout == "copy":
        specs = branch_specs(t)
        jet_specs = [next(s for s in specs if s.name == c) for c in cols]
        counter = jet_specs[0].counter or "n" + src.collection
        read = [s.name for s in specs]
        index = {s.name: i for i, s in enumerate(specs)}
        positions = [index[c] for c in cols]  # in the order of jet_specs
        kept = [s for s in specs if s.name not in colset]
    else:  # flat: identifiers, kept branches, the jets' counter and latents
        kept = [_flat_spec(t, b) for b in [*src.event_ids, *src.keep]]
        counter = "nJet"
        kept.append(BranchSpec(counter, "uint32", None, "number of jets"))
        jet_specs = [
            BranchSpec(f"Jet_{v}", _leaf_dtype(t, c), counter, f"jet {v} [{src.units}]")
            for v, c in zip(file_vars, cols, strict=True)
        ]
        read = [*src.event_ids, *src.keep, *cols]
        positions = list(range(len(kept), len(kept) + len(jet_specs)))
    first = min(positions)
    if added is not None:  # a codec's branches
        lat, extra = list(added), []
    elif event_jets is None:
        lat = [BranchSpec(n, "float32", counter, "latent") for n in names]
        extra: list[BranchSpec] = []
    else:
        lat = [BranchSpec(n, "float32", None, "latent (event)") for n in names]
        ec = f"n{out_coll}Extra"
        extra = [BranchSpec(ec, "int32", None, "jets beyond the compressed ones")] + [
            BranchSpec(_extra_branch(out_coll, s.name), s.dtype, ec, s.title) for s in jet_specs
        ]
    out = kept[:first] + lat + extra + kept[first:]
    added = [s.name for s in lat + extra]
    return _Plan(out, jet_specs, positions, added, read, counter)


def _restored_specs(compressed: Sequence[BranchSpec], info: Mapping[str, Any]) -> list[BranchSpec]:
    """The original tree's specs from the compressed tree's and the stored jet specs."""
    added = set(info["added"])
    out = [s for s in compressed if s.name not in added]
    for pos, d in sorted(zip(info["jet_positions"], info["jet_specs"], strict=True)):
        out.insert(pos, BranchSpec.from_dict(d))
    return out


def _leaf_dtype(t, name: str) -> str:
    interp = t[name].interpretation
    dt = getattr(getattr(interp, "content", interp), "to_dtype", np.dtype("float32"))
    return np.dtype(dt).newbyteorder("=").name


def _flat_spec(t, name: str) -> BranchSpec:
    """A kept or identifier branch of a flat output: scalar numbers or numeric vectors."""
    import uproot

    interp = t[name].interpretation
    if (
        not isinstance(interp, uproot.interpretation.numerical.AsDtype)
        or np.dtype(interp.to_dtype).shape
    ):
        raise InputFileError(
            f"branch {name!r} ({interp}) cannot be kept: only branches of one number per "
            f"event can be kept in a flat tree"
        )
    return BranchSpec(name, np.dtype(interp.to_dtype).newbyteorder("=").name, None, t[name].title)


def _jets(arrays, src: JetSource, variables: Sequence[str], where: str):
    file_vars = _file_variables(src, variables)
    cols = [src.branches[v] for v in file_vars]
    counts = ak.num(arrays[cols[0]], axis=1)
    for c in cols[1:]:
        if not ak.all(ak.num(arrays[c], axis=1) == counts):
            raise InputFileError(f"{where}: branch {c!r} has other jet counts than {cols[0]!r}")
    x = np.stack([ak.to_numpy(ak.flatten(arrays[c])).astype(np.float64) for c in cols], axis=1)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise HepaeError(
            f"{where}: {int(bad.sum())} jet(s) with non-finite {list(variables)} values; a lossy "
            f"latent cannot store them (drop or fix those jets first)"
        )
    x = to_model_units(x, file_vars, src.units)
    if src.mass_from_energy:  # the model's mass from the file's E
        i, ipt, ieta = (list(variables).index(v) for v in ("mass", "pt", "eta"))
        x[:, i] = mass_from_energy(x[:, ipt], x[:, ieta], x[:, i])
    return counts, x.astype(np.float32)


def _compress_block(
    arrays,
    module,
    plan: _Plan,
    src: JetSource,
    variables,
    latent_bits,
    event_jets,
    where,
    device: str = "cpu",
) -> tuple[dict[str, Any], int]:
    counts, x = _jets(arrays, src, variables, where)
    k = int(module.latent_dim)
    out_coll = src.collection if src.layout == "copy" else "Jet"
    names = _latent_names(out_coll, k, event_jets is not None)
    data: dict[str, Any] = {}
    for s in plan.specs:
        if s.name in arrays.fields:
            data[s.name] = arrays[s.name]
    if src.layout == "flat":
        data[plan.counter] = ak.to_numpy(counts).astype(np.uint32)
    if event_jets is None:
        if len(x):
            with torch.inference_mode():
                (z,) = in_blocks(
                    module.encode, torch.from_numpy(np.ascontiguousarray(x)), device=device
                )
            z = z.numpy()
        else:
            z = np.zeros((0, k), np.float32)
        if latent_bits is not None:
            z = truncate_mantissa(z, latent_bits)
        for i, n in enumerate(names):
            data[n] = ak.unflatten(np.ascontiguousarray(z[:, i]), counts)
    else:
        c = ak.to_numpy(counts)
        xe, me = pad_events(x, c, event_jets)
        with torch.inference_mode():
            (z,) = in_blocks(
                module.encode,
                torch.from_numpy(xe),
                torch.from_numpy(me.astype(np.float32)),
                device=device,
            )
        z = z.numpy()
        if latent_bits is not None:
            z = truncate_mantissa(z, latent_bits)
        for i, n in enumerate(names):
            data[n] = np.ascontiguousarray(z[:, i])
        ec = f"n{out_coll}Extra"
        data[ec] = np.maximum(c - event_jets, 0).astype(np.int32)
        for i, js in enumerate(plan.jet_specs):  # one spec per variable, in their order
            jets = arrays[src.branches[variables[i]]]
            data[_extra_branch(out_coll, js.name)] = jets[:, event_jets:]  # the input's values
    return data, len(x)


# --- model storage ---------------------------------------------------------------------


def _model_info(name: str, file_sha: str, blob: bytes, meta, model_ref: bool) -> dict[str, Any]:
    """The compression record's ``model`` entry (name, hashes, architecture summary)."""
    return {
        "storage": "reference" if model_ref else "embedded",
        "name": name,
        "file_sha256": file_sha,
        "weights_sha256": blob_sha256(blob),
        "weights_bytes": len(blob),
        **{
            k: meta.get(k)
            for k in ("level", "event_jets", "kind", "bottleneck", "levels", "latent_dim")
        },
        "variables": meta.get("variables"),
    }


def _write_model(fout, blob: bytes) -> None:
    fout.mktree(MODEL_TREE, {"weights": np.uint8}, title="hepae-coffea model weights (no code)")
    fout[MODEL_TREE].extend({"weights": np.frombuffer(blob, np.uint8)})


def _load_model_file(path: Path) -> tuple[bytes, bytes, dict[str, Any]]:
    if not path.exists():
        raise ModelFileError(f"{path}: model file not found")
    model_bytes = path.read_bytes()
    blob, meta = weights_from_model_file(model_bytes, str(path))
    return model_bytes, blob, meta


# --- compress ----------------------------------------------------------------------------


def compress(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    model: str | os.PathLike | None = None,
    *,
    codec: str | None = None,
    precision: str | None = None,
    latent_bits: int | None = None,
    compression: str | None = None,
    level: int | None = None,
    tree: str | None = None,
    collection: str | None = None,
    branches: Mapping[str, str] | None = None,
    units: str | None = None,
    fmt: str | None = None,
    keep: Sequence[str] = (),
    model_ref: bool = False,
    allow_larger: bool = False,
    step_size: str | int = "100 MB",
    overwrite: bool = False,
    device: str = "cpu",
) -> CompressionSummary:
    """Write ``output`` with the jets of ``inputs`` replaced by the model's latents.

    Parameters
    ----------
    inputs : path or list of paths
        ROOT files with the same tree layout (written one after the other).
    model : path, optional
        hepae-coffea model file; the shipped default when omitted.
    codec : {"ae", "truncate", "quantize", "pcodec", "entropy"}, optional
        ``ae``: the model's latents (with ``precision``: plus stored corrections so that
        every value meets it); the others compress (pt, eta, phi, mass) to ``precision``
        without a model. Default: ``ae`` without ``precision``; with it ``entropy`` for
        inputs of at least ``ENTROPY_MIN_JETS`` jets, ``pcodec`` for fewer
        (`~hepae_coffea.compress.choose.default_codec`).
    precision : str, optional
        Precision SPEC (``nanoaod``, ``atlas-high``, ``atlas-low`` or ``VAR=Nbits|X|Xrel``
        tokens); absolute bounds on pt and mass are in GeV.
    latent_bits : int, optional
        Round the float32 latents to this many mantissa bits (0..23).
    compression, level : str, int, optional
        ROOT compression of the output (zlib, lzma, lz4, zstd) and its level; by default
        the first input's own algorithm and level.
    tree, collection, branches, units : optional
        Jet tree, collection prefix, ``{variable: branch}`` and the file's units (GeV or
        MeV). Without ``tree``, ``collection`` and ``branches`` (or with ``fmt``) the first
        input's format is detected (`formats.detect_format`: NanoAOD, PHYSLITE, flat
        trees with pt/eta/phi/mass); ``units`` overrides the format's.
    fmt : str, optional
        Force a format of `formats.FORMATS` instead of detecting it.
    keep : sequence of str
        For trees written flat (PHYSLITE), further branches to keep.
    model_ref : bool
        Store only the model's name and SHA-256 (decompress then needs the model file).
    allow_larger : bool
        Write the output even if it is bigger than the inputs (refused otherwise).
    device : {"auto", "cpu", "cuda"}
        Where the encoder runs (the latents written are the same up to float rounding).
    """
    import uproot

    t0 = time.perf_counter()
    paths = [os.fspath(p) for p in ([inputs] if isinstance(inputs, str | os.PathLike) else inputs)]
    if not paths:
        raise InputFileError("no input files given")
    codec_given, codec = codec, choose_codec(codec, precision)
    if precision is not None:
        parse_precision(precision)  # a bad SPEC fails before anything is read
    device = resolve_device(device)
    if codec == "ae":
        model_path = Path(model) if model is not None else default_model_path()
        _, blob, meta = _load_model_file(model_path)
        module, _ = load_weights(blob, blob_sha256(blob), str(model_path))  # what decompress runs
        module = module.to(device)
        variables = [v["name"] for v in meta["variables"]]
        event_jets = int(meta["event_jets"]) if meta.get("level") == "event" else None
        if precision is not None and event_jets is not None:
            raise HepaeError(
                f"{model_path}: --precision with the autoencoder needs a jet-level model "
                f"(this one is event-level)"
            )
    else:
        if model is not None or model_ref or latent_bits is not None:
            raise HepaeError(
                f"codec {codec!r} uses no model: --model, --model-ref and "
                f"--latent-bits apply to --codec ae only"
            )
        module, blob, meta, event_jets = None, b"", {}, None
        variables = list(KINEMATICS)
    if latent_bits is not None and not 0 <= latent_bits <= 23:
        raise ValueError(f"--latent-bits must be in 0..23, got {latent_bits}")
    files = [open_root(p) for p in paths]  # all inputs checked before writing
    described = None
    if branches is None and (fmt is not None or (tree is None and collection is None)):
        kw, described = detect_source(
            paths[0], variables, fmt=fmt, units=units, collection=collection, tree=tree
        )
        if kw.get("energy") and codec_given is None and codec != "ae":
            codec = codec_given = ENERGY_DEFAULT_CODEC  # not the jet-count default below
        variables, kw = energy_route(
            kw, codec, variables, precision, paths[0], event_level=event_jets is not None
        )
    else:
        kw = {"tree": tree, "collection": collection, "branches": branches, "units": units}
    src = resolve_source(files[0], paths[0], variables, keep=keep, **kw)
    trees = [_tree(f, p, src.tree) for f, p in zip(files, paths, strict=True)]
    keys0 = trees[0].keys()
    for p, t in zip(paths, trees, strict=True):
        if t.keys() != keys0:
            raise InputFileError(f"{p}: branches differ from {paths[0]}'s")
    comp = _compression(compression, level, files[0])
    payload: CodecPayload | None = None
    if precision is None:
        plan = _plan(trees[0], src, variables, int(meta["latent_dim"]), event_jets)
    else:
        counter = _plan(trees[0], src, variables, 0, None).counter
        all_counts, x = _read_jets(trees, paths, src, variables, step_size)
        if codec_given is None:  # the default depends on the number of jets
            codec = choose_codec(None, precision, n_jets=len(x), variables=variables)
        enc_fn = dec_fn = None
        if module is not None:
            enc_fn, dec_fn = _transform(module.encode, device), _transform(module.decode, device)
        payload = _encode_payload(
            paths[0],
            codec,
            x,
            all_counts,
            variables,
            precision,
            src.collection if src.layout == "copy" else "Jet",
            counter,
            encoder=enc_fn,
            decoder=dec_fn,
            latent_bits=latent_bits,
        )
        plan = _plan(trees[0], src, variables, 0, None, payload.specs)
    out_tree = src.tree if src.layout == "copy" else "Events"
    events = jets = 0
    energy_parts: list[tuple[np.ndarray, np.ndarray]] | None = [] if src.mass_from_energy else None
    copied, skipped = _other_objects(files[0], src.tree)
    if len(paths) > 1 and copied:
        log.warning("other trees and objects are copied from the first input only")
    out = Path(output)
    bytes_in = sum(os.path.getsize(p) for p in paths)
    with atomic_output(out, overwrite) as tmp:
        with uproot.recreate(tmp, compression=comp) as fout:
            register_streamers(fout)
            wt = create_tree(fout, out_tree, plan.specs, trees[0].title, _capacity(trees))
            for p, f, t in zip(paths, files, trees, strict=True):
                try:
                    for arrays in t.iterate(plan.read, step_size=step_size, library="ak"):
                        if payload is None:
                            data, n = _compress_block(
                                arrays,
                                module,
                                plan,
                                src,
                                variables,
                                latent_bits,
                                event_jets,
                                p,
                                device,
                            )
                            if energy_parts is not None:
                                energy_parts.append(_energy_block(arrays, data, src, plan))
                        else:
                            data, n = _codec_block(
                                arrays, plan, src, variables, payload, events, jets
                            )
                        fill(fout, wt, plan.specs, data)
                        events += len(arrays)
                        jets += n
                except HepaeError:
                    raise
                except Exception as err:  # truncated baskets etc.; re-raised when disk full
                    if is_disk_full(err):  # the output's fault, not the input's
                        raise
                    raise InputFileError(f"{p}: failed while reading ({err})") from None
                finally:
                    if f is not files[0]:
                        f.close()
            finish_tree(fout, wt)
            _copy_others(files[0], fout, copied)
            files[0].close()
            info = _record(
                _model_info(model_path.name, file_sha256(model_path), blob, meta, model_ref)
                if codec == "ae"
                else None,
                payload,
                variables,
                _layout_info(src, plan, out_tree, latent_bits),
                events,
                jets,
                comp,
                [os.path.basename(p) for p in paths],
                copied=copied,
                not_copied=skipped,
            )
            fout[INFO_KEY] = json.dumps(info)
            if codec == "ae" and not model_ref:
                _write_model(fout, blob)
        bytes_out = os.path.getsize(tmp)
        if bytes_out > bytes_in and not allow_larger:
            hint = (
                ""
                if model_ref or codec != "ae"
                else f" (the embedded model takes {len(blob)} bytes; try --model-ref)"
            )
            raise HepaeError(
                f"{out}: the compressed file would be {bytes_out} bytes, more than the input's "
                f"{bytes_in}{hint}; nothing written (--allow-larger writes it anyway)"
            )
    summary = CompressionSummary(
        paths,
        str(out),
        events,
        jets,
        bytes_in,
        out.stat().st_size,
        time.perf_counter() - t0,
        {
            "latent_bits": latent_bits,
            "layout": src.layout,
            "tree": src.tree,
            "units": src.units,
            "model_storage": ("reference" if model_ref else "embedded") if codec == "ae" else None,
            "codec": codec,
            "precision": precision,
            "format": described,
            **(_codec_summary(payload, x, variables, dec_fn) if payload is not None else {}),
            **(
                {"energy": _energy_summary(energy_parts, module, variables, device)}
                if energy_parts is not None
                else {}
            ),
            "copied": copied,
            "not_copied": skipped,
        },
    )
    log.info(
        "compressed %d events (%d jets): %d -> %d bytes", events, jets, bytes_in, summary.bytes_out
    )
    return summary


def _read_jets(trees, paths, src: JetSource, variables, step_size) -> tuple[np.ndarray, np.ndarray]:
    """All inputs' jet counts and (n, len(variables)) jets in model units."""
    counts, xs = [], []
    cols = [src.branches[v] for v in _file_variables(src, variables)]
    for p, t in zip(paths, trees, strict=True):
        try:
            for arrays in t.iterate(cols, step_size=step_size, library="ak"):
                c, x = _jets(arrays, src, variables, p)
                counts.append(ak.to_numpy(c).astype(np.int64))
                xs.append(x)
        except HepaeError:
            raise
        except Exception as err:  # noqa: BLE001
            raise InputFileError(f"{p}: failed while reading ({err})") from None
    n = len(variables)
    return (
        np.concatenate(counts) if counts else np.zeros(0, np.int64),
        np.concatenate(xs) if xs else np.zeros((0, n), np.float32),
    )


def _energy_block(arrays, data, src: JetSource, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """The original (pt, eta, E) in GeV and the stored latents of one block (Open Data)."""
    cols = [src.branches[v] for v in ("pt", "eta", "E")]
    orig = np.stack([ak.to_numpy(ak.flatten(arrays[c])).astype(np.float64) for c in cols], 1)
    z = np.stack([ak.to_numpy(ak.flatten(data[n])) for n in plan.added], axis=1)
    return to_model_units(orig, ["pt", "eta", "E"], src.units), z.astype(np.float32)


def _energy_summary(parts, module, variables, device: str) -> dict[str, Any]:
    """E restored from the decoded (pt, eta, mass), as decompress writes it, against the
    file's E: the largest errors, and the jets with E < |p| (no real mass: out of domain)."""
    k = int(module.latent_dim)
    orig = np.concatenate([o for o, _ in parts]) if parts else np.zeros((0, 3))
    z = np.concatenate([z for _, z in parts]) if parts else np.zeros((0, k), np.float32)
    rec = _transform(module.decode, device)(z) if len(z) else np.zeros((0, len(variables)))
    e_rec = energy_from_mass(rec.astype(np.float64), variables)[:, list(variables).index("mass")]
    e = orig[:, 2]
    d = np.abs(e_rec - e)
    rel = np.divide(d, np.abs(e), out=np.where(d > 0, np.inf, 0.0), where=e != 0)
    neg = negative_m2(orig[:, 0], orig[:, 1], e)

    def largest(mask: np.ndarray) -> dict[str, float]:
        return {"abs": float(d[mask].max(initial=0.0)), "rel": float(rel[mask].max(initial=0.0))}

    return {
        "jets": len(e),
        "jets_negative_m2": int(neg.sum()),
        "max_error": largest(np.ones(len(e), bool)),
        "max_error_real_mass": largest(~neg),
        "rel_error_q68": float(np.quantile(rel, 0.68)) if len(rel) else 0.0,
    }


def _encode_payload(
    where: str, codec: str, x: np.ndarray, counts, variables, *args, **kw
) -> CodecPayload:
    """`encode_payload`, saying when a codec cannot take jets stored with E."""
    try:
        return encode_payload(codec, x, counts, variables, *args, **kw)
    except CodecError as err:
        if "E" not in variables:
            raise
        raise CodecError(
            f"{where}: the jets have E instead of mass, which codec {codec!r} cannot store "
            f"({err}); "
            f"use --codec quantize or truncate"
        ) from None


def _transform(fn, device: str):
    """A numpy (n, a) float32 -> (n, b) float32 wrapper of a model's encode or decode."""

    def call(a: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            (r,) = in_blocks(
                fn, torch.from_numpy(np.ascontiguousarray(a, np.float32)), device=device
            )
        return r.numpy()

    return call


def _record(
    model_info: dict[str, Any] | None,
    payload: CodecPayload | None,
    variables: Sequence[str],
    layout: dict[str, Any],
    events: int,
    jets: int,
    comp,
    inputs: list[str],
    **more: Any,
) -> dict[str, Any]:
    """The compression record stored as ``hepae_compression`` (whole files and chunks)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "model": model_info,
        "codec": payload.info if payload is not None else {"name": "ae"},
        "variables": list(variables),
        **layout,
        "events": events,
        "jets": jets,
        "compression": _describe_compression(comp),
        "inputs": inputs,
        **more,
    }


def _codec_block(arrays, plan: _Plan, src: JetSource, variables, payload, e0: int, j0: int):
    """One block of the compressed tree: kept branches and the codec's slices."""
    counts = ak.to_numpy(ak.num(arrays[src.branches[variables[0]]], axis=1)).astype(np.int64)
    return _codec_data(arrays, plan, src, payload, counts, e0, j0)


def _codec_data(arrays, plan: _Plan, src: JetSource, payload, counts, e0: int, j0: int):
    """Kept branches of ``arrays`` and the codec's slices for events with ``counts`` jets."""
    data: dict[str, Any] = {s.name: arrays[s.name] for s in plan.specs if s.name in arrays.fields}
    if src.layout == "flat":
        data[plan.counter] = counts.astype(np.uint32)
    n = int(counts.sum())
    data.update(slice_block(payload, e0, e0 + len(counts), j0, j0 + n, counts))
    return data, n


def _codec_summary(payload: CodecPayload, x: np.ndarray, variables, decoder) -> dict[str, Any]:
    """Max errors of the stored jets (decoded here as decompress will) and corrections."""
    from .choose import _decode_flat

    rec = _decode_flat(payload, variables, decoder)
    out: dict[str, Any] = {"max_error": max_errors(x, rec, variables)}
    inner = payload.info["info"]
    if "fraction_jets_corrected" in inner:
        out["fraction_corrected"] = inner["fraction_jets_corrected"]
    return out


def _capacity(trees) -> int:
    """Baskets reserved per branch: one per input and block, plus one."""
    return len(trees) + 1


def _other_objects(f, main_tree: str) -> tuple[list[str], list[dict[str, str]]]:
    """Names of the other objects that can be copied, and those that cannot (with why)."""
    copied, skipped = [], []
    for name, cls in tree_keys(f):
        if name == main_tree:
            continue
        if name in (INFO_KEY, MODEL_TREE, LEGACY_MODEL_KEY):
            raise InputFileError(f"{f.file_path}: already holds {name!r} (a compressed file?)")
        if cls == "TTree":
            try:
                branch_specs(f[name])
                copied.append(name)
            except Unwritable as err:
                skipped.append({"name": name, "class": cls, "reason": str(err)})
        elif cls in ("TObjString",):
            copied.append(name)
        else:
            skipped.append({"name": name, "class": cls, "reason": "uproot cannot write it"})
    return copied, skipped


def _copy_others(fin, fout, names: Sequence[str], skip: Sequence[str] = ()) -> None:
    for name, cls in tree_keys(fin):
        if name not in names or name in skip:
            continue
        if cls == "TTree":
            t = fin[name]
            specs = branch_specs(t)
            wt = create_tree(fout, name, specs, t.title, 2)
            for arrays in t.iterate([s.name for s in specs], step_size="100 MB", library="ak"):
                fill(fout, wt, specs, {s.name: arrays[s.name] for s in specs})
            finish_tree(fout, wt)
        else:
            copy_object(fin, fout, name, cls)


@dataclass
class ChunkJets:
    """A chunk's jets as the processor already holds them, so the chunk writer neither
    reads the jet branches again nor encodes the same jets twice.

    Attributes
    ----------
    counts
        Jets per event (every jet of the chunk).
    values
        (n, len(variables)) jet values in the model's units (GeV), file order, all jets.
    variables
        The columns of ``values`` (the model's variables).
    latents
        The model's latents of ``values[kept]`` (float32, before any mantissa rounding).
    kept
        Which jets ``latents`` belong to (the processor's selected, in-domain jets).
    """

    counts: np.ndarray
    values: np.ndarray
    variables: list[str]
    latents: np.ndarray | None = None
    kept: np.ndarray | None = None

    def columns(self, variables: Sequence[str], where: str) -> np.ndarray:
        """``values`` for ``variables`` as float32, refusing non-finite jets (as compress)."""
        missing = [v for v in variables if v not in self.variables]
        if missing:
            raise HepaeError(f"{where}: the processor's jets have no {missing}")
        x = self.values[:, [self.variables.index(v) for v in variables]]
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise HepaeError(
                f"{where}: {int(bad.sum())} jet(s) with non-finite {list(variables)} values; a "
                f"lossy latent cannot store them (drop or fix those jets first)"
            )
        return np.ascontiguousarray(x, np.float32)

    def encoder(self, encode: Callable[[np.ndarray], np.ndarray]):
        """An encoder that returns the stored latents for the chunk's own jets and runs
        ``encode`` only on the jets without them (or on any other input)."""
        own = self.columns(self.variables, "chunk")

        def call(x: np.ndarray) -> np.ndarray:
            if self.latents is None or self.kept is None or not np.array_equal(x, own):
                return encode(x)
            z = np.empty((len(x), self.latents.shape[1]), np.float32)
            z[self.kept] = self.latents
            rest = ~self.kept
            if rest.any():
                z[rest] = encode(np.ascontiguousarray(x[rest]))
            return z

        return call


def write_compressed_chunk(
    path: str,
    tree: str,
    start: int,
    stop: int,
    output: str | os.PathLike,
    model_bytes: bytes,
    *,
    latent_bits: int | None = None,
    collection: str = "Jet",
    compression: str | None = "zstd",
    level: int | None = 5,
    model_ref: bool = False,
    device: str = "cpu",
    codec: str | None = None,
    precision: str | None = None,
    source: Mapping[str, Any] | None = None,
    jets: ChunkJets | None = None,
    model: Any = None,
) -> tuple[int, int]:
    """Compress entries [start, stop) of one file's jet tree into its own output file (used
    by the processor on any executor), with the same record as :func:`compress`.

    Parameters
    ----------
    codec, precision
        As for :func:`compress` (``ae`` latents by default; the model is stored as plain
        weights or, with ``model_ref``, by name and SHA-256).
    source
        `resolve_source` keyword arguments (from `detect_source`); default: ``tree`` and
        ``collection``.
    jets
        The chunk's jets and latents as the processor has them: the jet branches are then
        not read, and only jets without latents are encoded (jet-level models).
    model
        The loaded model to encode and decode with (default: rebuilt from its weights).

    Returns (events, jets).
    """
    import uproot

    kw = dict(source) if source is not None else {"tree": tree, "collection": collection}
    codec_given, codec = codec, choose_codec(codec, precision)
    if kw.get("energy") and codec_given is None and codec != "ae":
        codec = ENERGY_DEFAULT_CODEC
    if precision is not None:
        parse_precision(precision)
    if latent_bits is not None and not 0 <= latent_bits <= 23:
        raise ValueError(f"--latent-bits must be in 0..23, got {latent_bits}")
    device = resolve_device(device)
    blob, meta, event_jets = b"", {}, None
    variables = list(KINEMATICS)
    if codec == "ae":
        blob, meta = weights_from_model_file(model_bytes, "model")
        if model is None:
            model, _ = load_weights(blob, blob_sha256(blob), "model")
            model = model.to(device)
        variables = [v["name"] for v in meta["variables"]]
        event_jets = int(meta["event_jets"]) if meta.get("level") == "event" else None
        if precision is not None and event_jets is not None:
            raise HepaeError("--precision with the autoencoder needs a jet-level model")
    where = f"{path}[{start}:{stop}]"
    variables, kw = energy_route(
        kw, codec, variables, precision, where, event_level=event_jets is not None
    )
    # the processor's jets serve unless the mass is computed here (from E) or missing
    reuse = (
        jets is not None
        and event_jets is None
        and not kw.get("mass_from_energy")
        and all(v in jets.variables for v in variables)
    )
    f = open_root(path)
    with f:
        src = resolve_source(f, path, variables, **kw)
        t = _tree(f, path, src.tree)
        base = _plan(t, src, variables, int(meta.get("latent_dim", 0)), event_jets)
        jet_cols = {src.branches[v] for v in _file_variables(src, variables)}
        read = [b for b in base.read if b not in jet_cols] if reuse else base.read
        arrays = t.arrays(read, entry_start=start, entry_stop=stop, library="ak")
        title = t.title
    if reuse:
        counts = np.asarray(jets.counts, np.int64)
        if read and len(arrays) != len(counts):
            raise HepaeError(f"{where}: {len(arrays)} events read, the processor had {len(counts)}")
        x = jets.columns(variables, where)
    else:
        counts, x = None, None
    payload = None
    if precision is None and not reuse:
        plan = base
        data, n = _compress_block(
            arrays, model, plan, src, variables, latent_bits, event_jets, where, device
        )
    elif precision is None:
        plan = base
        enc = jets.encoder(_transform(model.encode, device))
        z = enc(x) if len(x) else np.zeros((0, int(meta["latent_dim"])), np.float32)
        if latent_bits is not None:
            z = truncate_mantissa(z, latent_bits)
        names = _latent_names(src.collection if src.layout == "copy" else "Jet", z.shape[1], False)
        data = {s.name: arrays[s.name] for s in plan.specs if s.name in arrays.fields}
        if src.layout == "flat":
            data[plan.counter] = counts.astype(np.uint32)
        for i, name in enumerate(names):
            data[name] = ak.unflatten(np.ascontiguousarray(z[:, i]), counts)
        n = len(x)
    else:
        if not reuse:
            counts, x = _jets(arrays, src, variables, where)
            counts = ak.to_numpy(counts).astype(np.int64)
        enc_fn = dec_fn = None
        if codec == "ae":
            enc_fn = _transform(model.encode, device)
            enc_fn = jets.encoder(enc_fn) if reuse else enc_fn
            dec_fn = _transform(model.decode, device)
        payload = _encode_payload(
            where,
            codec,
            x,
            counts,
            variables,
            precision,
            src.collection if src.layout == "copy" else "Jet",
            base.counter,
            encoder=enc_fn,
            decoder=dec_fn,
            latent_bits=latent_bits,
        )
        plan = _plan(t, src, variables, 0, None, payload.specs)
        data, n = _codec_data(arrays, plan, src, payload, counts, 0, 0)
    n_events = len(counts) if counts is not None else len(arrays)
    comp = _compression(compression, level, None)
    out_tree = src.tree if src.layout == "copy" else "Events"
    model_info = None
    if codec == "ae":
        model_info = _model_info("model", blob_sha256(model_bytes), blob, meta, model_ref)
    info = _record(
        model_info,
        payload,
        variables,
        _layout_info(src, plan, out_tree, latent_bits),
        n_events,
        n,
        comp,
        [os.path.basename(path)],
        entries=[start, stop],
        copied=[],
        not_copied=[],
    )
    with (
        atomic_output(Path(output), overwrite=True) as tmp,
        uproot.recreate(tmp, compression=comp) as fout,
    ):
        register_streamers(fout)
        wt = create_tree(fout, out_tree, plan.specs, title, 2)
        fill(fout, wt, plan.specs, data)
        finish_tree(fout, wt)
        fout[INFO_KEY] = json.dumps(info)
        if codec == "ae" and not model_ref:
            _write_model(fout, blob)
    return n_events, n


# --- decompress --------------------------------------------------------------------------


def read_compression_info(path: str | os.PathLike) -> tuple[dict[str, Any], bytes | None]:
    """The compression metadata of a compressed file and its stored weights blob (``None``
    for a model stored by reference). Nothing in the file is executed or unpickled."""
    path = str(path)
    f = open_root(path)
    try:
        with f:
            if INFO_KEY not in f:
                raise InputFileError(
                    f"{path}: not a file written by hepae compress (no {INFO_KEY!r} object)"
                )
            if LEGACY_MODEL_KEY in f:
                raise ModelFileError(
                    f"{path}: written by an older hepae compress that embedded the model as "
                    f"TorchScript code; refused, nothing from it is run (compress the original "
                    f"again with this version)"
                )
            info = json.loads(str(f[INFO_KEY]))
            if info.get("format") != FORMAT or int(info.get("format_version", 1)) != FORMAT_VERSION:
                raise InputFileError(
                    f"{path}: compressed-file format {info.get('format')!r} version "
                    f"{info.get('format_version', 1)} is not supported (expected {FORMAT_VERSION})"
                )
            blob = None
            if info.get("model") and info["model"]["storage"] == "embedded":
                if MODEL_TREE not in f:
                    raise ModelFileError(f"{path}: the embedded model ({MODEL_TREE!r}) is missing")
                blob = f[MODEL_TREE]["weights"].array(library="np").tobytes()
    except HepaeError:
        raise
    except Exception as err:  # noqa: BLE001
        raise InputFileError(f"{path}: cannot be read as a ROOT file ({err})") from None
    return info, blob


def _find_model(info, path: str, model, model_dir) -> Path | None:
    """The model file given or found by SHA-256 in ``model_dir`` (None if neither)."""
    want = info["model"]["file_sha256"]
    if model is not None:
        given = Path(model)
        if not given.exists():
            raise ModelFileError(f"{given}: model file not found")
        have = file_sha256(given)
        if have != want:
            raise ModelFileError(
                f"{given}: SHA-256 {have} does not match the model that compressed {path} "
                f"({info['model']['name']}, SHA-256 {want})"
            )
        return given
    if model_dir is not None:
        d = Path(model_dir)
        if not d.is_dir():
            raise ModelFileError(f"{d}: model folder not found")
        for p in sorted(d.rglob("*.pt")):
            if file_sha256(p) == want:
                return p
        raise ModelFileError(
            f"{path}: no *.pt file in {d} has SHA-256 {want} (model {info['model']['name']})"
        )
    return None


def _model_for(info, blob, path: str, model, model_dir):
    found = _find_model(info, path, model, model_dir if blob is None else None)
    if blob is None:
        if found is None:
            raise ModelFileError(
                f"{path}: compressed with model {info['model']['name']} (SHA-256 "
                f"{info['model']['file_sha256']}) stored by reference; give it with --model or "
                f"--model-dir"
            )
        _, blob, _ = _load_model_file(found)
        if blob_sha256(blob) != info["model"]["weights_sha256"]:
            raise ModelFileError(
                f"{found}: its weights (SHA-256 {blob_sha256(blob)}) differ from those that "
                f"compressed {path} ({info['model']['weights_sha256']})"
            )
    module, _ = load_weights(blob, info["model"]["weights_sha256"], path)
    return module


def _decode_block(arrays, module, info, variables, device: str = "cpu") -> tuple[Any, np.ndarray]:
    """Latents (+ extra jets) -> (jets per event, flat decoded jets in the file's units)."""
    m = info["model"]
    k = int(m["latent_dim"])
    src = info["source"]
    out_coll = src["collection"] if src["layout"] == "copy" else "Jet"
    event_jets = int(m["event_jets"]) if m.get("level") == "event" else None
    names = _latent_names(out_coll, k, event_jets is not None)
    counts = ak.to_numpy(arrays[info["counter"]]).astype(np.int64)  # jets per event
    if event_jets is None:
        z = np.stack([ak.to_numpy(ak.flatten(arrays[c])) for c in names], axis=1)
        rec = np.zeros((0, len(variables)), np.float32)
        if len(z):
            with torch.inference_mode():
                (r,) = in_blocks(
                    module.decode, torch.from_numpy(np.ascontiguousarray(z)), device=device
                )
            rec = r.numpy()
        return counts, from_model_units(rec.astype(np.float64), variables, src["units"])
    z = np.stack([ak.to_numpy(arrays[c]) for c in names], axis=1).astype(np.float32)
    mask = np.arange(event_jets)[None, :] < np.minimum(counts, event_jets)[:, None]
    with torch.inference_mode():
        (rec_e,) = in_blocks(
            module.decode,
            torch.from_numpy(z),
            torch.from_numpy(mask.astype(np.float32)),
            device=device,
        )
    lead = from_model_units(rec_e.numpy()[mask].astype(np.float64), variables, src["units"])
    lead = ak.unflatten(lead, np.minimum(counts, event_jets))
    extra = ak.concatenate(
        [arrays[_extra_branch(out_coll, b)][:, :, np.newaxis] for b in info["jet_branches"]],
        axis=2,
    )
    jets = ak.concatenate([lead, ak.values_astype(extra, np.float64)], axis=1)
    return ak.num(jets, axis=1), ak.to_numpy(ak.flatten(jets, axis=1))


def decompress(
    input: str | os.PathLike,
    output: str | os.PathLike,
    model: str | os.PathLike | None = None,
    *,
    model_dir: str | os.PathLike | None = None,
    compression: str | None = None,
    level: int | None = None,
    step_size: str | int = "100 MB",
    overwrite: bool = False,
    device: str = "cpu",
) -> CompressionSummary:
    """Restore the jet branches of a file written by :func:`compress`.

    The model stored in the file (plain weights, checked against its SHA-256) is used; a
    ``model`` given explicitly must be the model file that compressed it (same SHA-256),
    else it is refused. For a model stored by reference, ``model`` or a folder
    ``model_dir`` searched for a ``*.pt`` file with the recorded SHA-256 supplies it.
    Restored files have the original trees, branch names, types and order.
    """
    import uproot

    t0 = time.perf_counter()
    path = os.fspath(input)
    info, blob = read_compression_info(path)
    codec_info = info.get("codec") or {"name": "ae"}
    device = resolve_device(device)
    module = None
    if info.get("model"):
        module = _model_for(info, blob, path, model, model_dir).to(device)
        variables = [v["name"] for v in info["model"]["variables"]]
    else:
        if model is not None or model_dir is not None:
            raise HepaeError(
                f"{path}: compressed with codec {codec_info['name']!r}, which uses no model; "
                f"--model and --model-dir do not apply"
            )
        variables = list(info["variables"])
    f = open_root(path)
    t = _tree(f, path, info["tree"])
    src = info["source"]
    specs = _restored_specs(branch_specs(t), info)
    decoded_names = dict(zip(info["jet_branches"], range(len(variables)), strict=True))
    dtypes = {s.name: s.dtype for s in specs}
    comp = _compression(compression, level, f)
    events = jets = 0
    out = Path(output)
    whole = None
    if "branches" in codec_info:  # an array codec: decode the file's jets at once
        names = [b["name"] for b in codec_info["branches"]]
        stored = t.arrays([*names, info["counter"]], library="ak")
        all_counts = ak.to_numpy(stored[info["counter"]]).astype(np.int64)
        dec = _transform(module.decode, device) if module is not None else None
        whole = decode_payload(codec_info, stored, all_counts, variables, decoder=dec)
        whole = from_model_units(whole.astype(np.float64), variables, src["units"])
        if src.get("mass_from_energy"):
            whole = energy_from_mass(whole, variables)
    try:
        with atomic_output(out, overwrite) as tmp, uproot.recreate(tmp, compression=comp) as fout:
            register_streamers(fout)
            wt = create_tree(fout, info["tree"], specs, t.title, 2)
            for arrays in t.iterate(t.keys(), step_size=step_size, library="ak"):
                if whole is None:
                    counts, rec = _decode_block(arrays, module, info, variables, device)
                    if src.get("mass_from_energy"):  # E from the decoded pt, eta and mass
                        rec = energy_from_mass(rec, variables)
                else:
                    counts = ak.to_numpy(arrays[info["counter"]]).astype(np.int64)
                    rec = whole[jets : jets + int(counts.sum())]
                data = {s.name: arrays[s.name] for s in specs if s.name not in decoded_names}
                for b, i in decoded_names.items():  # integer variables were rounded by the model
                    data[b] = ak.unflatten(
                        np.ascontiguousarray(rec[:, i]).astype(dtypes[b]), counts
                    )
                fill(fout, wt, specs, data)
                events += len(arrays)
                jets += len(rec)
            finish_tree(fout, wt)
            _copy_others(f, fout, info.get("copied", []))
    finally:
        f.close()
    return CompressionSummary(
        [path],
        str(out),
        events,
        jets,
        os.path.getsize(path),
        out.stat().st_size,
        time.perf_counter() - t0,
        {"tree": src["tree"], "units": src["units"], "layout": src["layout"]},
    )
