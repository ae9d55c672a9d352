"""One chunk of an input file compressed into its own file, as the processor writes them.

`write_compressed_chunk` writes entries [start, stop) of one file with the same layout and
record as :func:`~hepae_coffea.compress.files.compress`, on any executor. With the jets
the processor already holds (`~hepae_coffea.compress.source.ChunkJets`) the jet branches
are not read again and only the jets without latents are encoded. The steps: resolve the
codec and open the model (`_chunk_model`), route jets with E (`energy_route`), read the
chunk (`_read_chunk`), encode it (`_encode_chunk`), and write it with its record and model
(`_write_chunk`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from ..codecs.truncate import round_mantissa
from ..errors import HepaeError
from ..io.atomic import atomic_output
from ..io.rootfile import open_root
from ..model.handle import ModelSource
from .blocks import (
    Autoencoder,
    check_latent_bits,
    codec_data,
    encode_block,
    encode_codec,
    latents_block,
    model_transform,
)
from .choose import KINEMATICS, CodecPayload, resolve_codec
from .energy import ENERGY_DEFAULT_CODEC, energy_route
from .layout import TreePlan, layout_record, plan_tree
from .model_store import CompressModel, model_record, open_compress_model, write_model
from .record import build_record, write_record
from .root_copy import create_tree, fill, finish_tree, output_compression, register_streamers
from .source import ChunkJets, JetSource, block_jets, file_variables, open_tree, resolve_source

__all__ = ["write_compressed_chunk"]


@dataclass
class _Chunk:
    """One chunk as read: where its jets are, the compressed tree planned for the
    model's latents, the branches read, and the tree's title."""

    src: JetSource
    tree: Any  # the input tree (its file closed; its branch types are known)
    plan: TreePlan
    read: list[str]  # the branches read
    arrays: Any
    title: str


def _chunk_model(
    codec: str,
    model_bytes: ModelSource,
    device: str,
    precision: str | None,
    module: Autoencoder | None,
) -> CompressModel | None:
    """The model for codec ``ae`` (None for the array codecs): its plain weights and the
    module to encode with (``module`` if given, else rebuilt from the weights)."""
    if codec != "ae":
        return None
    stored = open_compress_model(model_bytes, device, label="model", module=module)
    if precision is not None and stored.event_jets is not None:
        raise HepaeError("--precision with the autoencoder needs a jet-level model")
    return stored


def _read_chunk(
    path: str,
    start: int,
    stop: int,
    variables: Sequence[str],
    kw: Mapping[str, Any],
    model: CompressModel | None,
    reuse: bool,
) -> _Chunk:
    """The chunk's branches (without the jet branches when the processor's jets are
    reused) and the compressed tree planned for the model's latents."""
    latent_dim = int(model.metadata.get("latent_dim", 0)) if model is not None else 0
    event_jets = model.event_jets if model is not None else None
    f = open_root(path)
    with f:
        src = resolve_source(f, path, variables, **kw)
        t = open_tree(f, path, src.tree)
        plan = plan_tree(t, src, variables, latent_dim, event_jets)
        jet_cols = {src.branches[v] for v in file_variables(src, variables)}
        read = [b for b in plan.read if b not in jet_cols] if reuse else plan.read
        arrays = t.arrays(read, entry_start=start, entry_stop=stop, library="ak")
        title = t.title
    return _Chunk(src, t, plan, read, arrays, title)


@dataclass
class _Encoded:
    """The chunk's compressed tree: its plan, the branches to write and the numbers."""

    plan: TreePlan
    data: dict[str, Any]
    events: int
    jets: int
    payload: CodecPayload | None


