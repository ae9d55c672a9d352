"""The codec race: jet kinematics written as real ROOT files by every lossy method.

Usage::

    python benchmarks/codec_race.py \
        --train samples/qcd_train.root --train samples/ttbar_train.root \
        --train samples/zprime_train.root \
        --sample qcd=samples/qcd_eval.root --sample ttbar=samples/ttbar_eval.root \
        --sample zprime=samples/zprime_eval.root --sample nano_dy=../shared/data/nano_dy.root \
        --out benchmarks/results/codec_race.json --table benchmarks/results/codec_race.md \
        --figure benchmarks/codec_race.png

With ``--variables all13`` the 13-variable set (kinematics, constituent counts, energy
fractions, width, ptD) is raced instead: integer columns are stored unchanged (pcodec
codes them losslessly where it is the method), samples lacking a variable are skipped
and noted, and the autoencoder is left out (it encodes the 4 kinematics only).

Methods: truncation, float16, ``quantize``, ``pcodec`` (the codec: quantiser integers
coded with pcodec), ``truncate+pcodec``, ``entropy`` (model trained on ``--train``),
SZ3 (``pysz``), ZFP (``zfpy``) and fpzip per column in the coordinate of its bound, and
the autoencoder (float32 and 16-bit latents, with and without corrections; its file's
SHA-256 goes into the provenance).

For each sample and method the jets' variables are encoded, written with
uproot to a ROOT file (tree ``Events``: ``nJet`` plus the method's jagged per-jet branches,
or per-event branches for the entropy coder's words, one ``extend`` per ``--block``
events) once per ROOT algorithm and level (ZLIB 1/6/9, LZMA 1/6/9, LZ4 1/9, ZSTD 1/5/9 for
truncation, float32 and float16; ZLIB 9, LZMA 6/9, ZSTD 9 for the others unless
``--all-settings``), read back and decoded.
*Bytes per jet* = (file size - size of the same file with no events) / jets, without any
model (``by reference``: only its hash, the model being shipped once); ``embedded`` adds
the compressed bytes of the model stored in the file as a string (the key's data; the
fixed records uproot rewrites when a string is added are left out, as a compressed file
carries its info string anyway).

The methods are compared at equal maximum error (the precision presets: NanoAOD, ATLAS
high and low compression lists) and along a rate-distortion curve in sigma68. Errors are
relative for pt and mass, absolute for eta, and absolute modulo 2 pi for phi.

CPU costs are ``time.process_time()``, best of ``--repeat``, in microseconds per jet:
encode and decode alone, and the read of the file (ROOT decompression) for the best
ROOT setting.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import awkward as ak
import numpy as np
import provenance
import uproot
from common import named, sci
from provenance import best_cpu_time

from hepae_coffea.codecs import circular_error, get_codec, parse_precision
from hepae_coffea.codecs.entropy import EntropyModel, fit_model
from hepae_coffea.generate.pythia import BRANCHES

VARS = ("pt", "eta", "phi", "mass")
KINEMATICS = VARS
#: the 13-variable set (``--variables all13``): kinematics, counts, fractions, shapes
VARS13 = tuple(b.removeprefix("Jet_") for b in BRANCHES if b.startswith("Jet_"))
#: integer columns: stored unchanged by every method (their error must be 0)
INT_VARS = frozenset({"nConstituents", "nCharged"})
#: errors relative for these, absolute otherwise (phi modulo 2 pi)
REL_VARS = frozenset({"pt", "mass", "width", "ptD"})
#: bounds for the extra float variables at each preset (energy fractions absolute,
#: width and ptD relative): 2^-8 with 7-bit, 2^-11 with NanoAOD, 2^-16 with 15-bit kinematics
EXTRA_BOUND = {"atlas-high": 2.0**-8, "nanoaod": 2.0**-11, "atlas-low": 2.0**-16}
ROOT_SETTINGS = [
    ("zlib", 1),
    ("zlib", 6),
    ("zlib", 9),
    ("lzma", 1),
    ("lzma", 6),
    ("lzma", 9),
    ("lz4", 1),
    ("lz4", 9),
    ("zstd", 1),
    ("zstd", 5),
    ("zstd", 9),
]
#: the settings tried for the other methods (the best of truncation's is among them)
SHORT_SETTINGS = [("zlib", 9), ("lzma", 6), ("lzma", 9), ("zstd", 9)]
_ALGOS = {"zlib": uproot.ZLIB, "lzma": uproot.LZMA, "lz4": uproot.LZ4, "zstd": uproot.ZSTD}
PRESETS = ("atlas-high", "nanoaod", "atlas-low")


# --------------------------------------------------------------------------------------
# payloads and methods
# --------------------------------------------------------------------------------------
@dataclass
class Payload:
    """What a method stores: per-jet arrays, per-event jagged arrays, model bytes."""

    jet: dict[str, np.ndarray] = field(default_factory=dict)
    event: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    model: bytes = b""
    info: dict = field(default_factory=dict)


@dataclass
class Method:
    name: str
    family: str
    precision: str
    encode: Callable[[np.ndarray, dict], Payload]
    decode: Callable[[np.ndarray, Payload], dict]
    needs_model: bool = False
    params: dict = field(default_factory=dict)


def full_spec(spec: str) -> str:
    """``spec`` with bounds for the extra variables when the 13-variable set is raced."""
    if all(v in KINEMATICS or v in INT_VARS for v in VARS) or spec not in EXTRA_BOUND:
        return spec
    from hepae_coffea.codecs.precision import PRESETS as BITS

    err = EXTRA_BOUND[spec]
    toks = [f"{v}={b}bits" for v, b in BITS[spec].items()]
    for v in VARS:
        if v not in KINEMATICS and v not in INT_VARS:
            toks.append(f"{v}={err!r}" + ("rel" if v in REL_VARS else ""))
    return ",".join(toks)


def codec_method(codec: str, spec: str, family: str | None = None, **kw) -> Method:
    mod = get_codec(codec)
    label, spec = spec, full_spec(spec)

    def enc(counts, cols):
        e = mod.encode(cols, counts, spec, **kw)
        p = Payload(info=e.info)
        for k, v in e.branches.items():
            if k in e.entry_sizes:
                p.event[k] = (v, e.entry_sizes[k])
            else:
                p.jet[k] = v
        if "model" in e.info:
            p.model = json.dumps(e.info["model"], separators=(",", ":")).encode()
        return p

    def dec(counts, p):
        br = dict(p.jet)
        br.update({k: v for k, (v, _) in p.event.items()})
        return mod.decode(br, counts, p.info, **({"model": kw["model"]} if "model" in kw else {}))

    return Method(
        f"{codec} {label}",
        family or codec,
        label,
        enc,
        dec,
        needs_model=codec == "entropy",
        params={"codec": codec, "spec": spec},
    )


def float16_method() -> Method:
    def enc(counts, cols):
        return Payload(
            jet={
                v: cols[v].copy() if v in INT_VARS else cols[v].astype(np.float16).view(np.uint16)
                for v in VARS
            }
        )

    def dec(counts, p):
        return {
            v: p.jet[v] if v in INT_VARS else p.jet[v].view(np.float16).astype(np.float32)
            for v in VARS
        }

    return Method("float16", "float16", "", enc, dec)


def _blob_payload(blobs: dict[str, bytes], n_events: int, model: bytes = b"") -> Payload:
    """Byte streams stored whole in the first event's entry of a per-event uint8 branch."""
    p = Payload(model=model)
    for k, b in blobs.items():
        sizes = np.zeros(n_events, np.int64)
        if n_events:
            sizes[0] = len(b)
        p.event[k] = (np.frombuffer(b, np.uint8).copy(), sizes)
    return p


def _blob(p: Payload, k: str) -> bytes:
    return p.event[k][0].tobytes()


def _grids(spec: str) -> dict:
    """The quantiser's grid of every float variable (its coordinate and bound)."""
    from hepae_coffea.codecs.quantize import make_grid

    prec = parse_precision(spec)
    return {v: make_grid(v, prec[v], None) for v in VARS if v not in INT_VARS}


def _log_coords(cols: dict, grids: dict) -> dict:
    """float64 columns in the coordinate of their bound: log|x| (relative), x, phi."""
    out = {}
    for v, g in grids.items():
        x = cols[v].astype(np.float64)
        out[v] = np.log(np.maximum(np.abs(x), 1e-30)) if g.coord == "log" else x
    return out


def _from_log(t: dict, grids: dict) -> dict:
    out = {}
    for v, g in grids.items():
        x = np.asarray(t[v], np.float64)
        if g.coord == "log":
            out[v] = np.exp(x).astype(np.float32)
        elif g.coord == "angle":
            phi = (x + math.pi) % (2 * math.pi) - math.pi
            out[v] = np.where(phi == -math.pi, math.pi, phi).astype(np.float32)
        else:
            out[v] = x.astype(np.float32)
    return out


def _tolerances(spec: str) -> dict:
    """Absolute tolerances in each variable's coordinate that meet the spec's max errors."""
    out = {}
    for v, g in _grids(spec).items():
        # room for the float32 rounding of the output (as the quantiser leaves)
        if g.coord == "log":
            out[v] = math.log1p(g.max_error - 2.0**-22)
        else:
            out[v] = g.max_error - 2.0 ** (math.floor(math.log2(4.7 + g.max_error)) - 23)
    return out


