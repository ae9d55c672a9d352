"""Compare lossy jet-kinematics compressions written as real ROOT files.

Usage::

    python benchmarks/compression_compare.py \
        --sample qcd=samples/qcd_test_big.root --sample ttbar=samples/ttbar_big.root \
        --signal zprime=samples/zprime_test.root \
        --model default=hepae_coffea/data/default_model.pt \
        --out benchmarks/results/compression.json --figure build/rate_distortion.png \
        --tables benchmarks/results/compression_tables.md
    python benchmarks/compression_compare.py --tables-from benchmarks/results/compression.json \
        --tables build/compression_tables.md --figure build/rate_distortion.png

For every method and sample the jets' (pt, eta, phi, mass) are encoded, written to a ROOT
file holding only the jet kinematics (tree ``Events``: ``nJet`` plus the method's jagged
``Jet_*`` branches, ``uproot.recreate(..., compression=C)``, ``mktree`` + ``extend`` in
blocks of ``--block`` events) once with LZMA(9) and once with ZSTD(5), read back and
decoded. Bytes per jet = (file size - size of the same file with an empty tree) / jets.
Autoencoder latents are written here with the same layout ``hepae compress`` uses
(``Jet_z0..``, float32) but without the model string ``hepae compress`` embeds; that
fixed per-file overhead is measured separately once (``hepae_compress_check``).

CPU costs are ``time.process_time()`` (all threads, torch limited to 1 thread), best of
``--repeat`` runs, of the encode and decode steps alone (no I/O), in microseconds per jet;
read costs are the process time of reading ``nJet`` + the jet branches of a file.

Residuals, unphysical counts and pT-threshold crossings come from the decoded float32
values; the anomaly part scores original and decompressed jets with the default model's
``score`` (per jet, and the maximum over each event's jets) and reports ROC AUCs.
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
import torch
import uproot
from common import branch_bytes, named, sci

from hepae_coffea.compress.files import compress as hepae_compress
from hepae_coffea.compress.files import truncate_mantissa
from hepae_coffea.model.export import default_model_path
from hepae_coffea.model.handle import open_model
from hepae_coffea.processing.anomaly import roc_from_scores
from hepae_coffea.processing.metrics import residual_summary, unphysical_mask

VARS = ("pt", "eta", "phi", "mass")
BRANCHES = tuple(f"Jet_{v}" for v in VARS)
COMPRESSIONS = {"lzma": lambda: uproot.LZMA(9), "zstd": lambda: uproot.ZSTD(5)}
PT_THRESHOLDS = (20.0, 30.0)

# 12+12-bit packing reference: log pt in [PACK_PT_LO, PACK_PT_HI], log(1 + m/PACK_M0) in
# [0, log(1 + PACK_M_HI/PACK_M0)], both quantised to 4096 levels in one uint32 word
PACK_PT_LO, PACK_PT_HI = 10.0, 10_000.0
PACK_M0, PACK_M_HI = 1.0, 5_000.0
# log offset of mass for the direct quantiser and the residual correction
MASS_OFFSET = 0.05


# --------------------------------------------------------------------------------------
# methods: encode(X float32 (n, 4)) -> payload dict; decode(payload) -> X' float32 (n, 4)
# payload: {"jet": {branch suffix: flat per-jet array}, "blob": {name: [bytes, ...]}}
# --------------------------------------------------------------------------------------
@dataclass
class Method:
    name: str
    family: str
    encode: Callable[[np.ndarray], dict]
    decode: Callable[[dict], np.ndarray]
    params: dict = field(default_factory=dict)


def _jet(**cols) -> dict:
    return {"jet": {k: np.ascontiguousarray(v) for k, v in cols.items()}, "blob": {}}


def m_njet_only() -> Method:
    """Layout floor of a file with only nJet (what the zfp layout pays besides its blobs)."""
    return Method(
        "layout floor (nJet only)",
        "floor",
        lambda x: {"jet": {}, "blob": {}, "n": len(x)},
        lambda p: np.zeros((p["n"], 4), np.float32),
    )


def m_raw() -> Method:
    return Method(
        "float32 raw",
        "raw",
        lambda x: _jet(**{v: x[:, i] for i, v in enumerate(VARS)}),
        lambda p: np.stack([p["jet"][v] for v in VARS], axis=1),
    )


def m_zeros() -> Method:
    """Layout floor: four float32 branches of zeros (nJet, offsets and headers only)."""
    return Method(
        "layout floor (zeros)",
        "floor",
        lambda x: _jet(**{v: np.zeros(len(x), np.float32) for v in VARS}),
        lambda p: np.zeros((len(p["jet"]["pt"]), 4), np.float32),
    )


def m_trunc(bits: int) -> Method:
    return Method(
        f"truncation {bits} bits",
        "truncation",
        lambda x: _jet(**{v: truncate_mantissa(x[:, i], bits) for i, v in enumerate(VARS)}),
        lambda p: np.stack([p["jet"][v] for v in VARS], axis=1),
        {"bits": bits},
    )


def m_float16() -> Method:
    return Method(
        "float16",
        "float16",
        lambda x: _jet(
            **{v: x[:, i].astype(np.float16).view(np.uint16) for i, v in enumerate(VARS)}
        ),
        lambda p: np.stack([p["jet"][v].view(np.float16).astype(np.float32) for v in VARS], axis=1),
    )


ZFP_BLOCK = 1 << 16  # jets per zfp stream


def m_zfp(mode: str, value: float) -> Method:
    import zfpy

    kw = {"precision": int(value)} if mode == "precision" else {"tolerance": float(value)}

    def enc(x):
        blobs = {}
        for i, v in enumerate(VARS):
            col = np.ascontiguousarray(x[:, i])
            blobs[v] = [
                zfpy.compress_numpy(col[s : s + ZFP_BLOCK], **kw)
                for s in range(0, max(len(col), 1), ZFP_BLOCK)
            ]
        return {"jet": {}, "blob": blobs}

    def dec(p):
        return np.stack(
            [np.concatenate([zfpy.decompress_numpy(b) for b in p["blob"][v]]) for v in VARS],
            axis=1,
        ).astype(np.float32)

    label = f"zfp precision {int(value)}" if mode == "precision" else f"zfp accuracy {value:g}"
    return Method(label, f"zfp {mode}", enc, dec, {mode: value})


def m_pack12() -> Method:
    lpt_lo, lpt_w = math.log(PACK_PT_LO), math.log(PACK_PT_HI / PACK_PT_LO)
    lm_w = math.log1p(PACK_M_HI / PACK_M0)

    def enc(x):
        qpt = np.rint((np.log(x[:, 0].astype(np.float64)) - lpt_lo) / lpt_w * 4095)
        qm = np.rint(np.log1p(x[:, 3].astype(np.float64) / PACK_M0) / lm_w * 4095)
        qpt = np.clip(qpt, 0, 4095).astype(np.uint32)
        qm = np.clip(qm, 0, 4095).astype(np.uint32)
        return _jet(ptm=(qpt << 12) | qm, eta=x[:, 1], phi=x[:, 2])

    def dec(p):
        w = p["jet"]["ptm"]
        qpt = (w >> 12).astype(np.float64)
        qm = (w & 4095).astype(np.float64)
        pt = np.exp(lpt_lo + qpt / 4095 * lpt_w)
        m = PACK_M0 * np.expm1(qm / 4095 * lm_w)
        return np.stack([pt, p["jet"]["eta"], p["jet"]["phi"], m], axis=1).astype(np.float32)

    return Method("pack 12+12 bit pt/mass + f32 eta/phi", "pack12", enc, dec)


def _fwd(x: np.ndarray) -> np.ndarray:
    """The coordinates the direct quantiser and the residual correction work in."""
    x = x.astype(np.float64)
    return np.stack([np.log(x[:, 0]), x[:, 1], x[:, 2], np.log(x[:, 3] + MASS_OFFSET)], axis=1)


def _inv(t: np.ndarray) -> np.ndarray:
    phi = (t[:, 2] + math.pi) % (2 * math.pi) - math.pi
    m = np.maximum(np.exp(t[:, 3]) - MASS_OFFSET, 0.0)
    return np.stack([np.exp(t[:, 0]), t[:, 1], phi, m], axis=1).astype(np.float32)


def m_direct(steps: np.ndarray, tag: str) -> Method:
    """Non-learned reference: uniform quantisation of (log pt, eta, phi, log(m + 0.05))."""

    def enc(x):
        q = np.rint(_fwd(x) / steps)
        if np.abs(q).max(initial=0) > 32767:
            raise ValueError("uniform quantiser: codes do not fit int16")
        q = q.astype(np.int16)
        return _jet(**{f"q{v}": q[:, i] for i, v in enumerate(VARS)})

    def dec(p):
        q = np.stack([p["jet"][f"q{v}"] for v in VARS], axis=1).astype(np.float64)
        return _inv(q * steps)

    return Method(
        f"uniform quantiser ({tag})",
        "uniform quantiser",
        enc,
        dec,
        {"steps": steps.tolist(), "target": tag},
    )


class AE:
    def __init__(self, name: str, path: str):
        self.name, self.path = name, path
        handle = open_model(path)
        self.module = handle.module()
        self.k = handle.latent_dim
        self.meta = handle.metadata
        warm = torch.from_numpy(np.array([[50.0, 0.1, 0.2, 8.0]] * 256, np.float32))
        with torch.inference_mode():
            for _ in range(3):  # TorchScript optimises on the first calls
                self.module.decode(self.module.encode(warm))
                self.module.score(warm)

    def encode(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module.encode(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    def decode(self, z: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module.decode(torch.from_numpy(np.ascontiguousarray(z))).numpy()

    def score(self, x: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for s in range(0, len(x), 200_000):
                xs = torch.from_numpy(np.ascontiguousarray(x[s : s + 200_000], np.float32))
                out.append(self.module.score(xs).numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def m_ae(ae: AE, bits: int | None) -> Method:
    def enc(x):
        z = ae.encode(x)
        if bits is not None:
            z = truncate_mantissa(z, bits)
        return _jet(**{f"z{i}": z[:, i] for i in range(ae.k)})

    def dec(p):
        return ae.decode(np.stack([p["jet"][f"z{i}"] for i in range(ae.k)], axis=1))

    lab = "float32" if bits is None else f"{bits}-bit"
    return Method(
        f"AE {ae.name} (K={ae.k}) {lab} latents",
        f"AE {ae.name}",
        enc,
        dec,
        {"model": ae.path, "latent_dim": ae.k, "latent_bits": bits},
    )


def m_ae_residual(ae: AE, bits: int, steps: np.ndarray, tag: str) -> Method:
    """Idea: AE latents (truncated) + the uniformly quantised residual of each variable
    in (log pt, eta, phi, log(m + 0.05)), int16 codes (clipped)."""

    def enc(x):
        z = truncate_mantissa(ae.encode(x), bits)
        t_hat = _fwd(ae.decode(z))
        d = _fwd(x) - t_hat
        d[:, 2] = (d[:, 2] + math.pi) % (2 * math.pi) - math.pi
        q = np.clip(np.rint(d / steps), -32767, 32767).astype(np.int16)
        return _jet(
            **{f"z{i}": z[:, i] for i in range(ae.k)},
            **{f"r{v}": q[:, i] for i, v in enumerate(VARS)},
        )

    def dec(p):
        z = np.stack([p["jet"][f"z{i}"] for i in range(ae.k)], axis=1)
        q = np.stack([p["jet"][f"r{v}"] for v in VARS], axis=1).astype(np.float64)
        return _inv(_fwd(ae.decode(z)) + q * steps)

    return Method(
        f"AE {ae.name} {bits}-bit latents + residual ({tag})",
        "AE + residual",
        enc,
        dec,
        {"model": ae.path, "latent_bits": bits, "steps": steps.tolist(), "target": tag},
    )


# --------------------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------------------
def read_sample(path: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(counts, X float32 (n, 4), process seconds of the read) from a NanoAOD-like file."""
    t0 = time.process_time()
    with uproot.open(path) as f:
        arr = f["Events"].arrays(["nJet", *BRANCHES], library="np")
    counts = arr["nJet"].astype(np.int64)
    cols = [
        np.concatenate(arr[b]).astype(np.float32) if len(arr[b]) else np.zeros(0, np.float32)
        for b in BRANCHES
    ]
    dt = time.process_time() - t0
    return counts, np.stack(cols, axis=1), dt


def _blocks(counts: np.ndarray, block: int):
    offs = np.concatenate([[0], np.cumsum(counts)])
    for s in range(0, len(counts), block):
        e = min(s + block, len(counts))
        yield s, e, int(offs[s]), int(offs[e])


def write_file(
    path: str, counts: np.ndarray, payload: dict, comp: str, block: int, empty: bool = False
) -> None:
    jet, blob = payload["jet"], payload["blob"]

    def record(s, e, js, je):
        return ak.zip({k: ak.unflatten(v[js:je], counts[s:e]) for k, v in jet.items()})

    with uproot.recreate(path, compression=COMPRESSIONS[comp]()) as f:
        if jet:
            f.mktree("Events", {"Jet": record(0, 0, 0, 0).type})
        else:
            f.mktree("Events", {"nJet": np.int32})
        if blob:
            f.mktree("Blobs", {k: "var * uint8" for k in blob})
        if empty:
            return
        for s, e, js, je in _blocks(counts, block):
            if jet:
                f["Events"].extend({"Jet": record(s, e, js, je)})
            else:
                f["Events"].extend({"nJet": counts[s:e].astype(np.int32)})
        if blob:
            n = len(next(iter(blob.values())))
            f["Blobs"].extend(
                {k: ak.Array([np.frombuffer(b, np.uint8) for b in blob[k][:n]]) for k in blob}
            )


