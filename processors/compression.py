"""Coffea processor: compress -> decompress jets with an autoencoder, histogram the damage.

For every chunk of events the processor takes a jet collection (NanoAOD ``Jet`` with
``NanoAODSchema``, or the jagged ``Jet_*`` branches of a flat tree with ``BaseSchema``),
applies an optional selection, flattens the jets, runs the TorchScript model's
encode -> decode in float32, maps the results back onto the events (``ak.unflatten``) and
fills histograms of residuals, distributions, anomaly scores and latents, keyed by dataset.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
import torch
from coffea import processor

from hepae_coffea.errors import ModelFileError
from hepae_coffea.io.guards import safe_name
from hepae_coffea.io.jets import _assemble, _resolve_columns, pad_events
from hepae_coffea.model.cache import (
    DEVICES,
    block_rows,
    get_model,
    in_blocks,
    resolve_device,
)
from hepae_coffea.model.handle import ModelSource, open_model
from hepae_coffea.processing import fill_kernels
from hepae_coffea.processing.anomaly_hists import anomaly_hists
from hepae_coffea.processing.binning import Log2Binning, RegularBinning
from hepae_coffea.processing.hists import (
    COARSE_RESIDUAL_BINNING,
    PT_BINNING,
    RESIDUAL_BINNING,
    SCORE_BINNING,
    distribution_binnings,
    latent_binnings,
    latent_pairs,
    make_hists,
)
from hepae_coffea.processing.metrics import unphysical_mask
from hepae_coffea.variables.domain import REASONS, Domain, model_domain
from hepae_coffea.variables.registry import (
    canonical_variable,
    check_units,
    convert,
    model_units,
    normalise_units,
    relative_floor,
    residual_kind,
    to_gev,
    unit_scale,
)

__all__ = [
    "ChunkResult",
    "JetCompressionProcessor",
    "compress_decompress_chunk",
    "compressed_chunk_name",
    "fill_hists",
]

log = logging.getLogger(__name__)


@dataclass
class ChunkResult:
    """Per-chunk arrays of a compress -> decompress pass.

    ``original``/``reconstructed``/``latent``/``score`` are flat over the jets that passed
    the selection and were finite (in file order); ``counts`` gives how many such jets each
    event has, so ``ak.unflatten(reconstructed, counts)`` is the event structure.
    """

    original: np.ndarray
    reconstructed: np.ndarray
    latent: np.ndarray
    score: np.ndarray
    counts: np.ndarray
    n_jets: int
    n_selected: int
    n_nonfinite: int
    model_loaded: bool
    n_beyond: int = 0  # event-level models: selected jets after the leading J (not compressed)
    out_of_domain: dict[str, int] | None = None  # selected jets not decoded, per reason
    units: str = "GeV"  # energy unit of original/reconstructed (the model's)
    values: np.ndarray | None = None  # every jet of the chunk (model units), jet-level models
    kept: np.ndarray | None = None  # which of ``values`` were encoded (rows of ``latent``)
    jet_counts: np.ndarray | None = None  # every jet per event

    def unflatten(self, values: np.ndarray) -> ak.Array:
        """Map per-jet ``values`` back onto the event structure."""
        return ak.unflatten(values, self.counts)


def _jet_fields(events: ak.Array, collection: str) -> tuple[list[str], str]:
    """Field names available for the collection and the prefix to put before them."""
    fields = list(events.fields)
    if collection in fields and len(events[collection].fields) > 0:
        return list(events[collection].fields), ""
    prefix = collection + "_"
    return [f for f in fields if f.startswith(prefix)], prefix


def _column(events: ak.Array, collection: str, prefix: str, name: str) -> ak.Array:
    return events[name] if prefix else events[collection][name]


def compress_decompress_chunk(
    events: ak.Array,
    model_bytes: bytes,
    sha256: str,
    variables: Sequence[str],
    latent_dim: int,
    *,
    collection: str = "Jet",
    fields: Mapping[str, str] | None = None,
    pt_min: float | None = None,
    abs_eta_max: float | None = None,
    where: str = "chunk",
    event_jets: int | None = None,
    units: str = "GeV",
    metadata: Mapping[str, Any] | None = None,
    domain: Domain | None = None,
    device: str = "cpu",
) -> ChunkResult:
    """Run the model over one chunk's jets (vectorised) and return flat and per-event results.

    Parameters
    ----------
    events : awkward.Array
        A chunk of events (NanoEvents or a plain awkward record array).
    model_bytes, sha256 : bytes, str
        The TorchScript file and its hash (the per-worker cache key).
    variables : sequence of str
        The model's input variables, in order.
    latent_dim : int
        The model's latent size (for the shape of empty results).
    collection : str
        Jet collection (``Jet``), or prefix of flat branches (``Jet`` -> ``Jet_pt``).
    fields : mapping, optional
        ``{model variable: field name}`` where the names differ (e.g. ``{"mass": "m"}``).
        Without pt/eta/phi/mass/E fields, px/py/pz/E are converted with ``vector``.
    pt_min, abs_eta_max : float, optional
        Jet selection (pt in GeV), applied before the model.
    units : str
        Energy unit of the file's values; they are converted to the model's units
        (``metadata["units"]``, GeV for older models) before anything else.
    metadata : mapping, optional
        The model's metadata (units; default: a GeV model).
    domain : Domain, optional
        The model's domain: selected jets outside it (and non-finite ones) are not decoded
        and are counted per reason in ``out_of_domain``. Without it only non-finite jets
        are left out.
    event_jets : int, optional
        For event-level models: J, the leading jets per event the model takes together;
        the results then cover those jets only (``n_beyond`` counts the others), and
        ``latent`` has one row per event with jets.
    device : str
        ``cpu``, ``cuda`` or ``auto`` (cuda when this worker has a GPU).
    """
    device = resolve_device(device)
    module, loaded = get_model(model_bytes, sha256, device)
    fields = dict(fields or {})
    available, prefix = _jet_fields(events, collection)
    label = f"{where}: collection {collection!r}"

    def flat(name: str) -> np.ndarray:
        arr = ak.flatten(_column(events, collection, prefix, name), axis=1)
        return np.asarray(ak.to_numpy(arr))

    def read(wanted: list[str], keep_float32: bool = False) -> np.ndarray:
        mapping, convert = _resolve_columns(available, prefix, wanted, label)
        cols = {n: flat(n) for n in set(mapping.values())}
        return _assemble(cols, mapping, convert, wanted, keep_float32)

    meta = dict(metadata or {})
    m_units = model_units(meta)
    # float32 branches in the model's units are the model's input as they are; anything
    # else (other units, other types, derived variables) is converted in float64
    values = read([fields.get(v, v) for v in variables], keep_float32=True)
    f_units = normalise_units(units, where)
    if values.dtype != np.float32 or f_units != m_units:
        values = convert(values, variables, f_units, m_units)  # at the boundary
    values_units = m_units
    n_jets = len(values)
    counts_all = np.zeros(len(events), dtype=np.int64)
    jagged = [n for n in _resolve_columns(available, prefix, ["pt"], label)[0].values()]
    if jagged:  # jets per event from a jet variable (not a per-event counter like jet_n)
        first = _column(events, collection, prefix, jagged[0])
        counts_all = ak.to_numpy(ak.num(first, axis=1)).astype(np.int64)
    keep = np.ones(n_jets, dtype=bool)
    if pt_min is not None or abs_eta_max is not None:
        canon = [canonical_variable(v) for v in variables]
        if "pt" in canon and "eta" in canon:  # compared in float64
            pt = values[:, canon.index("pt")].astype(np.float64)
            eta = values[:, canon.index("eta")].astype(np.float64)
        else:
            pt, eta = read(["pt", "eta"]).T
            pt = pt * unit_scale(units) / unit_scale(m_units)
        if pt_min is not None:
            keep &= pt > pt_min / unit_scale(m_units)
        if abs_eta_max is not None:
            keep &= np.abs(eta) < abs_eta_max
    n_selected = int(keep.sum())
    codes = np.full(n_jets, -1, dtype=np.int8)
    kept_before = bool(keep.all())  # no selection: no copy of the values
    if domain is not None:
        codes[keep] = domain.reasons(values if kept_before else np.compress(keep, values, 0))
    else:
        codes[keep & ~np.isfinite(values).all(axis=1)] = 0
    out_of_domain = {r: int((codes == k).sum()) for k, r in enumerate(REASONS)}
    n_nonfinite = out_of_domain["nonfinite"]
    keep &= codes < 0
    kept_all = bool(keep.all())
    if kept_all:
        x = values if values.dtype == np.float32 else values.astype(np.float32)
    else:  # np.compress: many times faster than boolean indexing of rows
        x = np.compress(keep, values, axis=0).astype(np.float32, copy=False)
    check_units(values_units, meta, where)  # values enter the model in its own units only
    counts = np.zeros(len(counts_all), dtype=np.int64)
    if n_jets:
        if int(counts_all.sum()) != n_jets:
            raise ValueError(
                f"{where}: {n_jets} jets but the jet counts add up to {counts_all.sum()}"
            )
        if kept_all:
            counts = counts_all.copy()
        else:
            event = np.repeat(np.arange(len(counts_all)), counts_all)
            counts = np.bincount(np.compress(keep, event), minlength=len(counts_all))
            counts = counts.astype(np.int64, copy=False)
    n_beyond = 0
    if event_jets is not None:  # event-level model: the leading J jets of each event together
        xe, me = pad_events(x, counts, event_jets)
        has = counts > 0
        n_beyond = int(np.maximum(counts - event_jets, 0).sum())
        if has.any():
            with torch.inference_mode():
                z_t, rec_e, js = in_blocks(
                    module.encode_decode_score,
                    torch.from_numpy(xe[has]),
                    torch.from_numpy(me[has].astype(np.float32)),
                    block=max(block_rows() // event_jets, 1) if device == "cpu" else None,
                    device=device,
                )
            rec, s, z = rec_e.numpy()[me[has]], js.numpy()[me[has]], z_t.numpy()
        else:
            z = np.zeros((0, latent_dim), np.float32)
            rec = np.zeros((0, len(variables)), np.float32)
            s = np.zeros(0, np.float32)
        x = xe[me]
        counts = np.minimum(counts, event_jets)
    elif len(x):
        with torch.inference_mode():
            z_t, rec_t, s_t = in_blocks(
                module.encode_decode_score, torch.from_numpy(x), device=device
            )
        z, rec, s = z_t.numpy(), rec_t.numpy(), s_t.numpy()
    else:  # chunks without jets: empty arrays of the right shape
        z = np.zeros((0, latent_dim), np.float32)
        rec = np.zeros((0, len(variables)), np.float32)
        s = np.zeros(0, np.float32)
    return ChunkResult(
        x,
        rec,
        z,
        s,
        counts,
        n_jets,
        n_selected,
        n_nonfinite,
        loaded,
        n_beyond,
        out_of_domain,
        m_units,
        values if event_jets is None else None,
        keep if event_jets is None else None,
        counts_all,
    )


def compressed_chunk_name(dataset: str, source: str, start: int, stop: int) -> str:
    """Relative path ``<dataset>/<file stem>_<hash>_<start>_<stop>.root`` of a chunk
    written with ``compress_dir``: the dataset and file names are sanitised to single path
    components (nothing can point outside the folder), and an 8-hex-digit hash of the
    dataset name and the full input path keeps inputs with the same file name apart."""
    digest = hashlib.sha256(f"{dataset}\0{source}".encode()).hexdigest()[:8]
    stem = safe_name(Path(str(source)).stem, "file")
    return f"{safe_name(dataset, 'dataset')}/{stem}_{digest}_{start}_{stop}.root"


def _set_moments(h: hist.Hist[Any], i: int, k: int, values: np.ndarray) -> None:
    """Mean-storage cell (i, k) of an empty histogram set from ``values`` (count, mean,
    sum of squared deviations, summed in numpy's pairwise order): the same state as
    filling each value, at a fraction of the cost (per-value Mean fills were the
    processor's slowest step)."""
    if values.size == 0:
        return
    m = np.empty(3)
    fill_kernels.moments(values, m)
    view: Any = h.view()  # a structured (Mean storage) view
    view["count"][i, k] = m[0]
    view["value"][i, k] = m[1]
    view["_sum_of_deltas_squared"][i, k] = m[2]


#: residual_vs_pt's coarse residual bin of each fine residual bin (same result as indexing
#: the coarse binning itself, without a second pass over the residuals)
_COARSE_OF_FINE = RESIDUAL_BINNING.coarsen_to(COARSE_RESIDUAL_BINNING)


def _log2_args(b: Log2Binning) -> tuple[int, int, int]:
    return b.lo_exp, b.hi_exp, b.bits


def _fill_distributions(
    out: dict[str, Any],
    orig: np.ndarray,
    rec: np.ndarray,
    scale: np.ndarray,
    metadata: Mapping[str, Any],
) -> None:
    """The ``distribution`` histograms: original and reconstructed values (``orig`` and
    ``rec`` in the model's units, times ``scale``: in GeV), in the order of the metadata's
    variables."""
    binnings = list(distribution_binnings(metadata).items())
    n_var = len(binnings)
    kind = np.zeros(n_var, dtype=np.int64)
    reg_n = np.ones(n_var, dtype=np.int64)
    reg_lo = np.zeros(n_var)
    reg_width = np.ones(n_var)
    n_edges = np.zeros(n_var, dtype=np.int64)
    flow = np.zeros(n_var, dtype=np.int64)
    edge_lists = []
    table_lists: list[np.ndarray] = []
    k0 = np.zeros(n_var, dtype=np.int64)
    shift = np.zeros(n_var, dtype=np.int64)
    for i, (_, b) in enumerate(binnings):
        table_lists.append(np.zeros(0, dtype=np.int64))
        if isinstance(b, RegularBinning):
            reg_n[i], reg_lo[i], reg_width[i] = b.n, b.lo, b.hi - b.lo
            flow[i] = b.n + 2
            edge_lists.append(np.zeros(0))
        else:
            edge_lists.append(np.asarray(b.edges, dtype=np.float64))
            n_edges[i] = len(b.edges)
            flow[i] = len(b.edges) + 1
            lookup = b.bucket_table()  # tens of microseconds per chunk
            if lookup is None:
                kind[i] = 1  # binary search
            else:
                kind[i] = 2
                table_lists[i], k0[i], shift[i] = lookup
    edges = np.full((n_var, int(n_edges.max(initial=0)) + 1), np.inf)  # +inf after the last
    for i, e in enumerate(edge_lists):
        edges[i, : len(e)] = e
    n_table = np.array([len(t) for t in table_lists], dtype=np.int64)
    tables = np.zeros((n_var, max(1, int(n_table.max(initial=0)))), dtype=np.int64)
    for i, t in enumerate(table_lists):
        tables[i, : len(t)] = t
    counts = np.zeros((n_var, int(flow.max(initial=1)), 2))
    fill_kernels.fill_distributions(
        orig,
        rec,
        scale,
        kind,
        reg_n,
        reg_lo,
        reg_width,
        edges,
        n_edges,
        tables,
        n_table,
        k0,
        shift,
        counts,
    )
    for i, (v, _) in enumerate(binnings):
        view = out["distribution"][v].view(flow=True)  # axes: value, version
        view += counts[i, : flow[i]]


def fill_hists(
    out: dict[str, Any],
    res: ChunkResult,
    variables: Sequence[str],
    metadata: Mapping[str, Any],
    timings: dict[str, float] | None = None,
) -> None:
    """Fill one chunk's histograms (``make_hists(metadata)``) and its anomaly histograms.

    Every histogram gets exactly the bins ``Hist.fill`` would give it, but is filled by a
    numba kernel (`hepae_coffea.processing.fill_kernels`) that loops over the jets once,
    computes each value (residuals in GeV, as `hepae_coffea.processing.metrics.residuals`
    does), finds its bin with the arithmetic of `hepae_coffea.processing.binning` and adds
    one count straight into the histogram. The residual-vs-pt histogram's coarse bins are
    looked up from the fine residual bins, and the event scores' bins are computed once
    for the score and the anomaly histograms.

    Parameters
    ----------
    out : dict
        The chunk's histograms; ``out["anomaly"]`` is set.
    res : ChunkResult
        The chunk's compress -> decompress results.
    variables : sequence of str
        The model's variables (the columns of ``res.original``).
    metadata : mapping
        The model's metadata (the histograms' binnings).
    timings : dict, optional
        If given, the seconds spent in each stage are added to it, keyed by stage:
        ``residuals`` (residuals and the residual, residual_abs and residual_vs_pt
        histograms), ``residual_moments``, ``distribution``, ``scores``,
        ``latent, latent_pairs`` and ``anomaly``.
    """
    clock = _StageClock(timings)
    # histograms and residuals in GeV, whatever the model's units
    n_var = len(variables)
    scale = to_gev(np.ones((1, n_var)), variables, res.units)[0]
    canon = [canonical_variable(v) for v in variables]
    orig = np.ascontiguousarray(res.original)
    rec = np.ascontiguousarray(res.reconstructed)
    n = len(orig)
    # relative residuals: the mass (a floor) relative to max(|m|, 1 GeV); absolute
    # residuals: plain differences, phi's wrapped
    floor = np.array([relative_floor(v) for v in variables], dtype=np.float64)
    wrap = np.array([c == "phi" for c in canon])
    absolute = np.array([residual_kind(v) == "absolute" for v in variables])
    rel = np.empty((n_var, n))
    absr = np.empty((n_var, n))
    n_rel = np.zeros(n_var, dtype=np.int64)
    fill_kernels.fill_residuals(
        orig,
        rec,
        scale,
        floor,
        wrap,
        absolute,
        canon.index("pt") if "pt" in canon else -1,
        *_log2_args(RESIDUAL_BINNING),
        *_log2_args(PT_BINNING),
        _COARSE_OF_FINE,
        out["residual"].view(flow=True),
        out["residual_abs"].view(flow=True),
        out["residual_vs_pt"].view(flow=True),
        rel,
        absr,
        n_rel,
    )
    clock("residuals")
    for i in range(n_var):
        _set_moments(out["residual_moments"], i, 0, rel[i, : n_rel[i]])
        _set_moments(out["residual_moments"], i, 1, absr[i])
    clock("residual_moments")
    _fill_distributions(out, orig, rec, scale, metadata)
    clock("distribution")
    has = res.counts > 0
    if (res.counts < 0).any() or int(res.counts.sum()) != len(res.score):
        raise ValueError(
            f"{len(res.score)} jet scores but the jet counts add up to {res.counts.sum()}"
        )
    event_index = np.zeros((2, int(has.sum())), dtype=np.int64)
    fill_kernels.event_summaries(
        np.ascontiguousarray(res.score),
        res.counts.astype(np.int64, copy=False),
        *_log2_args(SCORE_BINNING),
        out["score_jet"].view(flow=True),
        out["score_event_max"].view(flow=True),
        out["score_event_mean"].view(flow=True),
        event_index[0],
        event_index[1],
    )
    clock("scores")
    values_binning, pair_binning = latent_binnings(metadata)
    pairs = np.array(latent_pairs(res.latent.shape[1]), dtype=np.int64).reshape(-1, 2)
    fill_kernels.fill_latents(
        np.ascontiguousarray(res.latent),
        values_binning.n,
        values_binning.lo,
        values_binning.hi - values_binning.lo,
        out["latent"].view(flow=True),
        pairs,
        pair_binning.n,
        pair_binning.lo,
        pair_binning.hi - pair_binning.lo,
        out["latent_pairs"].view(flow=True),
    )
    clock("latent, latent_pairs")
    out["anomaly"] = anomaly_hists(
        res.original,
        res.score,
        res.counts,
        variables,
        event_score_index={"max": event_index[0], "mean": event_index[1]},
        units=res.units,
    )
    clock("anomaly")


class _StageClock:
    """Adds the seconds since the previous call to ``timings[stage]`` (nothing without
    ``timings``)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self.timings is None:
            return
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
        self.last = now


class JetCompressionProcessor(processor.ProcessorABC):  # type: ignore[misc]  # coffea is untyped
    """Compress -> decompress jets chunk by chunk and histogram residuals and scores.

    The processor holds only configuration and the model file's bytes, so it pickles to
    any executor; the model itself is loaded once per worker process (cached by hash).

    Parameters
    ----------
    model : path, bytes or ModelHandle, optional
        TorchScript model file written by hepae-coffea (default: the shipped model), read
        once (see `hepae_coffea.model.handle.open_model`).
    collection : str
        Jet collection name (NanoAOD ``Jet``), or prefix of flat jagged branches.
    fields : mapping, optional
        ``{model variable: field}`` where the names differ from the model's variables.
    pt_min, abs_eta_max : float, optional
        Jet selection before the model.
    torch_threads : int, optional
        Set torch's intra-op threads in the worker (1 avoids oversubscription when several
        worker processes share a machine). None leaves torch's setting alone.
    units : {"GeV", "MeV"}, optional
        Energy unit of the input files (GeV when omitted); converted to the model's.
    compress_dir : path, optional
        Also write each chunk's events, jets compressed, as a ROOT file
        ``compress_dir/<dataset>/<file>_<hash>_<start>_<stop>.root`` (see
        :func:`compressed_chunk_name`; as ``hepae compress`` does, with ``codec``,
        ``precision``, ``latent_bits``, ``compression`` and ``level``); the output lists
        them under ``"compressed"``. The chunk's latents computed here are reused (only
        jets outside the selection or the model's domain are encoded again, and the jet
        branches are not read again; event-level models encode in the writer). The
        directory must be reachable from every worker.
    codec, precision : str, optional
        The codec and precision SPEC of the compressed chunks (see ``hepae compress``).
    sources : mapping, optional
        ``{file path: resolve_source keyword arguments}`` from the format detection
        (`hepae_coffea.compress.files.detect_source`); files not in it are detected on the worker.
    device : {"auto", "cpu", "cuda"}
        Where the model runs on each worker (``auto``: cuda when the worker has a GPU).
    """

    def __init__(
        self,
        model: ModelSource = None,
        *,
        collection: str = "Jet",
        fields: Mapping[str, str] | None = None,
        pt_min: float | None = None,
        abs_eta_max: float | None = None,
        torch_threads: int | None = None,
        compress_dir: str | os.PathLike[str] | None = None,
        latent_bits: int | None = None,
        compression: str = "zstd",
        level: int = 5,
        units: str | None = None,
        device: str = "cpu",
        codec: str | None = None,
        precision: str | None = None,
        sources: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if device.split(":", 1)[0] not in DEVICES:
            raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
        self.device = device
        self.model = open_model(model)
        label = self.model.label
        self.metadata = self.model.metadata
        self.variables = self.model.variables
        self.event_jets = self.model.event_jets
        self.collection = collection
        self.fields = dict(fields or {})
        unknown = set(self.fields) - set(self.variables)
        if unknown:
            raise ModelFileError(
                f"{label}: field mapping names {sorted(unknown)}, which are not model "
                f"variables {self.variables}"
            )
        self.units = normalise_units(units or "GeV", "units")
        self.domain = model_domain(self.metadata)
        self.pt_min = pt_min
        self.abs_eta_max = abs_eta_max
        self.torch_threads = torch_threads
        self.compress_dir = str(compress_dir) if compress_dir is not None else None
        self.latent_bits = latent_bits
        self.compression = compression
        self.level = level
        self.codec = codec
        self.precision = precision
        self.sources = {k: dict(v) for k, v in (sources or {}).items()}

    @property
    def model_bytes(self) -> bytes:
        """The model file's bytes."""
        return self.model.data

    @property
    def sha256(self) -> str:
        """SHA-256 of the model file (the per-worker cache key)."""
        return self.model.sha256

    def check_variables(self, requested: Sequence[str]) -> None:
        """Fail unless the model's variables are ``requested`` (in order)."""
        self.model.check_variables(requested)

    def process(self, events: ak.Array) -> dict[str, Any]:
        if self.torch_threads is not None and torch.get_num_threads() != self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        meta = events.metadata if hasattr(events, "metadata") else {}
        dataset = meta.get("dataset", "dataset")
        where = f"{meta.get('filename', 'events')} [{meta.get('entrystart', '?')}:{meta.get('entrystop', '?')}]"
        res = compress_decompress_chunk(
            events,
            self.model_bytes,
            self.sha256,
            self.variables,
            int(self.metadata["latent_dim"]),
            collection=self.collection,
            fields=self.fields,
            pt_min=self.pt_min,
            abs_eta_max=self.abs_eta_max,
            where=where,
            event_jets=self.event_jets,
            units=self.units,
            metadata=self.metadata,
            domain=self.domain,
            device=getattr(self, "device", "cpu"),
        )
        out = make_hists(self.metadata)
        self._fill(out, res)
        c = out["counters"]
        c["events"] = len(events)
        c["jets"] = res.n_jets
        c["jets_selected"] = res.n_selected
        c["jets_nonfinite"] = res.n_nonfinite
        ood = res.out_of_domain or {}
        c["jets_out_of_domain"] = sum(ood.values())
        c["jets_in_domain"] = res.n_selected - c["jets_out_of_domain"]
        for reason, n in ood.items():
            c[f"jets_out_of_domain_{reason}"] = n
        c["jets_unphysical"] = int(unphysical_mask(res.reconstructed, self.variables).sum())
        c["model_loads"] = int(res.model_loaded)
        c["jets_beyond_event_jets"] = res.n_beyond
        if self.compress_dir is not None:
            out["compressed"] = self._write_chunk(meta, dataset, res)
        return {dataset: out}

    def _source(self, path: str, tree: str) -> dict[str, Any]:
        """Where the jets are in ``path`` (from run's format detection, else detected)."""
        from hepae_coffea.compress.files import detect_source

        found = getattr(self, "sources", {}).get(path)
        if found is not None:
            return dict(found)
        codec = getattr(self, "codec", None)
        variables = self.variables if codec in (None, "ae") else ["pt", "eta", "phi", "mass"]
        return detect_source(path, variables, units=self.units, tree=tree)[0]

    def _write_chunk(
        self, meta: Mapping[str, Any], dataset: str, res: ChunkResult
    ) -> dict[str, Any]:
        from hepae_coffea.compress.files import ChunkJets, write_compressed_chunk

        src = meta["filename"]
        tree = meta.get("treename", "Events")
        start, stop = int(meta["entrystart"]), int(meta["entrystop"])
        if self.compress_dir is None:
            raise ValueError("the processor has no compress_dir to write chunks to")
        out = Path(self.compress_dir) / compressed_chunk_name(dataset, src, start, stop)
        jets = None
        if res.values is not None and res.jet_counts is not None:
            jets = ChunkJets(res.jet_counts, res.values, self.variables, res.latent, res.kept)
        device = resolve_device(getattr(self, "device", "cpu"))
        events, n = write_compressed_chunk(
            src,
            tree,
            start,
            stop,
            out,
            self.model_bytes,
            latent_bits=self.latent_bits,
            compression=self.compression,
            level=self.level,
            device=device,
            codec=getattr(self, "codec", None),
            precision=getattr(self, "precision", None),
            source=self._source(src, tree),
            jets=jets,
            model=get_model(self.model_bytes, self.sha256, device)[0],
        )
        return {"files": [str(out)], "events": events, "jets": n}

    def _fill(self, out: dict[str, Any], res: ChunkResult) -> None:
        fill_hists(out, res, self.variables, self.metadata)

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator
