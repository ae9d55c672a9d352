"""Entropy coding of quantised jets with a learned, context-conditioned probability model.

Each jet's (pt, eta, phi, mass) is quantised as in `quantize` (log pt, eta, phi on the
circle, log|mass| with its sign), then the integers are coded with ``constriction``'s
range coder, one stream per block of events, in an order that lets the decoder know the
context of every value before it needs it:

1. pt: the first jet of each event from a histogram conditioned on the jet count; then
   jet by jet, ``log(pt_prev / pt)`` conditioned on the jet's index and the previous pt;
2. eta, conditioned on the jet's pt and whether it is the first jet;
3. phi: the first jet uniformly around the circle; the others as |delta phi| to the first
   jet (plus a sign), conditioned on the jet index and ``pt / pt_first`` (the two leading
   jets of a dijet event are back to back);
4. mass: its sign class (positive, zero, negative), then ``log(|m| / pt)`` conditioned on
   the jet's pt and whether it is the first jet.

The model (`EntropyModel`) is a set of histograms in physical coordinates, one per
context, stored as plain data: no code. Each weight is a power of sqrt(2) (a *level*,
``weight = round(2 ** (level / 2))``, probabilities within 19 %, a few thousandths of a
bit per symbol); a stream's levels are stored row by row as differences to the previous
bin (int8), LZMA-compressed (raw LZMA2, 64 KiB dictionary) and base64-encoded in the
JSON (``"levels"``). Weights off that grid are stored as a JSON list (``"weights"``).
A value falls into a histogram bin (coded with the bin's probability) and its position
inside the bin is coded
uniformly; values outside the histogram's range go through an escape symbol and 32 raw
bits. Because the bins live in physical coordinates, one model serves every precision.
Decoding reproduces the quantised integers exactly.

Other columns (beyond pt, eta, phi, mass) are stored with the ``pcodec`` codec (`pco`):
floats quantised as by `quantize`, integers unchanged, both coded losslessly with pcodec
(branch ``p_bytes``, one chunk per column and block). Payloads written before that hold
them as the quantiser's integers (branches ``q_<name>``); they still decode.
"""

from __future__ import annotations

import base64
import binascii
import json
import lzma
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import constriction
import numpy as np

from . import pco, quantize
from .base import CodecError, Encoded, check_columns
from .precision import Precision, PrecisionError, parse_precision
from .quantize import Grid, make_grid

__all__ = ["EntropyModel", "decode", "encode", "fit_model"]

NAME = "entropy"
MODEL_FORMAT = "hepae-entropy-model"
#: the model format written (1: weights as JSON lists; 2: also compressed levels)
MODEL_VERSION = 2
KINEMATICS = ("pt", "eta", "phi", "mass")
EXPECTED_COORD = {"pt": "log", "eta": "linear", "phi": "angle", "mass": "log"}
#: default precision the model's features are computed at when fitting
FIT_PRECISION = "nanoaod"
#: total of the integer weights of one histogram (before the +1 floor)
WEIGHT_SCALE = 1 << 16
#: weights on the level grid: ``round(2 ** (level / 2))``, levels 0..MAX_LEVEL
MAX_LEVEL = 40
#: smallest level a fitted weight gets (weight 4 of WEIGHT_SCALE: probability 2**-14)
MIN_FIT_LEVEL = 4
LEVEL_WEIGHTS = np.rint(np.exp2(np.arange(MAX_LEVEL + 1) / 2.0)).astype(np.int64)
#: context edges by name (physical units), as `CONTEXT_EDGES`
Edges = Mapping[str, list[float]]
#: a coder's tables: (stream, step) -> (integer bin edges, probabilities, {context: model})
_Tables = dict[tuple[str, float], tuple[np.ndarray, np.ndarray, dict[int, Any]]]
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 16}]
_RAW_OFFSET = 1 << 31
_MAX_UNIFORM = 1 << 24

#: histogram ranges (physical coordinate) and bin counts per stream: 64 bins code as well
#: as 256 on held-out jets (the finer bins' shapes are mostly noise of the training jets)
#: with a model a third the size
STREAM_RANGES: dict[str, tuple[float, float, int]] = {
    "pt_first": (math.log(5.0), math.log(10_000.0), 64),
    "pt_next": (-0.25, 6.0, 64),
    "eta": (-6.0, 6.0, 64),
    "dphi": (0.0, math.pi, 32),
    "mass": (-9.0, 0.5, 64),
    "mass_sign": (0.0, 3.0, 3),
}
#: context definitions (edges in physical units)
CONTEXT_EDGES: dict[str, list[float]] = {
    "njet": [2, 3, 4, 5, 7],  # 6 classes of the event's jet count
    "jet_index": [2, 3],  # index 1, 2, 3+ (for jets after the first)
    "log_pt": [math.log(v) for v in (30, 45, 70, 110, 170, 260, 400)],  # 8 classes
    "log_ratio": [math.log(v) for v in (0.3, 0.6, 0.85)],  # pt / pt_first, 4 classes
    "eta": [-2.5, -1.5, -0.7, 0.0, 0.7, 1.5, 2.5],  # the first jet's eta, 8 classes
}