def read_file(path: str, payload_like: dict) -> tuple[dict, float]:
    """Read the payload back (flat arrays / blobs); process seconds of the read."""
    t0 = time.process_time()
    out: dict = {"jet": {}, "blob": {}}
    with uproot.open(path) as f:
        t = f["Events"]
        names = [f"Jet_{k}" for k in payload_like["jet"]]
        arr = (
            t.arrays(["nJet", *names], library="np") if names else t.arrays(["nJet"], library="np")
        )
        for k in payload_like["jet"]:
            a = arr[f"Jet_{k}"]
            out["jet"][k] = np.concatenate(a) if len(a) else np.zeros(0)
        if payload_like["blob"]:
            b = f["Blobs"].arrays(list(payload_like["blob"]), library="np")
            for k in payload_like["blob"]:
                out["blob"][k] = [x.tobytes() for x in b[k]]
    return out, time.process_time() - t0


def _same_payload(a: dict, b: dict) -> bool:
    for k, v in a["jet"].items():
        if not np.array_equal(
            v.view(np.uint8), np.ascontiguousarray(b["jet"][k]).astype(v.dtype).view(np.uint8)
        ):
            return False
    return all(list(a["blob"][k]) == list(b["blob"][k]) for k in a["blob"])


def threshold_crossings(orig: np.ndarray, rec: np.ndarray) -> dict:
    out = {}
    for thr in PT_THRESHOLDS:
        a, b = orig[:, 0] > thr, rec[:, 0] > thr
        out[f"lost_{thr:g}"] = int((a & ~b).sum())
        out[f"gained_{thr:g}"] = int((~a & b).sum())
        out[f"below_{thr:g}"] = int((a & (rec[:, 0] < thr)).sum())  # lost even for pt >= thr
    return out