def _with_ints(p: Payload, cols: dict) -> Payload:
    """Integer columns stored unchanged as per-jet branches (ROOT compresses them)."""
    for v in VARS:
        if v in INT_VARS:
            p.jet[v] = cols[v].copy()
    return p


def _ints(p: Payload) -> dict:
    return {v: p.jet[v] for v in VARS if v in INT_VARS}


def sz3_method(spec: str) -> Method:
    from pysz import sz, szConfig, szErrorBoundMode

    label, spec = spec, full_spec(spec)
    tol, grids = _tolerances(spec), _grids(spec)

    def enc(counts, cols):
        t = _log_coords(cols, grids)
        blobs = {}
        for v in grids:
            c = szConfig()
            c.errorBoundMode = szErrorBoundMode.ABS
            c.absErrorBound = tol[v]
            blobs[v] = sz.compress(np.ascontiguousarray(t[v]), c)[0].tobytes()
        return _with_ints(_blob_payload(blobs, len(counts)), cols)

    def dec(counts, p):
        n = int(counts.sum())
        t = {v: sz.decompress(p.event[v][0], np.float64, (n,))[0] for v in grids}
        return {**_from_log(t, grids), **_ints(p)}

    return Method(f"sz3 {label}", "sz3", label, enc, dec, params={"spec": spec, "tolerances": tol})


def zfp_method(spec: str) -> Method:
    import zfpy

    label, spec = spec, full_spec(spec)
    tol, grids = _tolerances(spec), _grids(spec)

    def enc(counts, cols):
        t = _log_coords(cols, grids)
        blobs = {
            v: zfpy.compress_numpy(np.ascontiguousarray(t[v]), tolerance=tol[v]) for v in grids
        }
        return _with_ints(_blob_payload(blobs, len(counts)), cols)

    def dec(counts, p):
        t = {v: zfpy.decompress_numpy(_blob(p, v)) for v in grids}
        return {**_from_log(t, grids), **_ints(p)}

    return Method(f"zfp {label}", "zfp", label, enc, dec, params={"spec": spec, "tolerances": tol})


def fpzip_method(spec: str) -> Method:
    """fpzip on float32 columns keeping enough bits for the spec's bounds."""
    import fpzip

    from hepae_coffea.codecs.precision import bits_for_abs_error, bits_for_rel_error

    label, spec = spec, full_spec(spec)
    prec, grids = parse_precision(spec), _grids(spec)
    #: largest |value| of the absolute-bound variables (eta, phi, energy fractions)
    span = {"eta": 4.7, "phi": math.pi}
    keep = {}
    for v in grids:
        b = prec[v]
        if b.kind == "bits":
            n = int(b.value)
        elif b.kind == "rel":
            n = bits_for_rel_error(b.value)
        else:
            n = bits_for_abs_error(b.value, span.get(v, 1.0))
        keep[v] = min(32, 9 + n + 1)  # fpzip truncates: one more bit than rounding needs

    def enc(counts, cols):
        blobs = {v: fpzip.compress(np.ascontiguousarray(cols[v]), precision=keep[v]) for v in grids}
        return _with_ints(_blob_payload(blobs, len(counts)), cols)

    def dec(counts, p):
        out = {v: np.asarray(fpzip.decompress(_blob(p, v))).reshape(-1) for v in grids}
        if "phi" in out:
            out["phi"] = _from_log({"phi": out["phi"]}, {"phi": grids["phi"]})["phi"]
        return {**out, **_ints(p)}

    return Method(
        f"fpzip {label}", "fpzip", label, enc, dec, params={"spec": spec, "precision_bits": keep}
    )


def _pco_input(x: np.ndarray) -> np.ndarray:
    """pcodec refuses 8-bit integers: widen them to 16 bits (decode casts back)."""
    if x.dtype.itemsize == 1 and np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.int16 if np.issubdtype(x.dtype, np.signedinteger) else np.uint16)
    return np.ascontiguousarray(x)


def pcodec_method(codec: str, spec: str) -> Method:
    """pcodec (lossless) on the truncated floats (``truncate+pcodec``)."""
    from pcodec import ChunkConfig, standalone

    mod = get_codec(codec)
    label, spec = spec, full_spec(spec)

    def enc(counts, cols):
        e = mod.encode(cols, counts, spec)
        blobs = {
            v: standalone.simple_compress(_pco_input(e.branches[v]), ChunkConfig()) for v in VARS
        }
        p = _blob_payload(blobs, len(counts))
        p.info = {**e.info, "dtypes": {v: str(e.branches[v].dtype) for v in VARS}}
        return p

    def dec(counts, p):
        br = {v: np.asarray(standalone.simple_decompress(_blob(p, v))) for v in VARS}
        br = {v: br[v].astype(p.info["dtypes"][v]) for v in VARS}
        return mod.decode(br, counts, p.info)

    return Method(
        f"{codec}+pcodec {label}", f"{codec}+pcodec", label, enc, dec, params={"spec": spec}
    )