def _cls(name: str, edges: Mapping[str, list[float]], x: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(edges[name], np.float64), x, side="right")


def _n_classes(edges: Mapping[str, list[float]], name: str) -> int:
    return len(edges[name]) + 1


# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------
@dataclass
class Histogram:
    """Histograms of one stream: ``weights[c, b]`` for context c, bin b (last: escape)."""

    lo: float
    hi: float
    bins: int
    weights: np.ndarray  # (contexts, bins + 1) int64, >= 1

    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, self.bins + 1)

    def levels(self) -> np.ndarray | None:
        """The weights' levels (``LEVEL_WEIGHTS[levels] == weights``), or None if off grid."""
        w = self.weights
        if np.any(w < 1) or np.any(w > LEVEL_WEIGHTS[-1]):
            return None
        lv = np.rint(2.0 * np.log2(w)).astype(np.int64)
        return lv if np.array_equal(LEVEL_WEIGHTS[lv], w) else None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"lo": self.lo, "hi": self.hi, "bins": self.bins}
        lv = self.levels()
        if lv is None:
            d["weights"] = self.weights.astype(int).tolist()
            return d
        delta = np.diff(lv, axis=1, prepend=0).astype(np.int8)
        packed = lzma.compress(delta.tobytes(), format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
        d["contexts"] = int(lv.shape[0])
        d["levels"] = base64.b64encode(packed).decode("ascii")
        return d

    @classmethod
    def from_json(cls, name: str, d: Mapping[str, Any]) -> Histogram:
        try:
            lo, hi, bins = float(d["lo"]), float(d["hi"]), int(d["bins"])
            packed = (d["levels"], int(d["contexts"])) if "levels" in d else None
            weights = None if packed else np.asarray(d["weights"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as err:
            raise CodecError(f"entropy model stream {name!r} is malformed: {err}") from None
        if packed is not None:
            w = _unpack_levels(name, packed[0], packed[1], bins + 1)
        else:
            assert weights is not None  # read when there are no levels
            w = weights
        if not (hi > lo and bins >= 1 and w.ndim == 2 and w.shape[1] == bins + 1):
            raise CodecError(f"entropy model stream {name!r} has inconsistent shapes")
        if np.any(w < 1):
            raise CodecError(f"entropy model stream {name!r} has non-positive weights")
        return cls(lo, hi, bins, w)


def _unpack_levels(name: str, text: str, contexts: int, width: int) -> np.ndarray:
    """Weights from the base64 raw-LZMA2 int8 level differences of ``contexts`` rows."""
    n = contexts * width
    if contexts < 1 or width < 2 or n > 1 << 24:
        raise CodecError(f"entropy model stream {name!r} has a bad shape ({contexts} x {width})")
    try:
        packed = base64.b64decode(text, validate=True)
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
        raw = dec.decompress(packed, max_length=n + 1)
    except (binascii.Error, lzma.LZMAError, TypeError) as err:
        raise CodecError(f"entropy model stream {name!r}: levels do not decode: {err}") from None
    if len(raw) != n or not dec.eof:
        raise CodecError(
            f"entropy model stream {name!r}: levels hold {len(raw)} bytes, expected {n}"
        )
    lv = np.cumsum(np.frombuffer(raw, np.int8).reshape(contexts, width), axis=1)
    if lv.min() < 0 or lv.max() > MAX_LEVEL:
        raise CodecError(f"entropy model stream {name!r}: levels outside [0, {MAX_LEVEL}]")
    return LEVEL_WEIGHTS[lv]


@dataclass
class EntropyModel:
    """The learned probability model: histograms per stream and context edges."""

    streams: dict[str, Histogram]
    contexts: dict[str, list[float]]
    trained_on: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (numbers, lists, strings)."""
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "contexts": self.contexts,
            "streams": {k: h.to_json() for k, h in self.streams.items()},
            "trained_on": self.trained_on,
        }

    def to_bytes(self) -> bytes:
        """Compact JSON bytes (what is embedded in a file, or hashed for a reference)."""
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, d: Any) -> EntropyModel:
        """The model of plain JSON ``d`` (`to_json`); `CodecError` for anything else."""
        if not isinstance(d, Mapping) or d.get("format") != MODEL_FORMAT:
            raise CodecError("not an entropy model (format field missing or wrong)")
        if int(d.get("version", 0)) not in (1, MODEL_VERSION):
            raise CodecError(f"entropy model version {d.get('version')!r} not supported")
        streams = {k: Histogram.from_json(k, v) for k, v in d["streams"].items()}
        missing = [k for k in STREAM_RANGES if k not in streams]
        if missing:
            raise CodecError(f"entropy model lacks the streams {missing}")
        contexts = {k: [float(x) for x in v] for k, v in d["contexts"].items()}
        missing = [k for k in CONTEXT_EDGES if k not in contexts]
        if missing:
            raise CodecError(f"entropy model lacks the contexts {missing}")
        return cls(streams, contexts, dict(d.get("trained_on", {})))

    @classmethod
    def from_bytes(cls, b: bytes) -> EntropyModel:
        try:
            d = json.loads(b)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CodecError(f"entropy model is not valid JSON: {err}") from None
        return cls.from_json(d)


# --------------------------------------------------------------------------------------
# features: what is coded, in which context, in decoding order
# --------------------------------------------------------------------------------------
@dataclass
class _Layout:
    counts: np.ndarray
    first: np.ndarray  # index of each jet's first jet in its event
    index: np.ndarray  # jet index within the event

    @classmethod
    def of(cls, counts: np.ndarray) -> _Layout:
        offs = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        first = np.repeat(offs[:-1], counts)
        index = np.arange(int(offs[-1]), dtype=np.int64) - first
        return cls(counts, first, index)


def _ctx_pt_first(model_ctx: Edges, counts_of_first: np.ndarray) -> np.ndarray:
    return _cls("njet", model_ctx, counts_of_first)


def _ctx_pt_next(model_ctx: Edges, index: np.ndarray, log_pt_prev: np.ndarray) -> np.ndarray:
    ji = _cls("jet_index", model_ctx, index)
    out: np.ndarray = ji * _n_classes(model_ctx, "log_pt") + _cls("log_pt", model_ctx, log_pt_prev)
    return out


def _ctx_eta(
    model_ctx: Edges, index: np.ndarray, log_pt: np.ndarray, eta_first: np.ndarray
) -> np.ndarray:
    """First jets: pt class; later jets: after those, the first jet's eta class."""
    npt = _n_classes(model_ctx, "log_pt")
    ptc = _cls("log_pt", model_ctx, log_pt)
    etc = _cls("eta", model_ctx, eta_first)
    return np.where(index > 0, npt + etc, ptc)


def _ctx_mass(model_ctx: Edges, index: np.ndarray, log_pt: np.ndarray) -> np.ndarray:
    out: np.ndarray = (index > 0).astype(np.int64) * _n_classes(model_ctx, "log_pt") + _cls(
        "log_pt", model_ctx, log_pt
    )
    return out


def _ctx_dphi(model_ctx: Edges, index: np.ndarray, log_ratio: np.ndarray) -> np.ndarray:
    ji = _cls("jet_index", model_ctx, index)
    out: np.ndarray = ji * _n_classes(model_ctx, "log_ratio") + _cls(
        "log_ratio", model_ctx, log_ratio
    )
    return out


_N_CONTEXTS: dict[str, Callable[[Edges], int]] = {
    "pt_first": lambda e: _n_classes(e, "njet"),
    "pt_next": lambda e: _n_classes(e, "jet_index") * _n_classes(e, "log_pt"),
    "eta": lambda e: _n_classes(e, "log_pt") + _n_classes(e, "eta"),
    "dphi": lambda e: _n_classes(e, "jet_index") * _n_classes(e, "log_ratio"),
    "mass": lambda e: 2 * _n_classes(e, "log_pt"),
    "mass_sign": lambda e: 1,
}


def _dphi_int(qphi: np.ndarray, qfirst: np.ndarray, levels: int) -> np.ndarray:
    """Signed integer delta phi in (-levels/2, levels/2]."""
    d = np.mod(qphi - qfirst, levels)
    out: np.ndarray = np.where(2 * d > levels, d - levels, d)
    return out


def _mass_ref(kpt: np.ndarray, gpt: Grid, gm: Grid) -> np.ndarray:
    """Integer log pt expressed on the mass grid (the reference for log(m / pt))."""
    out: np.ndarray = np.rint(kpt * (gpt.step / gm.step)).astype(np.int64)
    return out


# --------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------
def _hist_counts(
    x: np.ndarray, ctx: np.ndarray, n_ctx: int, lo: float, hi: float, bins: int
) -> np.ndarray:
    out = np.zeros((n_ctx, bins + 1), np.float64)
    b = np.floor((x - lo) / (hi - lo) * bins).astype(np.int64)
    b = np.where((x < lo) | (x >= hi), bins, np.clip(b, 0, bins - 1))
    np.add.at(out, (ctx, b), 1.0)
    return out


def _weights(counts: np.ndarray, smooth: float) -> np.ndarray:
    """Integer weights from counts: [1, 2, 1] smoothing, a prior, scale to WEIGHT_SCALE.

    The prior is the stream's histogram over all contexts (20 pseudo-jets), so sparse
    contexts fall back on it. Weights are rounded to the level grid (powers of sqrt(2),
    at least ``LEVEL_WEIGHTS[MIN_FIT_LEVEL]``), which costs a few thousandths of a bit
    per symbol and makes the stored model a third of its size with two significant digits.
    """
    h = counts[:, :-1]
    if h.shape[1] >= 3 and smooth > 0:
        pad = np.pad(h, ((0, 0), (1, 1)), mode="edge")
        h = (1 - smooth) * h + smooth * (pad[:, :-2] + 2 * h + pad[:, 2:]) / 4
    full = np.concatenate([h, counts[:, -1:]], axis=1)
    # the context's own counts, backed by the stream's total when the context is sparse
    pooled = full.sum(axis=0, keepdims=True)
    pooled = pooled / max(pooled.sum(), 1.0)
    n = full.sum(axis=1, keepdims=True)
    prior = 20.0
    p = (full + prior * pooled + 0.01) / (n + prior + 0.01 * full.shape[1])
    w = np.maximum(1.0, p * WEIGHT_SCALE)
    lv = np.clip(np.rint(2.0 * np.log2(w)), MIN_FIT_LEVEL, MAX_LEVEL).astype(np.int64)
    out: np.ndarray = LEVEL_WEIGHTS[lv]
    return out


def fit_model(
    columns: Mapping[str, np.ndarray],
    counts: np.ndarray,
    *,
    precision: str | Precision = FIT_PRECISION,
    smooth: float = 0.5,
    name: str = "",
) -> EntropyModel:
    """Fit the histograms on training jets (pt, eta, phi, mass columns + jet counts).

    The features are computed at ``precision`` (the model itself serves every precision).
    """
    cols, counts = check_columns({v: columns[v] for v in _require(columns)}, counts, NAME)
    grids, ints = _quantise(cols, parse_precision(precision))
    lay = _Layout.of(counts)
    edges = {k: [float(x) for x in v] for k, v in CONTEXT_EDGES.items()}
    feats = _features(ints, grids, lay, edges)
    streams = {}
    for name_s, (lo, hi, bins) in STREAM_RANGES.items():
        x, ctx = feats[name_s]
        c = _hist_counts(x, ctx, _N_CONTEXTS[name_s](edges), lo, hi, bins)
        streams[name_s] = Histogram(lo, hi, bins, _weights(c, smooth if bins > 3 else 0.0))
    trained = {"name": name, "jets": len(lay.first), "events": len(counts)}
    return EntropyModel(streams, edges, trained)


def _features(
    ints: Mapping[str, Any], grids: Mapping[str, Grid], lay: _Layout, edges: Edges
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Physical value and context of every coded value of every stream (for fitting)."""
    kpt, qeta, qphi, (km, sm) = ints["pt"], ints["eta"], ints["phi"], ints["mass"]
    gpt, geta, gphi, gm = grids["pt"], grids["eta"], grids["phi"], grids["mass"]
    lpt = kpt * gpt.step
    is_first = lay.index == 0
    nxt = ~is_first
    out = {}
    out["pt_first"] = (lpt[is_first], _ctx_pt_first(edges, lay.counts[lay.counts > 0]))
    prev = np.flatnonzero(nxt) - 1
    out["pt_next"] = (
        (kpt[prev] - kpt[nxt]) * gpt.step,
        _ctx_pt_next(edges, lay.index[nxt], lpt[prev]),
    )
    eta = qeta * geta.step
    out["eta"] = (eta, _ctx_eta(edges, lay.index, lpt, eta[lay.first]))
    d = _dphi_int(qphi[nxt], qphi[lay.first[nxt]], gphi.levels)
    out["dphi"] = (
        np.abs(d) * gphi.step,
        _ctx_dphi(edges, lay.index[nxt], lpt[nxt] - lpt[lay.first[nxt]]),
    )
    nzm = sm != 0
    r = km[nzm] - _mass_ref(kpt[nzm], gpt, gm)
    out["mass"] = (r * gm.step, _ctx_mass(edges, lay.index[nzm], lpt[nzm]))
    sign_cls = np.where(sm > 0, 0, np.where(sm == 0, 1, 2)).astype(np.float64)
    out["mass_sign"] = (sign_cls + 0.5, np.zeros(len(sm), np.int64))
    return out


def _require(columns: Mapping[str, np.ndarray]) -> tuple[str, ...]:
    missing = [v for v in KINEMATICS if v not in columns]
    if missing:
        raise CodecError(
            f"entropy codec needs the columns {', '.join(KINEMATICS)}; missing: "
            f"{', '.join(missing)}"
        )
    return KINEMATICS


def _grids(prec: Precision, cols: Mapping[str, np.ndarray]) -> dict[str, Grid]:
    prec.require(KINEMATICS)
    grids = {}
    for v in KINEMATICS:
        g = make_grid(v, prec[v], cols.get(v))
        if g.coord != EXPECTED_COORD[v]:
            want = "a relative" if EXPECTED_COORD[v] == "log" else "an absolute"
            raise PrecisionError(
                f"entropy codec needs {want} bound (or bits) for {v}, got {v}={prec[v]}"
            )
        grids[v] = g
    return grids


def _quantise(
    cols: Mapping[str, np.ndarray], prec: Precision
) -> tuple[dict[str, Grid], dict[str, Any]]:
    grids = _grids(prec, cols)
    if np.any(cols["pt"] <= 0):
        n = int(np.count_nonzero(cols["pt"] <= 0))
        raise CodecError(f"entropy codec needs pt > 0; {n} jet(s) have pt <= 0 (use quantize)")
    ints: dict[str, Any] = {}
    for v in KINEMATICS:
        q, s = grids[v].to_int(cols[v])
        ints[v] = (q, s) if v == "mass" else q
    if np.any(np.abs(ints["pt"]) >= _RAW_OFFSET) or np.any(np.abs(ints["mass"][0]) >= _RAW_OFFSET):
        raise CodecError("entropy codec: quantised values do not fit 32 bits")
    return grids, ints


# --------------------------------------------------------------------------------------
# coding one stream's values (bins, offsets inside the bin, escapes), both directions
# --------------------------------------------------------------------------------------
def _int_edges(h: Histogram, step: float) -> np.ndarray:
    return np.ceil(h.edges() / step).astype(np.int64)


class _Coder:
    """Range encoder or decoder plus the model, with one method per stream kind."""

    def __init__(
        self,
        model: EntropyModel,
        grids: dict[str, Grid],
        words: np.ndarray | None = None,
        cache: _Tables | None = None,
    ) -> None:
        self.model = model
        self.grids = grids
        self.uni = constriction.stream.model.Uniform()
        self.enc: Any = None  # constriction's range encoder, when encoding
        self.dec: Any = None  # its range decoder, when decoding
        if words is None:
            self.enc = constriction.stream.queue.RangeEncoder()
        else:
            self.dec = constriction.stream.queue.RangeDecoder(np.asarray(words, np.uint32))
        # (stream, step) -> (integer bin edges, probabilities, {context: concrete model})
        self._tables: _Tables = {} if cache is None else cache

    def _table(self, stream: str, step: float) -> tuple[np.ndarray, np.ndarray, dict[int, Any]]:
        key = (stream, step)
        if key not in self._tables:
            h = self.model.streams[stream]
            k = _int_edges(h, step)
            sizes = np.diff(k)
            if np.any(sizes >= _MAX_UNIFORM):
                raise PrecisionError(
                    f"entropy codec: the precision is too fine for stream {stream!r} "
                    f"({int(sizes.max())} values per histogram bin)"
                )
            p = h.weights.astype(np.float64)
            p[:, :-1] = np.where(sizes > 0, p[:, :-1], 0.0)
            p /= p.sum(axis=1, keepdims=True)
            self._tables[key] = (k, p, {})
        return self._tables[key]

    def _categorical(
        self, stream: str, step: float, ctx: np.ndarray, b: np.ndarray | None
    ) -> np.ndarray:
        """Bin symbols, grouped by context (stable order), one concrete model per context."""
        _, p, models = self._table(stream, step)
        order = np.argsort(ctx, kind="stable")
        cs = ctx[order]
        starts = np.flatnonzero(np.concatenate([[True], cs[1:] != cs[:-1]]))
        ends = np.append(starts[1:], len(cs))
        out = b if b is not None else np.empty(len(ctx), np.int64)
        for s0, e0 in zip(starts, ends, strict=True):
            c = int(cs[s0])
            if c not in models:
                models[c] = constriction.stream.model.Categorical(p[c], perfect=False)
            idx = order[s0:e0]
            if b is not None:
                self.enc.encode(b[idx].astype(np.int32), models[c])
            else:
                out[idx] = self.dec.decode(models[c], int(e0 - s0))
        return out

    # ---- uniform symbols
    def uniform(self, values: np.ndarray | None, sizes: np.ndarray, n: int) -> np.ndarray:
        sizes = np.asarray(sizes, np.int32)
        if self.enc is not None:
            if n:
                self.enc.encode(np.asarray(values, np.int32), self.uni, sizes)
            return np.asarray(values)
        if not n:
            return np.zeros(0, np.int64)
        out: np.ndarray = self.dec.decode(self.uni, sizes).astype(np.int64)
        return out

    def _raw32(self, values: np.ndarray | None, n: int) -> np.ndarray:
        full = np.full(n, 1 << 16, np.int32)
        if self.enc is not None:
            u = (np.asarray(values, np.int64) + _RAW_OFFSET).astype(np.uint64)
            self.uniform((u >> np.uint64(16)).astype(np.int32), full, n)
            self.uniform((u & np.uint64(0xFFFF)).astype(np.int32), full, n)
            return np.asarray(values)
        hi = self.uniform(None, full, n)
        lo = self.uniform(None, full, n)
        out: np.ndarray = (hi << 16) + lo - _RAW_OFFSET
        return out

    # ---- histogram-coded integers
    def values(self, stream: str, step: float, ctx: np.ndarray, q: np.ndarray | None) -> np.ndarray:
        """Code (or decode, ``q=None``) integers whose physical value is ``q * step``."""
        n = len(ctx)
        if n == 0:
            return np.zeros(0, np.int64)
        k = self._table(stream, step)[0]
        bins = len(k) - 1
        if self.enc is not None:
            assert q is not None  # the values to encode
            b = np.searchsorted(k, q, side="right") - 1
            esc = (b < 0) | (b >= bins)
            b = np.where(esc, bins, b)
            self._categorical(stream, step, ctx, b)
        else:
            b = self._categorical(stream, step, ctx, None)
            esc = b >= bins
        inside = ~esc
        bi = b[inside]
        sizes = k[bi + 1] - k[bi]
        multi = sizes >= 2
        offs = None if q is None else (q[inside] - k[bi])[multi]
        offs = self.uniform(offs, sizes[multi], int(np.count_nonzero(multi)))
        raw = self._raw32(None if q is None else q[esc], int(np.count_nonzero(esc)))
        if self.enc is not None:
            assert q is not None  # the values encoded
            return q
        out = np.empty(n, np.int64)
        ins = k[bi].copy()
        ins[multi] += offs
        out[inside] = ins
        out[esc] = raw
        return out

    def finish(self) -> np.ndarray:
        out: np.ndarray = self.enc.get_compressed().astype(np.uint32)
        return out


def _code_block(coder: _Coder, lay: _Layout, ints: Mapping[str, Any] | None) -> dict[str, Any]:
    """Encode (``ints`` given) or decode one block, in the order the module docstring says."""
    enc = ints is not None
    ints = ints if ints is not None else {}  # read only when encoding
    g = coder.grids
    edges = coder.model.contexts
    gpt, geta, gphi, gm = g["pt"], g["eta"], g["phi"], g["mass"]
    n = len(lay.first)
    is_first = lay.index == 0
    first_idx = np.flatnonzero(is_first)
    nf = len(first_idx)
    # 1. pt
    kpt = ints["pt"].copy() if enc else np.zeros(n, np.int64)
    ctx = _ctx_pt_first(edges, lay.counts[lay.counts > 0])
    kpt[first_idx] = coder.values("pt_first", gpt.step, ctx, kpt[first_idx] if enc else None)
    max_j = int(lay.index.max(initial=0))
    for j in range(1, max_j + 1):
        sel = np.flatnonzero(lay.index == j)
        prev = kpt[sel - 1]
        ctx = _ctx_pt_next(edges, lay.index[sel], prev * gpt.step)
        d = coder.values("pt_next", gpt.step, ctx, (prev - kpt[sel]) if enc else None)
        if not enc:
            kpt[sel] = prev - d
    lpt = kpt * gpt.step
    # 2. eta: first jets, then the others (their context has the first jet's eta)
    qeta = ints["eta"].copy() if enc else np.zeros(n, np.int64)
    zero = np.zeros(nf, np.float64)
    ctx = _ctx_eta(edges, lay.index[first_idx], lpt[first_idx], zero)
    qeta[first_idx] = coder.values("eta", geta.step, ctx, qeta[first_idx] if enc else None)
    nxt = np.flatnonzero(~is_first)
    fi = lay.first[nxt]
    ctx = _ctx_eta(edges, lay.index[nxt], lpt[nxt], qeta[fi] * geta.step)
    qeta[nxt] = coder.values("eta", geta.step, ctx, qeta[nxt] if enc else None)
    # 3. phi
    qphi = ints["phi"].copy() if enc else np.zeros(n, np.int64)
    if gphi.levels >= 2:
        if gphi.levels > _MAX_UNIFORM:
            raise PrecisionError("entropy codec: phi precision too fine (over 2**24 levels)")
        lv = np.full(nf, gphi.levels, np.int32)
        qphi[first_idx] = coder.uniform(qphi[first_idx] if enc else None, lv, nf)
    ctx = _ctx_dphi(edges, lay.index[nxt], lpt[nxt] - lpt[fi])
    dphi = _dphi_int(qphi[nxt], qphi[fi], gphi.levels) if enc else None
    a = coder.values("dphi", gphi.step, ctx, np.abs(dphi) if dphi is not None else None)
    two_signs = (a > 0) & ~((gphi.levels % 2 == 0) & (2 * a == gphi.levels))
    ns = int(np.count_nonzero(two_signs))
    neg_in = (dphi[two_signs] < 0).astype(np.int32) if dphi is not None else None
    neg = coder.uniform(neg_in, np.full(ns, 2), ns)
    if not enc:
        dd = a.copy()
        dd[two_signs] = np.where(neg == 1, -a[two_signs], a[two_signs])
        qphi[nxt] = np.mod(qphi[fi] + dd, gphi.levels)
    # 4. mass
    km, sm = (ints["mass"][0].copy(), ints["mass"][1]) if enc else (np.zeros(n, np.int64), None)
    cls = np.where(sm > 0, 0, np.where(sm == 0, 1, 2)) if sm is not None else None
    cls = coder.values("mass_sign", 1.0, np.zeros(n, np.int64), cls)
    nz = np.flatnonzero(cls != 1)
    ref = _mass_ref(kpt[nz], gpt, gm)
    ctx = _ctx_mass(edges, lay.index[nz], lpt[nz])
    r = coder.values("mass", gm.step, ctx, (km[nz] - ref) if enc else None)
    if enc:
        return {}
    km[nz] = r + ref
    sign = np.where(cls == 0, 1, np.where(cls == 1, 0, -1)).astype(np.int8)
    return {"pt": kpt, "eta": qeta, "phi": qphi, "mass": (km, sign)}


# --------------------------------------------------------------------------------------
# the codec API
# --------------------------------------------------------------------------------------
def _blocks(counts: np.ndarray, block_events: int) -> Iterator[tuple[int, int, int, int]]:
    offs = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    for s in range(0, len(counts), block_events):
        e = min(s + block_events, len(counts))
        yield s, e, int(offs[s]), int(offs[e])


def encode(
    columns: Mapping[str, np.ndarray],
    counts: np.ndarray,
    spec: str | Precision = "nanoaod",
    *,
    model: EntropyModel | None = None,
    block_events: int = 1000,
    embed_model: bool = True,
) -> Encoded:
    """Quantise pt, eta, phi, mass to ``spec`` and range-code them with ``model``.

    Parameters
    ----------
    columns, counts
        Flat per-jet arrays (pt, eta, phi, mass; others are stored with `pco`) and
        jets per event.
    spec
        Precision: relative bounds (or bits) for pt and mass, absolute bounds (or bits)
        for eta and phi.
    model
        A fitted `EntropyModel`; ``None`` fits one on these jets (then it must be embedded).
    block_events
        Events per independently decodable range-coder stream.
    embed_model
        Put the model JSON into ``info["model"]``; otherwise only its SHA-256 and name
        (``info["model_ref"]``) and the decoder must be given the model.

    Returns
    -------
    Encoded
        ``branches["codes"]``: the coded uint32 words, all of a block in the entry of its
        first event (``entry_sizes["codes"]`` per event); ``info["block_words"]`` the
        words per block.
    """
    import hashlib

    prec = parse_precision(spec)
    cols, counts = check_columns(columns, counts, NAME)
    _require(cols)
    if block_events < 1:
        raise CodecError(f"block_events must be positive, got {block_events}")
    if model is None:
        model = fit_model(cols, counts, name="the encoded data")
        embed_model = True
    grids, ints = _quantise(cols, prec)
    words, block_words = [], []
    sizes = np.zeros(len(counts), np.int64)
    cache: _Tables = {}
    for s, e, js, je in _blocks(counts, block_events):
        coder = _Coder(model, grids, cache=cache)
        lay = _Layout.of(counts[s:e])
        sub = {
            "pt": ints["pt"][js:je],
            "eta": ints["eta"][js:je],
            "phi": ints["phi"][js:je],
            "mass": (ints["mass"][0][js:je], ints["mass"][1][js:je]),
        }
        _code_block(coder, lay, sub)
        w = coder.finish()
        words.append(w)
        block_words.append(len(w))
        sizes[s] = len(w)
    mbytes = model.to_bytes()
    info: dict[str, Any] = {
        "codec": NAME,
        "version": 1,
        "precision": prec.to_json(),
        "grids": {v: g.to_json() for v, g in grids.items()},
        "block_events": block_events,
        "block_words": block_words,
        "model_sha256": hashlib.sha256(mbytes).hexdigest(),
        "model_name": model.trained_on.get("name", ""),
    }
    if embed_model:
        info["model"] = model.to_json()
    branches = {"codes": np.concatenate(words) if words else np.zeros(0, np.uint32)}
    entry_sizes = {"codes": sizes}
    extra = {v: c for v, c in cols.items() if v not in KINEMATICS}
    if extra:
        p = pco.encode(extra, counts, prec, block_events=block_events)
        branches.update({f"p_{k}": v for k, v in p.branches.items()})
        entry_sizes.update({f"p_{k}": v for k, v in p.entry_sizes.items()})
        info["others_pcodec"] = p.info
    return Encoded(branches, info, entry_sizes)


def decode_integers(
    branches: Mapping[str, np.ndarray],
    counts: np.ndarray,
    info: Mapping[str, Any],
    model: EntropyModel | None = None,
) -> tuple[dict[str, Grid], dict[str, Any]]:
    """The quantised integers (exactly those the encoder computed) and their grids."""
    import hashlib

    if info.get("codec") != NAME:
        raise CodecError(f"payload was written by codec {info.get('codec')!r}, not {NAME!r}")
    if model is None:
        if "model" not in info:
            raise CodecError(
                f"entropy payload refers to model {info.get('model_name', '')!r} "
                f"(sha256 {info.get('model_sha256', '?')}) that is not embedded; pass it"
            )
        model = EntropyModel.from_json(info["model"])
    sha = hashlib.sha256(model.to_bytes()).hexdigest()
    if info.get("model_sha256") and sha != info["model_sha256"]:
        raise CodecError(
            f"entropy model sha256 {sha} does not match the payload's {info['model_sha256']}"
        )
    grids = {v: Grid.from_json(d) for v, d in info["grids"].items()}
    counts = np.asarray(counts, np.int64)
    words = np.asarray(branches["codes"], np.uint32)
    bw = [int(x) for x in info["block_words"]]
    if sum(bw) != len(words):
        raise CodecError(f"entropy payload has {len(words)} words, its blocks say {sum(bw)}")
    block_events = int(info["block_events"])
    n = int(counts.sum())
    out: dict[str, Any] = {
        "pt": np.zeros(n, np.int64),
        "eta": np.zeros(n, np.int64),
        "phi": np.zeros(n, np.int64),
        "mass": (np.zeros(n, np.int64), np.zeros(n, np.int8)),
    }
    pos = 0
    cache: _Tables = {}
    blocks = list(_blocks(counts, block_events))
    if len(blocks) != len(bw):
        raise CodecError(f"entropy payload has {len(bw)} blocks, the jet counts give {len(blocks)}")
    for (s, e, js, je), nw in zip(blocks, bw, strict=True):
        coder = _Coder(model, grids, words[pos : pos + nw], cache=cache)
        pos += nw
        res = _code_block(coder, _Layout.of(counts[s:e]), None)
        for v in ("pt", "eta", "phi"):
            out[v][js:je] = res[v]
        out["mass"][0][js:je] = res["mass"][0]
        out["mass"][1][js:je] = res["mass"][1]
    return grids, out


def decode(
    branches: Mapping[str, np.ndarray],
    counts: np.ndarray,
    info: Mapping[str, Any],
    model: EntropyModel | None = None,
) -> dict[str, np.ndarray]:
    """Float32 pt, eta, phi, mass (and the other columns) from the coded words."""
    grids, ints = decode_integers(branches, counts, info, model)
    out = {
        "pt": grids["pt"].from_int(ints["pt"], np.ones(len(ints["pt"]), np.int8)),
        "eta": grids["eta"].from_int(ints["eta"]),
        "phi": grids["phi"].from_int(ints["phi"]),
        "mass": grids["mass"].from_int(*ints["mass"]),
    }
    if "others_pcodec" in info:
        sub = {k[2:]: v for k, v in branches.items() if k.startswith("p_")}
        out.update(pco.decode(sub, counts, info["others_pcodec"]))
    if "others" in info:  # payloads written before the other columns went through pcodec
        sub = {k[2:]: v for k, v in branches.items() if k.startswith("q_")}
        out.update(quantize.decode(sub, counts, info["others"]))
    return out