def _encode_chunk(
    chunk: _Chunk,
    model: CompressModel | None,
    jets: ChunkJets | None,
    variables: Sequence[str],
    codec: str,
    precision: str | None,
    latent_bits: int | None,
    where: str,
    device: str,
) -> _Encoded:
    """Encode the chunk: each jet's latents (from the processor's ``jets`` where it has
    them), or an array codec's payload of all its jets."""
    src, plan, arrays = chunk.src, chunk.plan, chunk.arrays
    if jets is None:
        if precision is None:
            assert model is not None  # the array codecs need a precision
            data, n = encode_block(
                arrays,
                model.module,
                plan,
                src,
                variables,
                latent_bits,
                model.event_jets,
                where,
                device,
            )
            return _Encoded(plan, data, len(arrays), n, None)
        c, x = block_jets(arrays, src, variables, where)
        counts = ak.to_numpy(c).astype(np.int64)
    else:
        counts = np.asarray(jets.counts, np.int64)
        if chunk.read and len(arrays) != len(counts):
            raise HepaeError(f"{where}: {len(arrays)} events read, the processor had {len(counts)}")
        x = jets.columns(variables, where)
        if precision is None:
            assert model is not None
            encode = jets.encoder(model_transform(model.module.encode, device))
            k = int(model.metadata["latent_dim"])
            z = encode(x) if len(x) else np.zeros((0, k), np.float32)
            if latent_bits is not None:
                z = round_mantissa(z, latent_bits)
            data = latents_block(arrays, plan, src, counts, z)
            return _Encoded(plan, data, len(counts), len(x), None)
    enc = dec = None
    if model is not None:
        enc = model_transform(model.module.encode, device)
        enc = jets.encoder(enc) if jets is not None else enc
        dec = model_transform(model.module.decode, device)
    payload = encode_codec(
        where,
        codec,
        x,
        counts,
        variables,
        precision,
        src.out_collection,
        plan.counter,
        encoder=enc,
        decoder=dec,
        latent_bits=latent_bits,
    )
    plan = plan_tree(chunk.tree, src, variables, 0, None, payload.specs)
    data, n = codec_data(arrays, plan, src, payload, counts, 0, 0)
    return _Encoded(plan, data, len(counts), n, payload)


def _write_chunk(
    output: Path,
    tree: str,
    title: str,
    encoded: _Encoded,
    record: dict[str, Any],
    blob: bytes | None,
    comp: Any,
) -> None:
    """Write the chunk's compressed tree, its record and the model's weights ``blob`` (None:
    stored by reference or no model) atomically to ``output``."""
    import uproot

    with (
        atomic_output(output, overwrite=True) as tmp,
        uproot.recreate(tmp, compression=comp) as fout,
    ):
        register_streamers(fout)
        wt = create_tree(fout, tree, encoded.plan.specs, title, 2)
        fill(fout, wt, encoded.plan.specs, encoded.data)
        finish_tree(fout, wt)
        write_record(fout, record)
        if blob is not None:
            write_model(fout, blob)


def write_compressed_chunk(
    path: str,
    tree: str,
    start: int,
    stop: int,
    output: str | os.PathLike[str],
    model_bytes: ModelSource,
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
    model_bytes
        The model file's bytes (or a `~hepae_coffea.model.handle.ModelHandle`, or a path);
        used by codec ``ae`` only.
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

    Returns
    -------
    tuple of int
        Events and jets written.
    """
    kw = dict(source) if source is not None else {"tree": tree, "collection": collection}
    codec_given = codec
    codec = resolve_codec(codec_given, precision)
    if kw.get("energy") and codec_given is None and codec != "ae":
        codec = ENERGY_DEFAULT_CODEC
    check_latent_bits(latent_bits)
    from ..model.cache import resolve_device  # torch: only where a model runs

    device = resolve_device(device)
    stored = _chunk_model(codec, model_bytes, device, precision, model)
    variables = stored.variables if stored is not None else list(KINEMATICS)
    event_jets = stored.event_jets if stored is not None else None
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
    chunk = _read_chunk(path, start, stop, variables, kw, stored, reuse)
    encoded = _encode_chunk(
        chunk,
        stored,
        jets if reuse else None,
        variables,
        codec,
        precision,
        latent_bits,
        where,
        device,
    )
    src = chunk.src
    comp = output_compression(compression, level, None)
    record = build_record(
        model_record(stored, model_ref) if stored is not None else None,
        encoded.payload,
        variables,
        layout_record(src, encoded.plan, src.out_tree, latent_bits),
        encoded.events,
        encoded.jets,
        comp,
        [os.path.basename(path)],
        entries=[start, stop],
        copied=[],
        not_copied=[],
    )
    blob = stored.blob if stored is not None and not model_ref else None
    _write_chunk(Path(output), src.out_tree, chunk.title, encoded, record, blob, comp)
    return encoded.events, encoded.jets