class AE:
    """The TorchScript model as numpy encode / decode callables (one torch thread)."""

    def __init__(self, path: str | None):
        import base64

        import torch

        from hepae_coffea.model.handle import open_model

        torch.set_num_threads(1)
        self.torch = torch
        handle = open_model(path)  # None: the shipped model
        handle.check_variables(list(VARS))
        self.path = str(handle.path)
        self.module = handle.module()
        self.model_b64 = base64.b64encode(handle.data)
        self.ref = {"path": self.path, "sha256": handle.sha256, "file_sha256": handle.sha256}

    def encode(self, x: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.module.encode(self.torch.from_numpy(np.ascontiguousarray(x))).numpy()

    def decode(self, z: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.module.decode(self.torch.from_numpy(np.ascontiguousarray(z))).numpy()


def ae_method(ae: AE, bits: int | None, spec: str | None) -> Method:
    """AE latents (float32 or rounded to ``bits``), with corrections to ``spec`` if given."""
    from hepae_coffea.codecs import bounded_ae
    from hepae_coffea.codecs.truncate import round_mantissa

    def enc(counts, cols):
        if spec is not None:
            e = bounded_ae.encode(
                cols,
                counts,
                spec,
                encoder=ae.encode,
                decoder=ae.decode,
                variables=VARS,
                latent_bits=bits,
                model_ref=ae.ref,
            )
            p = Payload(model=ae.model_b64, info=e.info)
            for k, v in e.branches.items():
                if k in e.entry_sizes:
                    p.event[k] = (v, e.entry_sizes[k])
                else:
                    p.jet[k] = v
            return p
        z = ae.encode(np.stack([cols[v] for v in VARS], axis=1))
        if bits is not None:
            z = round_mantissa(z, bits)
        return Payload(jet={f"z{i}": z[:, i].copy() for i in range(z.shape[1])}, model=ae.model_b64)

    def dec(counts, p):
        if spec is not None:
            br = dict(p.jet)
            br.update({k: v for k, (v, _) in p.event.items()})
            return bounded_ae.decode(br, counts, p.info, decoder=ae.decode)
        k = len(p.jet)
        x = ae.decode(np.stack([p.jet[f"z{i}"] for i in range(k)], axis=1))
        return {v: x[:, i].copy() for i, v in enumerate(VARS)}

    lab = "float32" if bits is None else f"{bits}-bit"
    name = f"AE {lab} latents" + (f" + corrections {spec}" if spec else "")
    fam = f"AE {lab}" + (" + corrections" if spec else "")
    return Method(
        name,
        fam,
        spec or "",
        enc,
        dec,
        needs_model=True,
        params={"model": ae.ref, "latent_bits": bits},
    )


def raw_method() -> Method:
    return Method(
        "float32",
        "float32",
        "",
        lambda c, cols: Payload(jet={v: cols[v].copy() for v in VARS}),
        lambda c, p: dict(p.jet),
    )


# --------------------------------------------------------------------------------------
# ROOT files
# --------------------------------------------------------------------------------------
def write_root(
    path: str, counts: np.ndarray, p: Payload, algo: str, level: int, block: int, *, empty=False
) -> None:
    """Tree ``Events``: nJet + Jet_* (per jet) + per-event jagged; the model as a string."""
    offs = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ev_offs = {
        k: np.concatenate([[0], np.cumsum(s)]).astype(np.int64) for k, (_, s) in p.event.items()
    }

    def chunk(s: int, e: int) -> dict:
        out: dict = {}
        if p.jet:
            out["Jet"] = ak.zip(
                {k: ak.unflatten(v[offs[s] : offs[e]], counts[s:e]) for k, v in p.jet.items()}
            )
        else:
            out["nJet"] = counts[s:e].astype(np.int32)
        for k, (v, sizes) in p.event.items():
            o = ev_offs[k]
            out[k] = ak.unflatten(v[o[s] : o[e]], sizes[s:e])
        return out

    with uproot.recreate(path, compression=_ALGOS[algo](level)) as f:
        first = chunk(0, 0)
        if p.jet:
            first["Jet"] = ak.zip({k: ak.unflatten(v[:0], counts[:0]) for k, v in p.jet.items()})
        f.mktree(
            "Events", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in first.items()}
        )
        if empty:
            return
        for s in range(0, len(counts), block):
            f["Events"].extend(chunk(s, min(s + block, len(counts))))
        if p.model:  # after the tree, so the tree's metadata is not moved around it
            f["hepae_codec_model"] = p.model.decode()


def read_root(path: str, counts: np.ndarray, like: Payload) -> Payload:
    with uproot.open(path) as f:
        t = f["Events"]
        names = [f"Jet_{k}" for k in like.jet] + list(like.event)
        arr = t.arrays(names or ["nJet"], library="ak") if names else None
        out = Payload(info=like.info, model=like.model)
        for k in like.jet:
            out.jet[k] = ak.to_numpy(ak.flatten(arr[f"Jet_{k}"]))
        for k in like.event:
            a = arr[k]
            out.event[k] = (ak.to_numpy(ak.flatten(a)), ak.to_numpy(ak.num(a)))
    return out


# --------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------
def errors(orig: dict, rec: dict) -> dict:
    out = {}
    for v in VARS:
        a, b = orig[v].astype(np.float64), rec[v].astype(np.float64)
        if v == "phi":
            r = circular_error(b, a)
        elif v in REL_VARS:
            nz = a != 0
            r = np.where(nz, np.abs(b - a) / np.where(nz, np.abs(a), 1), np.abs(b - a))
        else:
            r = np.abs(b - a)
        q16, q84 = np.percentile(
            np.where(v == "phi", _signed_dphi(b, a), _signed(v, b, a)), [16, 84]
        )
        out[v] = {"max": float(r.max(initial=0)), "sigma68": float((q84 - q16) / 2)}
    return out


def _signed(v: str, b: np.ndarray, a: np.ndarray) -> np.ndarray:
    if v in REL_VARS:
        return np.where(a != 0, (b - a) / np.where(a != 0, a, 1), b - a)
    return b - a


def _signed_dphi(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    d = (b - a + math.pi) % (2 * math.pi) - math.pi
    return d


def run_method(m: Method, counts, cols, tmp: str, args, settings) -> dict:
    n = int(counts.sum())
    payload, t_enc = best_cpu_time(lambda: m.encode(counts, cols), args.repeat)
    rec, t_dec = best_cpu_time(lambda: m.decode(counts, payload), args.repeat)
    row = {
        "method": m.name,
        "family": m.family,
        "precision": m.precision,
        "params": m.params,
        "us_per_jet_encode": 1e6 * t_enc / n,
        "us_per_jet_decode": 1e6 * t_dec / n,
        "errors": errors(cols, rec),
        "fraction_jets_corrected": payload.info.get("fraction_jets_corrected"),
        "bytes_per_jet": {},
        "model_bytes": {},
    }
    best_ref = best_emb = None
    for algo, level in settings:
        path = os.path.join(tmp, "f.root")
        write_root(path, counts, payload, algo, level, args.block)
        full = os.path.getsize(path)
        write_root(path, counts, payload, algo, level, args.block, empty=True)
        empty = os.path.getsize(path)
        key = f"{algo}{level}"
        emb = (full - empty) / n
        ref = emb
        if payload.model:
            # the model's own compressed bytes: adding a string to a file also rewrites
            # uproot's streamer and directory records, a fixed cost that a compressed file
            # with its info string pays anyway
            write_root(path, counts, payload, algo, level, args.block)
            with uproot.open(path) as f:
                mkey = f.key("hepae_codec_model")
                mbytes = int(mkey.data_compressed_bytes)
            nomodel = Payload(jet=payload.jet, event=payload.event, info=payload.info)
            write_root(path, counts, nomodel, algo, level, args.block)
            ref = (os.path.getsize(path) - empty) / n
            emb = ref + mbytes / n
            row["model_bytes"][key] = mbytes
        row["bytes_per_jet"][key] = {"embedded": emb, "by_reference": ref}
        if best_ref is None or ref < best_ref[1]:
            best_ref = (key, ref, algo, level)
        if best_emb is None or emb < best_emb[1]:
            best_emb = (key, emb)
    key, _, algo, level = best_ref
    path = os.path.join(tmp, "f.root")
    write_root(path, counts, payload, algo, level, args.block)
    back, t_read = best_cpu_time(lambda: read_root(path, counts, payload), args.repeat)
    rec2 = m.decode(counts, back)
    same = all(np.array_equal(rec[v], rec2[v]) for v in VARS)
    row.update(
        best_setting=key,
        best_bytes_per_jet=best_ref[1],
        best_setting_embedded=best_emb[0],
        best_bytes_per_jet_embedded=best_emb[1],
        us_per_jet_read_best=1e6 * t_read / n,
        roundtrip_through_root_identical=bool(same),
    )
    os.unlink(path)
    return row


def read_sample(path: str) -> tuple[np.ndarray, dict]:
    with uproot.open(path) as f:
        t = f["Events"]
        have = set(t.keys())
        missing = [f"Jet_{v}" for v in VARS if f"Jet_{v}" not in have]
        if missing:
            raise KeyError(", ".join(missing))
        arr = t.arrays(["nJet", *[f"Jet_{v}" for v in VARS]], library="ak")
    counts = ak.to_numpy(arr["nJet"]).astype(np.int64)
    cols = {
        v: ak.to_numpy(ak.flatten(arr[f"Jet_{v}"])).astype(
            np.int32 if v in INT_VARS else np.float32
        )
        for v in VARS
    }
    return counts, cols


RD_BITS = (5, 7, 10, 12, 15)  # uniform-bit specs for the rate-distortion curves


def methods_for(model: EntropyModel, args) -> list[Method]:
    """Every method at every precision (filtered by ``--families``)."""
    specs = list(PRESETS) + [
        ",".join(f"{v}={b}bits" for v in VARS) for b in RD_BITS if args.rd_curves
    ]
    out = [raw_method(), float16_method()]
    for spec in specs:
        out.append(codec_method("truncate", spec))
        out.append(codec_method("quantize", spec))
        if spec not in PRESETS:  # the presets' pcodec rows come below
            out.append(codec_method("pcodec", spec))
        out.append(codec_method("entropy", spec, model=model, embed_model=True))
    many = VARS != KINEMATICS
    for spec in PRESETS:
        # sz3 / zfp / fpzip work per column in the coordinate of its bound (log for
        # relative bounds); integer columns are stored unchanged
        for fn in (sz3_method, zfp_method, fpzip_method):
            try:
                out.append(fn(spec))
            except ImportError as err:
                print(f"skipping {fn.__name__}: {err}", flush=True)
        out += [pcodec_method("truncate", spec), codec_method("pcodec", spec)]
    if args.ae and not many:  # the shipped model encodes the four kinematics only
        ae = AE(args.model)
        out += [ae_method(ae, None, None), ae_method(ae, 16, None)]
        for spec in PRESETS:
            out += [ae_method(ae, None, spec), ae_method(ae, 16, spec)]
    if args.families:
        keep = set(args.families.split(","))
        out = [m for m in out if m.family in keep]
    return out


# --------------------------------------------------------------------------------------
# summaries: table and figure
# --------------------------------------------------------------------------------------
def _gmean(d: dict, key: str) -> float:
    vals = [max(d[v][key], 1e-12) for v in VARS if v not in INT_VARS]
    return float(np.exp(np.mean(np.log(vals))))


def bound_met(row: dict) -> bool | None:
    """Whether every value met the row's precision (None: the row has no precision)."""
    if not row["precision"]:
        return None
    from hepae_coffea.codecs.quantize import make_grid

    prec = parse_precision(row["params"].get("spec", row["precision"]))
    for v in VARS:
        if v in INT_VARS:
            if row["errors"][v]["max"] != 0:
                return False
            continue
        g = make_grid(v, prec[v], None)
        if row["errors"][v]["max"] > g.max_error:
            return False
    return True


def at_equal_sigma68(rows: list[dict], family: str, target: float) -> float | None:
    """Bytes/jet of ``family`` interpolated (log-log) at a geometric-mean sigma68."""
    pts = sorted(
        (_gmean(r["errors"], "sigma68"), r["best_bytes_per_jet"])
        for r in rows
        if r["family"] == family and _gmean(r["errors"], "sigma68") > 1e-11
    )
    if len(pts) < 2 or not pts[0][0] <= target <= pts[-1][0]:
        return None
    x = np.log([p[0] for p in pts])
    y = np.log([p[1] for p in pts])
    return float(np.exp(np.interp(math.log(target), x, y)))


def table(result: dict) -> str:
    out = []
    samples = list(result["samples"])
    rows = result["rows"]
    out.append("#### Bytes per jet at equal maximum error (best ROOT setting per method)\n")
    out.append(
        "Cells: B/jet with the model by reference; in brackets with the model embedded "
        "(only where a model is needed). `ok` = every value met the bound.\n"
    )
    for spec in PRESETS:
        out.append(f"**{spec}**\n")
        out.append("| method | " + " | ".join(samples) + " | bound met | enc / dec µs/jet |")
        out.append("|---|" + "---:|" * len(samples) + "---|---|")
        names = [r["method"] for r in rows if r["precision"] == spec and r["sample"] == samples[0]]
        for name in names:
            cells = []
            ok, timing = [], ""
            for sname in samples:
                r = next((r for r in rows if r["method"] == name and r["sample"] == sname), None)
                if r is None:
                    cells.append("–")
                    continue
                c = f"{r['best_bytes_per_jet']:.2f}"
                if r["best_bytes_per_jet_embedded"] > r["best_bytes_per_jet"] + 1e-9:
                    c += f" ({r['best_bytes_per_jet_embedded']:.2f})"
                cells.append(c)
                ok.append(bound_met(r))
                if sname == samples[0]:
                    timing = f"{r['us_per_jet_encode']:.2f} / {r['us_per_jet_decode']:.2f}"
            met = (
                "ok"
                if all(ok)
                else "no: " + ", ".join(s for s, o in zip(samples, ok, strict=False) if not o)
            )
            out.append(f"| {name} | " + " | ".join(cells) + f" | {met} | {timing} |")
        out.append("")
        trunc = {r["sample"]: r for r in rows if r["method"] == f"truncate {spec}"}
        ent = {r["sample"]: r for r in rows if r["method"] == f"entropy {spec}"}
        if trunc and ent:
            ratio = ", ".join(
                f"{s} {ent[s]['best_bytes_per_jet'] / trunc[s]['best_bytes_per_jet']:.3f}"
                f" ({ent[s]['best_bytes_per_jet_embedded'] / trunc[s]['best_bytes_per_jet']:.3f})"
                for s in samples
                if s in ent and s in trunc
            )
            out.append(f"entropy / truncation ({spec}), by reference (embedded): {ratio}\n")
    if VARS != KINEMATICS:
        out.append(
            "The autoencoder is not in this race: the shipped model maps the 4 kinematics to "
            "3 latents and has no encoding of the other columns.\n"
        )
    for sname, why in result.get("skipped_samples", {}).items():
        out.append(f"Sample {sname} not raced: {why}.\n")
    ae = result["provenance"].get("ae_model")
    if ae:
        out.append(
            "AE model: "
            + "; ".join(
                f"{Path(a['path']).name} (file sha256 {a.get('file_sha256', '?')[:16]}…)"
                for a in ae
            )
            + "\n"
        )
    em = result.get("entropy_model")
    if em:
        out.append(
            f"Entropy model: {em['json_bytes']} B as JSON (sha256 {em.get('sha256', '?')[:16]}…), "
            f"trained on {em['train_jets']} jets; embedded it adds its ROOT-compressed bytes.\n"
        )
    out.append("#### Errors (first sample), max and sigma68 per variable\n")
    out.append(
        "| method | " + " | ".join(f"{v} {'rel' if v in REL_VARS else 'abs'}" for v in VARS) + " |"
    )
    out.append("|---|" + "---|" * len(VARS))
    for r in rows:
        if r["sample"] != samples[0]:
            continue
        e = r["errors"]
        out.append(
            f"| {r['method']} | "
            + " | ".join(f"{sci(e[v]['max'])} / {sci(e[v]['sigma68'])}" for v in VARS)
            + " |"
        )
    out.append("")
    nf = sum(v not in INT_VARS for v in VARS)
    out.append(
        f"#### Bytes per jet at equal sigma68 (geometric mean over the {nf} float variables)\n"
    )
    if nf != len(VARS):
        out.append(
            "(integer columns are exact and left out; a sigma68 of 0 enters as 1e-12, the same "
            "factor for every method)\n"
        )
    fams = sorted({r["family"] for r in rows})
    out.append("| family | " + " | ".join(samples) + " |")
    out.append("|---|" + "---:|" * len(samples))
    for fam in fams:
        cells = []
        for sname in samples:
            sr = [r for r in rows if r["sample"] == sname]
            ref = next((r for r in sr if r["method"] == "truncate nanoaod"), None)
            v = at_equal_sigma68(sr, fam, _gmean(ref["errors"], "sigma68")) if ref else None
            cells.append("–" if v is None else f"{v:.2f}")
        if any(c != "–" for c in cells):
            out.append(f"| {fam} | " + " | ".join(cells) + " |")
    out.append(
        "\n(interpolated log-log along each family's points at the sigma68 of NanoAOD-bit "
        "truncation; – where the family's points do not bracket it)\n"
    )
    return "\n".join(out) + "\n"


def figure(result: dict, sample: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as mh

    mh.style.use("ATLAS")
    rows = [r for r in result["rows"] if r["sample"] == sample and r["precision"]]
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
    fams = sorted({r["family"] for r in rows})
    markers = "osD^v<>pPX*h"
    nf = sum(v not in INT_VARS for v in VARS)
    for ax, key, lab in (
        (axes[0], "max", f"max error (geom. mean of {nf} variables)"),
        (axes[1], "sigma68", rf"$\sigma_{{68}}$ (geom. mean of {nf} variables)"),
    ):
        for i, fam in enumerate(fams):
            pts = sorted(
                (r["best_bytes_per_jet"], _gmean(r["errors"], key))
                for r in rows
                if r["family"] == fam
            )
            if not pts:
                continue
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker=markers[i % len(markers)],
                label=fam,
                lw=1,
            )
        ax.set_xlabel("bytes per jet (best ROOT setting)", fontsize=15)
        ax.set_ylabel(lab, fontsize=15)
        ax.set_yscale("log")
        mh.atlas.label(ax=ax, text="Internal", data=False, com=13, loc=0, rlabel=sample)
    axes[1].legend(fontsize=8, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", action="append", default=[], help="training file(s)")
    ap.add_argument("--sample", action="append", default=[], help="NAME=PATH held-out file")
    ap.add_argument("--block", type=int, default=10_000, help="events per extend (basket)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--families", default="", help="only these method families (comma list)")
    ap.add_argument("--no-rd-curves", dest="rd_curves", action="store_false")
    ap.add_argument("--no-ae", dest="ae", action="store_false")
    ap.add_argument(
        "--all-settings", action="store_true", help="every ROOT setting for every method"
    )
    ap.add_argument("--model", default=None, help="AE model (default: the shipped one)")
    ap.add_argument(
        "--variables",
        choices=("kinematics", "all13"),
        default="kinematics",
        help="race pt, eta, phi, mass, or the 13-variable set (no AE: it encodes 4 variables)",
    )
    ap.add_argument(
        "--root-settings",
        default="",
        help="only these ROOT settings for truncation/float16/float32 (e.g. zlib9,lzma9,lz49)",
    )
    ap.add_argument("--out", default="benchmarks/results/codec_race.json")
    ap.add_argument("--table", default="benchmarks/results/codec_race.md")
    ap.add_argument("--figure", default="benchmarks/codec_race.png")
    ap.add_argument("--from-json", default=None, help="only rewrite table/figure from a result")
    args = ap.parse_args(argv)
    global VARS
    VARS = VARS13 if args.variables == "all13" else KINEMATICS
    if args.variables == "all13":
        args.rd_curves = False  # the curves use N bits on every variable
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        if saved["config"].get("variables") == "all13":
            VARS = VARS13
        write_summaries(saved, args)
        return
    begin = provenance.start()
    result: dict = {"provenance": {}, "config": vars(args), "rows": [], "samples": {}}
    t0 = time.perf_counter()
    tc, tcols = [], {v: [] for v in KINEMATICS}
    for path in args.train:
        c, cols = read_sample(path)
        tc.append(c)
        for v in KINEMATICS:
            tcols[v].append(cols[v])
    counts_t = np.concatenate(tc)
    model = fit_model(
        {v: np.concatenate(tcols[v]) for v in KINEMATICS}, counts_t, name="+".join(args.train)
    )
    mb = model.to_bytes()
    result["entropy_model"] = {
        "trained_on": args.train,
        "train_jets": int(counts_t.sum()),
        "json_bytes": len(mb),
        "json_lzma_bytes": len(__import__("lzma").compress(mb, preset=9)),
        "sha256": __import__("hashlib").sha256(mb).hexdigest(),
    }
    print(f"entropy model: {result['entropy_model']}", flush=True)
    methods = methods_for(model, args)
    refs = {json.dumps(m.params["model"], sort_keys=True) for m in methods if "model" in m.params}
    result["skipped_samples"] = {}
    tmp = tempfile.mkdtemp(prefix="codec_race_")
    for sname, path in named(args.sample):
        try:
            counts, cols = read_sample(path)
        except KeyError as err:  # e.g. a NanoAOD file without Jet_width in the 13-variable race
            result["skipped_samples"][sname] = f"{path} has no {err.args[0]}"
            print(f"skipping sample {sname}: {path} has no {err.args[0]}", flush=True)
            continue
        result["samples"][sname] = {"path": path, "events": len(counts), "jets": int(counts.sum())}
        for m in methods:
            full = m.family in ("truncate", "float32", "float16") or args.all_settings
            settings = ROOT_SETTINGS if full else SHORT_SETTINGS
            if full and args.root_settings:
                keep = set(args.root_settings.split(","))
                settings = [(a, lv) for a, lv in settings if f"{a}{lv}" in keep]
            row = run_method(m, counts, cols, tmp, args, settings)
            row["sample"] = sname
            result["rows"].append(row)
            print(
                f"[{sname}] {m.name:28s} best {row['best_setting']:6s} "
                f"{row['best_bytes_per_jet']:6.3f} B/jet "
                f"(embedded {row['best_bytes_per_jet_embedded']:6.3f}) max "
                + " ".join(f"{row['errors'][v]['max']:.2e}" for v in VARS)
                + f" enc {row['us_per_jet_encode']:.2f} dec {row['us_per_jet_decode']:.2f} us",
                flush=True,
            )
    os.rmdir(tmp)
    result["provenance"] = provenance.provenance(begin)
    result["provenance"]["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if refs:
        result["provenance"]["ae_model"] = [json.loads(r) for r in sorted(refs)]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    write_summaries(result, args)


def write_summaries(result: dict, args) -> None:
    if args.table:
        Path(args.table).write_text(table(result))
    if args.figure:
        first = next(iter(result["samples"]))
        figure(result, first, args.figure)
    print("wrote", *(f for f in (args.table, args.figure) if f))


if __name__ == "__main__":
    main()