def run_method(meth: Method, sample: str, counts, x, tmp: str, block: int, repeat: int) -> dict:
    payload, t_enc = provenance.best_cpu_time(lambda: meth.encode(x), repeat)
    rec, t_dec = provenance.best_cpu_time(lambda: meth.decode(payload), repeat)
    n = len(x)
    row = {
        "method": meth.name,
        "family": meth.family,
        "sample": sample,
        "jets": n,
        "events": len(counts),
        "params": meth.params,
        "us_per_jet_compress": 1e6 * t_enc / n,
        "us_per_jet_decompress": 1e6 * t_dec / n,
    }
    for comp in COMPRESSIONS:
        p_full = os.path.join(tmp, f"full_{comp}.root")
        p_empty = os.path.join(tmp, f"empty_{comp}.root")
        write_file(p_full, counts, payload, comp, block)
        write_file(p_empty, counts, payload, comp, block, empty=True)
        size, base = os.path.getsize(p_full), os.path.getsize(p_empty)
        back, t_read = provenance.best_cpu_time(lambda p=p_full: read_file(p, payload)[0], repeat)
        if not _same_payload(payload, back):
            raise RuntimeError(f"{meth.name}: payload read back from {comp} file differs")
        bb = branch_bytes(p_full)
        bb.update({"blob:" + k: v for k, v in branch_bytes(p_full, "Blobs").items()})
        row[f"bytes_per_jet_{comp}"] = (size - base) / n
        row[f"basket_bytes_per_jet_{comp}"] = sum(bb.values()) / n
        row[f"branch_bytes_{comp}"] = bb
        row[f"us_per_jet_read_{comp}"] = 1e6 * t_read / n
        os.unlink(p_full)
        os.unlink(p_empty)
    rec64 = rec.astype(np.float64)
    orig64 = x.astype(np.float64)
    summ = residual_summary(orig64, rec64, VARS)
    row["residuals"] = {
        v: {k: summ[v][k] for k in ("sigma68", "rms", "q99_abs", "mean", "n_nonfinite")}
        for v in VARS
    }
    bad = unphysical_mask(rec, VARS)
    row["unphysical"] = int(bad.sum())
    row["unphysical_detail"] = {
        "nonfinite": int((~np.isfinite(rec).all(axis=1)).sum()),
        "neg_pt": int((rec[:, 0] < 0).sum()),
        "neg_mass": int((rec[:, 3] < 0).sum()),
        "phi_out": int((np.abs(rec[:, 2]) > math.pi + 1e-6).sum()),
    }
    row["pt_threshold"] = threshold_crossings(x, rec)
    row["_rec"] = rec
    return row


# --------------------------------------------------------------------------------------
# anomaly separation
# --------------------------------------------------------------------------------------
def auc_hist(bkg: np.ndarray, sig: np.ndarray) -> float:
    """The same with the processor's score binning and plotting.roc_from_hists."""
    import hist

    from hepae_coffea.plots.plotting import roc_from_hists
    from hepae_coffea.processing.hists import SCORE_EDGES

    hs = []
    for v in (bkg, sig):
        h = hist.Hist(hist.axis.Variable(SCORE_EDGES, name="score"))
        h.fill(score=v)
        hs.append(h)
    return roc_from_hists(hs[0], hs[1])[2]


