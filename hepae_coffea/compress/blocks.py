"""One block of a compressed tree: jets in, branches to write out, and back.

A block is what one ``tree.iterate`` step reads. `encode_block` replaces the block's jets
by the model's latents (jet level: ``<collection>_z<i>`` per jet; event level: one
``<collection>Latent_z<i>`` per event plus the jets beyond the model's, kept as they are
in ``<collection>Extra_<variable>``); with ``latent_bits`` the latents are rounded.
`codec_block` writes a slice of an array codec's payload instead. Trees written flat
(``flat`` layout) also get the jets' counter ``nJet``. `decode_block` is the inverse of
`encode_block`, `restored_block` assembles the restored tree's branches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import awkward as ak
import numpy as np

from ..codecs import CodecError
from ..codecs.truncate import round_mantissa
from ..io.jets import pad_events
from ..variables.registry import from_gev
from .choose import CodecPayload, encode_payload, slice_block
from .root_copy import BranchSpec
from .source import JetSource, block_jets

if TYPE_CHECKING:  # torch is imported where a model runs: the array codecs never need it
    import torch

    from .layout import TreePlan

__all__ = [
    "Autoencoder",
    "check_latent_bits",
    "codec_block",
    "decode_block",
    "encode_block",
    "encode_codec",
    "extra_branch",
    "kept_branches",
    "latent_names",
    "latents_block",
    "model_transform",
    "restored_block",
]

#: a numpy (n, a) float32 -> (n, b) float32 function (a model's encode or decode)
Transform = Callable[[np.ndarray], np.ndarray]


class Autoencoder(Protocol):
    """What compress needs of a model (eager from plain weights, or TorchScript)."""

    latent_dim: int

    def encode(self, *inputs: torch.Tensor) -> torch.Tensor: ...

    def decode(self, *inputs: torch.Tensor) -> torch.Tensor: ...


def latent_names(collection: str, k: int, event_level: bool) -> list[str]:
    """The ``k`` latent branches: ``<collection>_z<i>`` (per jet) or
    ``<collection>Latent_z<i>`` (per event, for an event-level model)."""
    return [f"{collection}{'Latent' if event_level else ''}_z{i}" for i in range(k)]


def extra_branch(collection: str, jet_branch: str) -> str:
    """The branch of an event-level file holding the jets beyond the model's of
    ``jet_branch`` (``<collection>_<variable>``): ``<collection>Extra_<variable>``, the
    variable's own underscores kept."""
    return f"{collection}Extra_{jet_branch.partition('_')[2]}"


def run_model(fn: Callable[..., torch.Tensor], *arrays: np.ndarray, device: str) -> np.ndarray:
    """``fn`` (a model's encode or decode) over numpy arrays, in blocks, without autograd.

    torch is imported here, where a model runs: the array codecs never load it.
    """
    import torch

    from ..model.cache import in_blocks

    with torch.inference_mode():
        (r,) = in_blocks(
            fn, *(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays), device=device
        )
    out: np.ndarray = r.numpy()
    return out


def model_transform(fn: Callable[..., torch.Tensor], device: str) -> Transform:
    """A numpy (n, a) float32 -> (n, b) float32 wrapper of a model's encode or decode."""

    def call(a: np.ndarray) -> np.ndarray:
        return run_model(fn, np.asarray(a, np.float32), device=device)

    return call


def kept_branches(
    arrays: Any, plan: TreePlan, src: JetSource, counts: np.ndarray
) -> dict[str, Any]:
    """The block's branches written as read, and the jets' counter of a flat tree."""
    data: dict[str, Any] = {s.name: arrays[s.name] for s in plan.specs if s.name in arrays.fields}
    if src.layout == "flat":
        data[plan.counter] = np.asarray(counts).astype(np.uint32)
    return data


