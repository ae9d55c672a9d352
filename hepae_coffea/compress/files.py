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
SHA-256) with ``model_ref=True`` (:mod:`~hepae_coffea.compress.model_store`). Files that
uproot cannot rewrite (ATLAS PHYSLITE's xAOD containers) are written as a flat tree of the
event identifiers, the jets' latents and the branches named in ``keep``; ``decompress``
then gives a NanoAOD-style flat tree (``nJet``, ``Jet_pt``, ...) in the file's own units.
Both stream chunk by chunk, keep event order and jet counts exactly, and write atomically.

The steps of ``compress``: resolve the codec and open the model (`_open_model`), open the
inputs and find their jets (`_open_inputs`), plan how each block is stored (`_plan`), then
per input and block read, encode and write (`_write_blocks`), and finally write the other
objects, the record and the model (`_write_output`) and check the size. ``decompress``
reads the record, opens the model (`_decompress_model`), decodes an array codec's payload
at once or each block's latents (`_decode_blocks`), and writes the restored tree. The
blocks, the tree layout, the model storage, the record and the jet sources have their own
modules; the processor's per-chunk writer is `~hepae_coffea.compress.chunk`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from ..codecs.truncate import round_mantissa
from ..errors import HepaeError, InputFileError
from ..io.atomic import atomic_output, is_disk_full
from ..io.rootfile import open_root
from ..model.handle import ModelSource
from ..variables.registry import from_gev
from .blocks import (
    Autoencoder,
    Transform,
    check_latent_bits,
    codec_block,
    decode_block,
    encode_block,
    encode_codec,
    model_transform,
    restored_block,
)
from .choose import (
    KINEMATICS,
    CodecPayload,
    _decode_flat,
    choose_codec,
    decode_payload,
    max_errors,
    resolve_codec,
)
from .chunk import write_compressed_chunk
from .energy import (
    ENERGY_DEFAULT_CODEC,
    energy_from_mass,
    energy_route,
    energy_summary,
    original_energy,
)
from .layout import TreePlan, layout_record, plan_tree, restored_specs
from .model_store import (
    LEGACY_MODEL_KEY,
    MODEL_KEY,
    MODEL_TREE,
    CompressModel,
    model_for_decompress,
    model_record,
    open_compress_model,
    write_model,
)
from .record import INFO_KEY, build_record, read_compression_info, write_record
from .root_copy import (
    COMPRESSIONS,
    BranchSpec,
    branch_specs,
    copy_others,
    create_tree,
    fill,
    finish_tree,
    other_objects,
    output_compression,
    register_streamers,
)
from .source import (
    ChunkJets,
    JetSource,
    detect_source,
    open_tree,
    read_all_jets,
    resolve_source,
)

__all__ = [
    "COMPRESSIONS",
    "INFO_KEY",
    "MODEL_KEY",
    "ChunkJets",
    "CompressionSummary",
    "JetSource",
    "compress",
    "decompress",
    "detect_source",
    "energy_route",
    "read_compression_info",
    "truncate_mantissa",
    "write_compressed_chunk",
]

log = logging.getLogger(__name__)

#: objects compress adds to its output (an input holding one is refused)
_RESERVED = (INFO_KEY, MODEL_TREE, LEGACY_MODEL_KEY)


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


def truncate_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """Round float32 values to ``bits`` mantissa bits (round to nearest, ties away from 0).

    ``bits`` in 0..23; 23 returns the values unchanged. Non-finite values are kept. (The
    truncate codec's :func:`~hepae_coffea.codecs.truncate.round_mantissa`; a ValueError for
    bits outside 0..23.)
    """
    return round_mantissa(x, bits)


# --- compress: the steps -----------------------------------------------------------------


@dataclass
class _Inputs:
    """The opened input files and where their jets are."""

    paths: list[str]
    files: list[Any]  # open uproot files, closed as they are written
    trees: list[Any]  # their jet trees, with the same branches
    src: JetSource
    variables: list[str]  # what is compressed (the model's, or the codec's)
    codec: str
    codec_given: str | None  # the codec asked for (None: chosen here)
    described: str | None  # the detected format's one-line description


@dataclass
class _Plan:
    """How the jets of every block are stored: the model's latents or a codec payload."""

    tree: TreePlan
    model: CompressModel | None
    payload: CodecPayload | None  # an array codec's encoding of all the jets
    jets: np.ndarray | None  # all the jets (with a precision), for the errors reported
    decoder: Transform | None  # the model's decode as numpy, for the errors reported


def _input_paths(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """The input paths (one or a list), refusing none."""
    if isinstance(inputs, str | os.PathLike):
        paths = [os.fspath(inputs)]
    else:
        paths = [os.fspath(p) for p in inputs]
    if not paths:
        raise InputFileError("no input files given")
    return paths


def _model_device(device: str) -> str:
    """The device the model runs on; torch is imported only for a codec with a model."""
    from ..model.cache import resolve_device

    return resolve_device(device)


def _open_model(
    codec: str,
    model: ModelSource,
    device: str,
    *,
    precision: str | None,
    model_ref: bool,
    latent_bits: int | None,
) -> CompressModel | None:
    """Step 1: the model for codec ``ae`` (read once; the shipped default when ``model``
    is None), converted to the plain weights stored; None for the array codecs, which
    refuse the model options."""
    if codec != "ae":
        if model is not None or model_ref or latent_bits is not None:
            raise HepaeError(
                f"codec {codec!r} uses no model: --model, --model-ref and "
                f"--latent-bits apply to --codec ae only"
            )
        return None
    stored = open_compress_model(model, device)
    if precision is not None and stored.event_jets is not None:
        raise HepaeError(
            f"{stored.label}: --precision with the autoencoder needs a jet-level model "
            f"(this one is event-level)"
        )
    return stored


def _source_kwargs(
    paths: Sequence[str],
    variables: list[str],
    codec: str,
    codec_given: str | None,
    precision: str | None,
    event_level: bool,
    *,
    tree: str | None,
    collection: str | None,
    branches: Mapping[str, str] | None,
    units: str | None,
    fmt: str | None,
) -> tuple[dict[str, Any], list[str], str, str | None, str | None]:
    """`resolve_source` keyword arguments: the first input's format detected (unless the
    tree, collection or branches are given), with jets stored with E routed by
    `energy_route`. Returns them, the variables, the codec (the E default when none was
    asked for), the codec asked for, and the format's description."""
    if branches is not None or (fmt is None and (tree is not None or collection is not None)):
        kw = {"tree": tree, "collection": collection, "branches": branches, "units": units}
        return kw, variables, codec, codec_given, None
    kw, described = detect_source(
        paths[0], variables, fmt=fmt, units=units, collection=collection, tree=tree
    )
    if kw.get("energy") and codec_given is None and codec != "ae":
        codec = codec_given = ENERGY_DEFAULT_CODEC  # not the jet-count default below
    variables, kw = energy_route(kw, codec, variables, precision, paths[0], event_level=event_level)
    return kw, variables, codec, codec_given, described


def _open_inputs(
    paths: list[str],
    model: CompressModel | None,
    codec: str,
    codec_given: str | None,
    precision: str | None,
    *,
    tree: str | None,
    collection: str | None,
    branches: Mapping[str, str] | None,
    units: str | None,
    fmt: str | None,
    keep: Sequence[str],
) -> _Inputs:
    """Step 2: open every input (all checked before anything is written), find the jets
    in the first, and check that the others have the same branches."""
    files = [open_root(p) for p in paths]
    variables = model.variables if model is not None else list(KINEMATICS)
    event_level = model is not None and model.event_jets is not None
    kw, variables, codec, codec_given, described = _source_kwargs(
        paths,
        variables,
        codec,
        codec_given,
        precision,
        event_level,
        tree=tree,
        collection=collection,
        branches=branches,
        units=units,
        fmt=fmt,
    )
    src = resolve_source(files[0], paths[0], variables, keep=keep, **kw)
    trees = [open_tree(f, p, src.tree) for f, p in zip(files, paths, strict=True)]
    keys0 = trees[0].keys()
    for p, t in zip(paths, trees, strict=True):
        if t.keys() != keys0:
            raise InputFileError(f"{p}: branches differ from {paths[0]}'s")
    return _Inputs(paths, files, trees, src, variables, codec, codec_given, described)


def _plan(
    inp: _Inputs,
    model: CompressModel | None,
    precision: str | None,
    latent_bits: int | None,
    step_size: str | int,
    device: str,
) -> _Plan:
    """Step 3: the compressed tree and how its jets are stored. Without a precision each
    block's jets become the model's latents as they are written; with one, all the jets
    are read and encoded at once by the codec (chosen by their number unless given)."""
    src, variables, t0 = inp.src, inp.variables, inp.trees[0]
    if precision is None:
        assert model is not None  # the array codecs need a precision (choose_codec)
        k = int(model.metadata["latent_dim"])
        return _Plan(plan_tree(t0, src, variables, k, model.event_jets), model, None, None, None)
    counter = plan_tree(t0, src, variables, 0, None).counter
    counts, x = read_all_jets(inp.trees, inp.paths, src, variables, step_size)
    if inp.codec_given is None:  # the default depends on the number of jets
        inp.codec = choose_codec(None, precision, n_jets=len(x), variables=variables)
    enc = dec = None
    if model is not None:
        enc = model_transform(model.module.encode, device)
        dec = model_transform(model.module.decode, device)
    payload = encode_codec(
        inp.paths[0],
        inp.codec,
        x,
        counts,
        variables,
        precision,
        src.out_collection,
        counter,
        encoder=enc,
        decoder=dec,
        latent_bits=latent_bits,
    )
    tree = plan_tree(t0, src, variables, 0, None, payload.specs)
    return _Plan(tree, model, payload, x, dec)


def _latents(data: Mapping[str, Any], names: Sequence[str]) -> np.ndarray:
    """The latents just encoded for a block (jet-level), (n, len(names)) float32."""
    z = np.stack([ak.to_numpy(ak.flatten(data[n])) for n in names], axis=1)
    return z.astype(np.float32)


def _write_blocks(
    fout: Any,
    wt: Any,
    inp: _Inputs,
    plan: _Plan,
    latent_bits: int | None,
    step_size: str | int,
    device: str,
    energy: list[tuple[np.ndarray, np.ndarray]] | None,
) -> tuple[int, int]:
    """Step 4: per input and block, read the branches, encode the jets and write the
    block. Returns the events and jets written. Jets with E (``energy`` not None) collect
    each block's original E and latents for the summary."""
    src, tree = inp.src, plan.tree
    events = jets = 0
    for p, f, t in zip(inp.paths, inp.files, inp.trees, strict=True):
        try:
            for arrays in t.iterate(tree.read, step_size=step_size, library="ak"):
                if plan.payload is None:
                    assert plan.model is not None
                    event_jets = plan.model.event_jets
                    data, n = encode_block(
                        arrays,
                        plan.model.module,
                        tree,
                        src,
                        inp.variables,
                        latent_bits,
                        event_jets,
                        p,
                        device,
                    )
                    if energy is not None:
                        orig = original_energy(arrays, src.branches, src.units)
                        energy.append((orig, _latents(data, tree.added)))
                else:
                    data, n = codec_block(
                        arrays, tree, src, inp.variables, plan.payload, events, jets
                    )
                fill(fout, wt, tree.specs, data)
                events += len(arrays)
                jets += n
        except HepaeError:
            raise
        except Exception as err:  # truncated baskets etc.; re-raised when disk full
            if is_disk_full(err):  # the output's fault, not the input's
                raise
            raise InputFileError(f"{p}: failed while reading ({err})") from None
        finally:
            if f is not inp.files[0]:
                f.close()
    return events, jets


@dataclass
class _Written:
    """What `_write_output` wrote."""

    events: int
    jets: int
    bytes_in: int
    copied: list[str]
    not_copied: list[dict[str, str]]
    energy: list[tuple[np.ndarray, np.ndarray]] | None


def _write_output(
    output: Path,
    inp: _Inputs,
    plan: _Plan,
    comp: Any,
    *,
    latent_bits: int | None,
    model_ref: bool,
    step_size: str | int,
    device: str,
    overwrite: bool,
    allow_larger: bool,
) -> _Written:
    """Steps 4 and 5: write the compressed tree block by block, the other trees and
    objects of the first input, the record and the model, atomically; refuse an output
    bigger than the inputs unless ``allow_larger``."""
    import uproot

    src = inp.src
    energy: list[tuple[np.ndarray, np.ndarray]] | None = [] if src.mass_from_energy else None
    copied, skipped = other_objects(inp.files[0], src.tree, _RESERVED)
    if len(inp.paths) > 1 and copied:
        log.warning("other trees and objects are copied from the first input only")
    bytes_in = sum(os.path.getsize(p) for p in inp.paths)
    with atomic_output(output, overwrite) as tmp:
        with uproot.recreate(tmp, compression=comp) as fout:
            register_streamers(fout)
            capacity = len(inp.trees) + 1  # baskets per branch: one per input and block, + 1
            wt = create_tree(fout, src.out_tree, plan.tree.specs, inp.trees[0].title, capacity)
            events, jets = _write_blocks(
                fout, wt, inp, plan, latent_bits, step_size, device, energy
            )
            finish_tree(fout, wt)
            copy_others(inp.files[0], fout, copied)
            inp.files[0].close()
            model = plan.model  # None for the array codecs
            record = build_record(
                model_record(model, model_ref) if model is not None else None,
                plan.payload,
                inp.variables,
                layout_record(src, plan.tree, src.out_tree, latent_bits),
                events,
                jets,
                comp,
                [os.path.basename(p) for p in inp.paths],
                copied=copied,
                not_copied=skipped,
            )
            write_record(fout, record)
            if model is not None and not model_ref:
                write_model(fout, model.blob)
        bytes_out = os.path.getsize(tmp)
        if bytes_out > bytes_in and not allow_larger:
            hint = (
                ""
                if model is None or model_ref
                else f" (the embedded model takes {len(model.blob)} bytes; try --model-ref)"
            )
            raise HepaeError(
                f"{output}: the compressed file would be {bytes_out} bytes, more than the "
                f"input's {bytes_in}{hint}; nothing written (--allow-larger writes it anyway)"
            )
    return _Written(events, jets, bytes_in, copied, skipped, energy)


def _codec_summary(
    payload: CodecPayload, x: np.ndarray, variables: Sequence[str], decoder: Transform | None
) -> dict[str, Any]:
    """Max errors of the stored jets (decoded here as decompress will) and corrections."""
    rec = _decode_flat(payload, variables, decoder)
    out: dict[str, Any] = {"max_error": max_errors(x, rec, variables)}
    inner = payload.info["info"]
    if "fraction_jets_corrected" in inner:
        out["fraction_corrected"] = inner["fraction_jets_corrected"]
    return out


def _energy_errors(
    parts: list[tuple[np.ndarray, np.ndarray]],
    module: Autoencoder,
    variables: Sequence[str],
    device: str,
) -> dict[str, Any]:
    """`energy_summary` of the blocks' original E and latents."""
    k = int(module.latent_dim)
    orig = np.concatenate([o for o, _ in parts]) if parts else np.zeros((0, 3))
    z = np.concatenate([z for _, z in parts]) if parts else np.zeros((0, k), np.float32)
    return energy_summary(orig, z, model_transform(module.decode, device), variables)


def _summary_extra(
    inp: _Inputs,
    plan: _Plan,
    written: _Written,
    *,
    latent_bits: int | None,
    model_ref: bool,
    precision: str | None,
    device: str,
) -> dict[str, Any]:
    """Step 6: what the summary reports besides the sizes: settings, format, the largest
    errors of a codec's jets (decoded as decompress will) and of E restored from the mass."""
    src, codec = inp.src, inp.codec
    extra: dict[str, Any] = {
        "latent_bits": latent_bits,
        "layout": src.layout,
        "tree": src.tree,
        "units": src.units,
        "model_storage": ("reference" if model_ref else "embedded") if codec == "ae" else None,
        "codec": codec,
        "precision": precision,
        "format": inp.described,
    }
    if plan.payload is not None and plan.jets is not None:
        extra.update(_codec_summary(plan.payload, plan.jets, inp.variables, plan.decoder))
    if written.energy is not None and plan.model is not None:
        module = plan.model.module
        extra["energy"] = _energy_errors(written.energy, module, inp.variables, device)
    extra["copied"] = written.copied
    extra["not_copied"] = written.not_copied
    return extra


def compress(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    model: ModelSource = None,
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
    model : path, bytes or ModelHandle, optional
        hepae-coffea model file (read once; see `hepae_coffea.model.handle.open_model`);
        the shipped default when omitted.
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
    t0 = time.perf_counter()
    paths = _input_paths(inputs)
    codec_given = codec
    codec = resolve_codec(codec, precision)
    device = _model_device(device) if codec == "ae" else "cpu"
    stored = _open_model(
        codec, model, device, precision=precision, model_ref=model_ref, latent_bits=latent_bits
    )
    check_latent_bits(latent_bits)
    inp = _open_inputs(
        paths,
        stored,
        codec,
        codec_given,
        precision,
        tree=tree,
        collection=collection,
        branches=branches,
        units=units,
        fmt=fmt,
        keep=keep,
    )
    comp = output_compression(compression, level, inp.files[0])
    plan = _plan(inp, stored, precision, latent_bits, step_size, device)
    out = Path(output)
    written = _write_output(
        out,
        inp,
        plan,
        comp,
        latent_bits=latent_bits,
        model_ref=model_ref,
        step_size=step_size,
        device=device,
        overwrite=overwrite,
        allow_larger=allow_larger,
    )
    extra = _summary_extra(
        inp,
        plan,
        written,
        latent_bits=latent_bits,
        model_ref=model_ref,
        precision=precision,
        device=device,
    )
    summary = CompressionSummary(
        paths,
        str(out),
        written.events,
        written.jets,
        written.bytes_in,
        out.stat().st_size,
        time.perf_counter() - t0,
        extra,
    )
    log.info(
        "compressed %d events (%d jets): %d -> %d bytes",
        written.events,
        written.jets,
        written.bytes_in,
        summary.bytes_out,
    )
    return summary


# --- decompress: the steps ---------------------------------------------------------------


def _decompress_model(
    info: dict[str, Any],
    blob: bytes | None,
    path: str,
    model: ModelSource,
    model_dir: str | os.PathLike[str] | None,
    device: str,
) -> tuple[Autoencoder | None, list[str]]:
    """Step 2: the model that decodes ``path`` on ``device`` (None for an array codec,
    which refuses ``model`` and ``model_dir``) and the stored variables."""
    if info.get("model"):
        d = Path(model_dir) if model_dir is not None else None
        module = model_for_decompress(info, blob, path, model, d, device)
        return module, [v["name"] for v in info["model"]["variables"]]
    if model is not None or model_dir is not None:
        codec = (info.get("codec") or {"name": "ae"})["name"]
        raise HepaeError(
            f"{path}: compressed with codec {codec!r}, which uses no model; "
            f"--model and --model-dir do not apply"
        )
    return None, list(info["variables"])


def _decode_payload(
    t: Any,
    info: dict[str, Any],
    module: Autoencoder | None,
    variables: Sequence[str],
    device: str,
) -> np.ndarray | None:
    """Step 3 for an array codec: all the file's jets decoded at once, in the file's
    units (E restored for jets stored with E); None for the model's latents."""
    codec_info = info.get("codec") or {"name": "ae"}
    if "branches" not in codec_info:
        return None
    src = info["source"]
    names = [b["name"] for b in codec_info["branches"]]
    stored = t.arrays([*names, info["counter"]], library="ak")
    counts = ak.to_numpy(stored[info["counter"]]).astype(np.int64)
    dec = model_transform(module.decode, device) if module is not None else None
    whole = decode_payload(codec_info, stored, counts, variables, decoder=dec)
    whole = from_gev(whole.astype(np.float64), variables, src["units"])
    if src.get("mass_from_energy"):
        whole = energy_from_mass(whole, variables)
    return whole


def _decode_blocks(
    fout: Any,
    wt: Any,
    t: Any,
    specs: Sequence[BranchSpec],
    info: dict[str, Any],
    module: Autoencoder | None,
    variables: Sequence[str],
    whole: np.ndarray | None,
    step_size: str | int,
    device: str,
) -> tuple[int, int]:
    """Step 4: per block, decode the jets (or take them from ``whole``) and write the
    restored branches ``specs``. Returns the events and jets written."""
    decoded = dict(zip(info["jet_branches"], range(len(variables)), strict=True))
    energy = bool(info["source"].get("mass_from_energy"))
    events = jets = 0
    for arrays in t.iterate(t.keys(), step_size=step_size, library="ak"):
        if whole is None:
            assert module is not None  # latents without a model are refused in step 2
            counts, rec = decode_block(arrays, module, info, variables, device)
            if energy:  # E from the decoded pt, eta and mass
                rec = energy_from_mass(rec, variables)
        else:
            counts = ak.to_numpy(arrays[info["counter"]]).astype(np.int64)
            rec = whole[jets : jets + int(counts.sum())]
        fill(fout, wt, specs, restored_block(arrays, specs, decoded, counts, rec))
        events += len(arrays)
        jets += len(rec)
    return events, jets


def decompress(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    model: ModelSource = None,
    *,
    model_dir: str | os.PathLike[str] | None = None,
    compression: str | None = None,
    level: int | None = None,
    step_size: str | int = "100 MB",
    overwrite: bool = False,
    device: str = "cpu",
) -> CompressionSummary:
    """Restore the jet branches of a file written by :func:`compress`.

    The model stored in the file (plain weights, checked against its SHA-256) is used; a
    ``model`` given explicitly (path, bytes or handle) must be the model file that
    compressed it (same SHA-256), else it is refused. For a model stored by reference,
    ``model`` or a folder ``model_dir`` searched for a ``*.pt`` file with the recorded
    SHA-256 supplies it. Restored files have the original trees, branch names, types and
    order.
    """
    import uproot

    t0 = time.perf_counter()
    path = os.fspath(input)
    info, blob = read_compression_info(path)
    device = _model_device(device) if info.get("model") else "cpu"
    module, variables = _decompress_model(info, blob, path, model, model_dir, device)
    f = open_root(path)
    t = open_tree(f, path, info["tree"])
    src = info["source"]
    specs = restored_specs(branch_specs(t), info)
    comp = output_compression(compression, level, f)
    out = Path(output)
    whole = _decode_payload(t, info, module, variables, device)
    try:
        with atomic_output(out, overwrite) as tmp, uproot.recreate(tmp, compression=comp) as fout:
            register_streamers(fout)
            wt = create_tree(fout, info["tree"], specs, t.title, 2)
            events, jets = _decode_blocks(
                fout, wt, t, specs, info, module, variables, whole, step_size, device
            )
            finish_tree(fout, wt)
            copy_others(f, fout, info.get("copied", []))
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