def event_max(score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    has = counts > 0
    m = ak.max(ak.unflatten(score, counts), axis=1)
    return ak.to_numpy(m[has]).astype(np.float64)


# --------------------------------------------------------------------------------------
# figure
# --------------------------------------------------------------------------------------
FAMILY_STYLE = {
    "truncation": ("o", "#1f77b4", "-"),
    "float16": ("s", "#17becf", ""),
    "zfp precision": ("v", "#2ca02c", "-"),
    "zfp accuracy": ("^", "#2ca02c", "--"),
    "pack12": ("D", "#8c564b", ""),
    "uniform quantiser": ("P", "#000000", "-"),
    "AE default": ("*", "#d62728", "-"),
    "AE k2": ("<", "#ff7f0e", "-"),
    "AE k4": (">", "#9467bd", "-"),
    "AE k3_l256": ("h", "#e377c2", "-"),
    "AE + residual": ("X", "#7f7f7f", ""),
    "raw": ("x", "#bcbd22", ""),
}
LABELS = {
    "truncation": "mantissa truncation 4/5/7/10/13 bits",
    "pack12": "12+12-bit pt/m packing",
    "uniform quantiser": "uniform quantiser (log pt, log m)",
    "AE default": "AE default K=3 (f32, 16/14/12-bit)",
    "AE k2": "AE K=2",
    "AE k4": "AE K=4",
    "AE k3_l256": "AE K=3, 256 levels",
    "AE + residual": "AE + quantised residual",
    "raw": "float32",
    "zfp precision": "ZFP precision",
    "zfp accuracy": "ZFP accuracy",
}


def figure(rows: list[dict], sample: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as mh

    sel = [r for r in rows if r["sample"] == sample and r["family"] != "floor"]
    with plt.style.context(mh.style.ATLAS):
        fig, axes = plt.subplots(2, 2, figsize=(12, 10), sharex=True)
        for ax, v in zip(axes.flat, VARS, strict=True):
            for fam, (mk, col, ls) in FAMILY_STYLE.items():
                pts = sorted(
                    (r["bytes_per_jet_lzma"], r["residuals"][v]["sigma68"])
                    for r in sel
                    if r["family"] == fam
                )
                pts = [p for p in pts if p[1] > 0 and np.isfinite(p[1])]
                if not pts:
                    continue
                xs, ys = zip(*pts, strict=True)
                ax.plot(
                    xs,
                    ys,
                    marker=mk,
                    color=col,
                    ls=ls or "none",
                    ms=8,
                    lw=1.2,
                    label=LABELS.get(fam, fam),
                )
            ax.set_yscale("log")
            kind = "relative" if v in ("pt", "mass") else "absolute"
            unit = {"eta": "", "phi": " [rad]"}.get(v, "")
            sym = {"pt": r"$p_\mathrm{T}$", "eta": r"$\eta$", "phi": r"$\phi$", "mass": r"$m$"}[v]
            ax.set_ylabel(rf"{sym} $\sigma_{{68}}$ ({kind}){unit}", fontsize=14)
            ax.set_ylim(top=ax.get_ylim()[1] * 8)
            if v in ("phi", "mass"):
                ax.set_xlabel("bytes / jet (ROOT file, LZMA 9)", fontsize=14)
        xs_all = [r["bytes_per_jet_lzma"] for r in sel]
        axes[0, 0].set_xlim(min(xs_all) - 0.5, max(xs_all) + 0.5)
        mh.atlas.label(
            "Internal", data=False, com=13, ax=axes[0, 0], loc=0, rlabel=f"{sample.upper()} jets"
        )
        h, lab = axes[0, 0].get_legend_handles_labels()
        fig.legend(h, lab, loc="lower center", ncol=4, fontsize=10, frameon=False)
        fig.tight_layout(rect=(0, 0.09, 1, 1))
        fig.savefig(path, dpi=80)
    plt.close(fig)


# --------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sample", action="append", default=[], help="name=path (held-out)")
    ap.add_argument("--signal", action="append", default=[], help="name=path, AUC only")
    ap.add_argument("--model", action="append", default=[], help="name=path of an AE model")
    ap.add_argument("--out", default="benchmarks/results/compression.json")
    ap.add_argument("--figure", default="build/rate_distortion.png")
    ap.add_argument("--block", type=int, default=10_000, help="events per extend (basket)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-events", type=int, default=0)
    ap.add_argument("--skip-zfp", action="store_true")
    ap.add_argument("--tables", default="", help="also write markdown tables here")
    ap.add_argument(
        "--tables-from", default="", help="only redo --tables / --figure from this result JSON"
    )
    args = ap.parse_args()
    if args.tables_from:
        res = json.loads(Path(args.tables_from).read_text())
        if args.tables:
            Path(args.tables).write_text(tables(res))
        if args.figure:
            figure(res["rows"], "qcd", args.figure)
        return
    if not args.sample:
        ap.error("give at least one --sample name=path (or --tables-from a result)")
    torch.set_num_threads(1)
    begin = provenance.start()
    samples = dict(named(args.sample))
    signals = dict(named(args.signal))
    models = dict(named(args.model)) or {"default": str(default_model_path())}
    aes = {k: AE(k, p) for k, p in models.items()}
    if "default" not in aes:
        aes["default"] = AE("default", str(default_model_path()))
    result: dict = {
        "config": {
            "samples": samples,
            "signals": signals,
            "models": models,
            "block_events": args.block,
            "repeat": args.repeat,
            "compressions": {"lzma": 9, "zstd": 5},
            "torch_threads": torch.get_num_threads(),
        },
        "rows": [],
        "reads": {},
        "auc": [],
        "notes": [],
    }
    zfp_ok = not args.skip_zfp
    if zfp_ok:
        try:
            import zfpy  # noqa: F401
        except ImportError as err:
            zfp_ok = False
            result["notes"].append(f"zfpy not importable: {err}")
    data = {}
    for name, path in {**samples, **signals}.items():
        counts, x, t_read = read_sample(path)
        n_file_jets = len(x)
        if args.max_events:
            counts = counts[: args.max_events]
            x = x[: int(counts.sum())]
        _, t_read = provenance.best_cpu_time(lambda p=path: read_sample(p), args.repeat)
        data[name] = (counts, x)
        result["reads"][name] = {
            "path": path,
            "events": len(counts),
            "jets": len(x),
            "us_per_jet_read_original": 1e6 * t_read / n_file_jets,
        }
        print(
            f"{name}: {len(counts)} events, {len(x)} jets, read {1e6 * t_read / n_file_jets:.2f} us/jet",
            flush=True,
        )

    recs: dict = {}
    tmp = tempfile.mkdtemp(prefix="hepae_cmp_")
    for sname in samples:
        counts, x = data[sname]
        methods = (
            [m_njet_only(), m_zeros(), m_raw()]
            + [m_trunc(b) for b in (4, 5, 7, 10, 13)]
            + [m_float16()]
        )
        if zfp_ok:
            methods += [m_zfp("precision", p) for p in (12, 16, 20)]
            methods += [m_zfp("accuracy", t) for t in (1e-1, 1e-2, 1e-3)]
        methods.append(m_pack12())
        for key, ae in aes.items():
            bits_list = (None, 16, 14, 12) if key == "default" else (None, 16, 12)
            methods += [m_ae(ae, b) for b in bits_list]
        rows_here = []
        for meth in methods:
            t0 = time.perf_counter()
            row = run_method(meth, sname, counts, x, tmp, args.block, args.repeat)
            rec = row.pop("_rec")
            recs[(sname, meth.name)] = rec
            rows_here.append(row)
            print(
                f"[{sname}] {meth.name:45s} lzma {row['bytes_per_jet_lzma']:6.2f} "
                f"zstd {row['bytes_per_jet_zstd']:6.2f} B/jet  s68 "
                + " ".join(f"{row['residuals'][v]['sigma68']:.2e}" for v in VARS)
                + f"  enc {row['us_per_jet_compress']:.3f} dec {row['us_per_jet_decompress']:.3f}"
                f" us  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        # idea: uniform quantiser and AE + residual at the sigma68 of truncation 7 and 10 bits
        # (uniform error of step D has sigma68 = 0.34 D in the working coordinate)
        for b in (7, 10):
            tr = next(r for r in rows_here if r["method"] == f"truncation {b} bits")
            steps = np.array([tr["residuals"][v]["sigma68"] / 0.3413 for v in VARS])
            if not (steps > 0).all():
                # the sample is already stored at this precision: truncation changed nothing
                note = f"{sname}: truncation {b} bits leaves a variable unchanged; no step to match"
                print(note, flush=True)
                result["notes"].append(note)
                continue
            extra = [m_direct(steps, f"sigma68 of trunc {b}")]
            extra += [
                m_ae_residual(aes["default"], lb, steps, f"sigma68 of trunc {b}") for lb in (8, 12)
            ]
            if "k2" in aes:
                extra.append(m_ae_residual(aes["k2"], 8, steps, f"sigma68 of trunc {b}"))
            for meth in extra:
                row = run_method(meth, sname, counts, x, tmp, args.block, args.repeat)
                recs[(sname, meth.name)] = row.pop("_rec")
                rows_here.append(row)
                print(
                    f"[{sname}] {meth.name:45s} lzma {row['bytes_per_jet_lzma']:6.2f} "
                    f"zstd {row['bytes_per_jet_zstd']:6.2f} B/jet  s68 "
                    + " ".join(f"{row['residuals'][v]['sigma68']:.2e}" for v in VARS),
                    flush=True,
                )
        raw = next(r for r in rows_here if r["family"] == "raw")
        f_njet = next(r for r in rows_here if r["method"] == "layout floor (nJet only)")
        f_zero = next(r for r in rows_here if r["method"] == "layout floor (zeros)")
        for r in rows_here:
            for comp in COMPRESSIONS:
                # per jagged branch: its entry offsets + basket headers (from the zeros file)
                per_branch = (f_zero[f"bytes_per_jet_{comp}"] - f_njet[f"bytes_per_jet_{comp}"]) / 4
                nb = sum(1 for b in r[f"branch_bytes_{comp}"] if b.startswith("Jet_"))
                r[f"layout_floor_per_jet_{comp}"] = (
                    f_njet[f"bytes_per_jet_{comp}"] + nb * per_branch
                )
                r[f"payload_bytes_per_jet_{comp}"] = (
                    r[f"bytes_per_jet_{comp}"] - r[f"layout_floor_per_jet_{comp}"]
                )
        for r in rows_here:
            for comp in COMPRESSIONS:
                rd = raw[f"us_per_jet_read_{comp}"]
                r[f"compress_frac_of_raw_read_{comp}"] = r["us_per_jet_compress"] / rd
                r[f"decompress_frac_of_raw_read_{comp}"] = r["us_per_jet_decompress"] / rd
            ro = result["reads"][sname]["us_per_jet_read_original"]
            r["compress_frac_of_original_read"] = r["us_per_jet_compress"] / ro
            r["decompress_frac_of_original_read"] = r["us_per_jet_decompress"] / ro
        result["rows"] += rows_here

    # the fixed overhead of hepae compress (model + info strings), measured once
    for sname in list(samples)[:1]:
        counts, x = data[sname]
        src = os.path.join(tmp, "jets_only.root")
        write_file(src, counts, m_raw().encode(x), "lzma", args.block)
        out = os.path.join(tmp, "hepae.root")
        hepae_compress(
            src,
            out,
            aes["default"].path,
            compression="lzma",
            level=9,
            overwrite=True,
            allow_larger=True,  # the size is what is measured
        )
        mine = os.path.join(tmp, "mine.root")
        write_file(mine, counts, m_ae(aes["default"], None).encode(x), "lzma", args.block)
        with uproot.open(out) as f:
            z_hepae = np.concatenate(f["Events"]["Jet_z0"].array(library="np"))
        z_mine = m_ae(aes["default"], None).encode(x)["jet"]["z0"]
        result["hepae_compress_check"] = {
            "sample": sname,
            "hepae_compress_bytes": os.path.getsize(out),
            "own_writer_bytes": os.path.getsize(mine),
            "difference_bytes": os.path.getsize(out) - os.path.getsize(mine),
            "model_file_bytes": os.path.getsize(aes["default"].path),
            "latents_identical": bool(np.array_equal(z_hepae, z_mine)),
        }
        print("hepae compress check:", result["hepae_compress_check"], flush=True)
        for p in (src, out, mine):
            os.unlink(p)
    os.rmdir(tmp)

    # anomaly separation with the default model's score
    scorer = aes["default"]
    versions = [
        "original",
        "truncation 10 bits",
        "truncation 7 bits",
        "float16",
        "pack 12+12 bit pt/mass + f32 eta/phi",
        "AE default (K=3) float32 latents",
        "AE default (K=3) 12-bit latents",
    ]
    versions += [f"AE {k} (K={a.k}) float32 latents" for k, a in aes.items() if k != "default"]
    bkg_name = "qcd" if "qcd" in samples else next(iter(samples))
    scores: dict = {}
    for name, (counts, x) in data.items():
        for ver in versions:
            if ver == "original":
                xv = x
            elif (name, ver) in recs:
                xv = recs[(name, ver)]
            else:  # signals: compress them here
                meth = next((m for m in _version_methods(aes) if m.name == ver), None)
                if meth is None:
                    continue
                xv = meth.decode(meth.encode(x))
            s = scorer.score(xv).astype(np.float64)
            scores[(name, ver)] = (s, event_max(s, counts))
    for sig in [n for n in data if n != bkg_name]:
        for ver in versions:
            if (sig, ver) not in scores or (bkg_name, ver) not in scores:
                continue
            (bj, be), (sj, se) = scores[(bkg_name, ver)], scores[(sig, ver)]
            result["auc"].append(
                {
                    "background": bkg_name,
                    "signal": sig,
                    "version": ver,
                    "auc_jet": roc_from_scores(bj, sj).auc,
                    "auc_event_max": roc_from_scores(be, se).auc,
                    "auc_jet_hist": auc_hist(bj, sj),
                    "auc_event_max_hist": auc_hist(be, se),
                    "median_score_bkg": float(np.median(bj)),
                    "median_score_sig": float(np.median(sj)),
                }
            )
            a = result["auc"][-1]
            print(
                f"AUC {bkg_name} vs {sig} [{ver}]: jet {a['auc_jet']:.4f} "
                f"event-max {a['auc_event_max']:.4f}",
                flush=True,
            )

    result["provenance"] = provenance.provenance(begin)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    if args.figure and "qcd" in samples:
        figure(result["rows"], "qcd", args.figure)
    if args.tables:
        Path(args.tables).write_text(tables(result))
    print("wrote", args.out, args.figure, args.tables)


def tables(result: dict) -> str:
    """Markdown tables of a result JSON (what compression.md quotes)."""
    out = []
    for sname in result["config"]["samples"]:
        rows = [r for r in result["rows"] if r["sample"] == sname]
        rd = result["reads"][sname]
        raw = next(r for r in rows if r["family"] == "raw")
        out.append(f"#### {sname}: {rd['jets']:,} jets in {rd['events']:,} events\n")
        out.append(
            "| method | B/jet LZMA 9 (above layout floor) | B/jet ZSTD 5 (above floor) | pt rel. σ68 / RMS / q99 "
            "| eta abs. σ68 / RMS / q99 | phi abs. σ68 / RMS / q99 "
            "| mass rel. σ68 / RMS / q99 |"
        )
        out.append("|---|---:|---:|---|---|---|---|")
        for r in rows:
            cells = [r["method"]] + [
                f"{r[f'bytes_per_jet_{c}']:.2f} ({r[f'payload_bytes_per_jet_{c}']:.2f})"
                for c in COMPRESSIONS
            ]
            for v in VARS:
                q = r["residuals"][v]
                cells.append(
                    "–"
                    if r["family"] == "floor"
                    else f"{sci(q['sigma68'])} / {sci(q['rms'])} / {sci(q['q99_abs'])}"
                )
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        out.append(
            f"Physics and CPU ({sname}); reading the original file: "
            f"{rd['us_per_jet_read_original']:.2f} µs/jet, the float32 LZMA file "
            f"{raw['us_per_jet_read_lzma']:.2f}, the float32 ZSTD file "
            f"{raw['us_per_jet_read_zstd']:.2f} µs/jet.\n"
        )
        out.append(
            "| method | unphysical | pT>20 lost (of which pT<20) | pT>30 lost / gained "
            "| compress µs/jet | decompress µs/jet | compress / decompress as fraction of "
            "reading float32 (LZMA; ZSTD) | read this file µs/jet (LZMA; ZSTD) |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---|---|")
        for r in rows:
            if r["family"] == "floor":
                continue
            t = r["pt_threshold"]
            out.append(
                f"| {r['method']} | {r['unphysical']} | {t['lost_20']} ({t['below_20']}) | "
                f"{t['lost_30']} / {t['gained_30']} | {r['us_per_jet_compress']:.3f} | "
                f"{r['us_per_jet_decompress']:.3f} | "
                f"{r['compress_frac_of_raw_read_lzma']:.2f} / "
                f"{r['decompress_frac_of_raw_read_lzma']:.2f}; "
                f"{r['compress_frac_of_raw_read_zstd']:.2f} / "
                f"{r['decompress_frac_of_raw_read_zstd']:.2f} | "
                f"{r['us_per_jet_read_lzma']:.2f}; {r['us_per_jet_read_zstd']:.2f} |"
            )
        out.append("")
    out.append(
        "#### Anomaly separation (default model score; exact AUC, in brackets the "
        "processor-binned AUC)\n"
    )
    out.append("| signal vs QCD | jets compressed with | jet-score AUC | event-max AUC |")
    out.append("|---|---|---:|---:|")
    for a in result["auc"]:
        out.append(
            f"| {a['signal']} | {a['version']} | {a['auc_jet']:.4f} "
            f"({a['auc_jet_hist']:.4f}) | {a['auc_event_max']:.4f} "
            f"({a['auc_event_max_hist']:.4f}) |"
        )
    return "\n".join(out) + "\n"


def _version_methods(aes: dict) -> list[Method]:
    out = [m_trunc(10), m_trunc(7), m_float16(), m_pack12()]
    for ae in aes.values():
        out += [m_ae(ae, None), m_ae(ae, 12)]
    return out


if __name__ == "__main__":
    main()