def check_latent_bits(latent_bits: int | None) -> None:
    """Raise ValueError unless ``latent_bits`` is None or in 0..23."""
    if latent_bits is not None and not 0 <= latent_bits <= 23:
        raise ValueError(f"--latent-bits must be in 0..23, got {latent_bits}")


def _round(z: np.ndarray, latent_bits: int | None) -> np.ndarray:
    return round_mantissa(z, latent_bits) if latent_bits is not None else z


def _encode_jets(module: Autoencoder, x: np.ndarray, device: str) -> np.ndarray:
    """Jet-level latents (n, latent_dim) float32 of the jets ``x``."""
    if not len(x):
        return np.zeros((0, int(module.latent_dim)), np.float32)
    return run_model(module.encode, x, device=device)


def _encode_events(
    module: Autoencoder, x: np.ndarray, counts: np.ndarray, event_jets: int, device: str
) -> np.ndarray:
    """Event-level latents (events, latent_dim) float32 of each event's leading jets."""
    xe, me = pad_events(x, counts, event_jets)
    return run_model(module.encode, xe, me.astype(np.float32), device=device)


def encode_block(
    arrays: Any,
    module: Autoencoder,
    plan: TreePlan,
    src: JetSource,
    variables: Sequence[str],
    latent_bits: int | None,
    event_jets: int | None,
    where: str,
    device: str = "cpu",
) -> tuple[dict[str, Any], int]:
    """The compressed tree's branches for one block read from the input, and its jets.

    The jets of ``arrays`` become the model's latents (rounded to ``latent_bits``); for
    an event-level model (``event_jets``) the jets beyond the first ``event_jets`` of each
    event are kept as read in the extra branches.
    """
    counts, x = block_jets(arrays, src, variables, where)
    out_coll = src.out_collection
    names = latent_names(out_coll, int(module.latent_dim), event_jets is not None)
    data = kept_branches(arrays, plan, src, ak.to_numpy(counts))
    if event_jets is None:
        z = _round(_encode_jets(module, x, device), latent_bits)
        for i, n in enumerate(names):
            data[n] = ak.unflatten(np.ascontiguousarray(z[:, i]), counts)
        return data, len(x)
    c = ak.to_numpy(counts)
    z = _round(_encode_events(module, x, c, event_jets, device), latent_bits)
    for i, n in enumerate(names):
        data[n] = np.ascontiguousarray(z[:, i])
    data[f"n{out_coll}Extra"] = np.maximum(c - event_jets, 0).astype(np.int32)
    for i, js in enumerate(plan.jet_specs):  # one spec per variable, in their order
        jets = arrays[src.branches[variables[i]]]
        data[extra_branch(out_coll, js.name)] = jets[:, event_jets:]  # the input's values
    return data, len(x)


def latents_block(
    arrays: Any,
    plan: TreePlan,
    src: JetSource,
    counts: np.ndarray,
    z: np.ndarray,
) -> dict[str, Any]:
    """The compressed tree's branches for a block whose jet-level latents ``z`` (one row
    per jet, already rounded) are known: the branches read and the latents."""
    names = latent_names(src.out_collection, z.shape[1], False)
    data = kept_branches(arrays, plan, src, counts)
    for i, name in enumerate(names):
        data[name] = ak.unflatten(np.ascontiguousarray(z[:, i]), counts)
    return data


def codec_block(
    arrays: Any,
    plan: TreePlan,
    src: JetSource,
    variables: Sequence[str],
    payload: CodecPayload,
    e0: int,
    j0: int,
) -> tuple[dict[str, Any], int]:
    """One block of the compressed tree: kept branches and the codec's slices (the block's
    events start at event ``e0`` and jet ``j0`` of the payload)."""
    counts = ak.to_numpy(ak.num(arrays[src.branches[variables[0]]], axis=1)).astype(np.int64)
    return codec_data(arrays, plan, src, payload, counts, e0, j0)


def codec_data(
    arrays: Any,
    plan: TreePlan,
    src: JetSource,
    payload: CodecPayload,
    counts: np.ndarray,
    e0: int,
    j0: int,
) -> tuple[dict[str, Any], int]:
    """Kept branches of ``arrays`` and the codec's slices for events with ``counts`` jets."""
    data = kept_branches(arrays, plan, src, counts)
    n = int(counts.sum())
    data.update(slice_block(payload, e0, e0 + len(counts), j0, j0 + n, counts))
    return data, n


def encode_codec(
    where: str,
    codec: str,
    x: np.ndarray,
    counts: np.ndarray,
    variables: Sequence[str],
    precision: str,
    collection: str,
    counter: str,
    *,
    encoder: Transform | None = None,
    decoder: Transform | None = None,
    latent_bits: int | None = None,
) -> CodecPayload:
    """`encode_payload` of all the jets, saying when a codec cannot take jets stored
    with E."""
    try:
        return encode_payload(
            codec,
            x,
            counts,
            variables,
            precision,
            collection,
            counter,
            encoder=encoder,
            decoder=decoder,
            latent_bits=latent_bits,
        )
    except CodecError as err:
        if "E" not in variables:
            raise
        raise CodecError(
            f"{where}: the jets have E instead of mass, which codec {codec!r} cannot store "
            f"({err}); "
            f"use --codec quantize or truncate"
        ) from None


def decode_block(
    arrays: Any,
    module: Autoencoder,
    info: Mapping[str, Any],
    variables: Sequence[str],
    device: str = "cpu",
) -> tuple[Any, np.ndarray]:
    """Latents (+ extra jets) -> (jets per event, flat decoded jets in the file's units)."""
    m = info["model"]
    k = int(m["latent_dim"])
    src = info["source"]
    out_coll = src["collection"] if src["layout"] == "copy" else "Jet"
    event_jets = int(m["event_jets"]) if m.get("level") == "event" else None
    names = latent_names(out_coll, k, event_jets is not None)
    counts = ak.to_numpy(arrays[info["counter"]]).astype(np.int64)  # jets per event
    if event_jets is None:
        z = np.stack([ak.to_numpy(ak.flatten(arrays[c])) for c in names], axis=1)
        rec = np.zeros((0, len(variables)), np.float32)
        if len(z):
            rec = run_model(module.decode, z, device=device)
        return counts, from_gev(rec.astype(np.float64), variables, src["units"])
    z = np.stack([ak.to_numpy(arrays[c]) for c in names], axis=1).astype(np.float32)
    mask = np.arange(event_jets)[None, :] < np.minimum(counts, event_jets)[:, None]
    rec_e = run_model(module.decode, z, mask.astype(np.float32), device=device)
    lead = from_gev(rec_e[mask].astype(np.float64), variables, src["units"])
    lead = ak.unflatten(lead, np.minimum(counts, event_jets))
    extra = ak.concatenate(
        [arrays[extra_branch(out_coll, b)][:, :, np.newaxis] for b in info["jet_branches"]],
        axis=2,
    )
    jets = ak.concatenate([lead, ak.values_astype(extra, np.float64)], axis=1)
    return ak.num(jets, axis=1), ak.to_numpy(ak.flatten(jets, axis=1))


def restored_block(
    arrays: Any,
    specs: Sequence[BranchSpec],
    decoded: Mapping[str, int],
    counts: np.ndarray,
    rec: np.ndarray,
) -> dict[str, Any]:
    """The restored tree's branches for one block: those stored as they were, and each
    jet branch of ``decoded`` (``{branch: column of rec}``) from the decoded jets ``rec``
    in its own type (integer variables are rounded by the model)."""
    dtypes = {s.name: s.dtype for s in specs}
    data = {s.name: arrays[s.name] for s in specs if s.name not in decoded}
    for b, i in decoded.items():
        data[b] = ak.unflatten(np.ascontiguousarray(rec[:, i]).astype(dtypes[b]), counts)
    return data
