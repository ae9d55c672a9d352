"""Many jet variables (N = 13 -> k): residuals, one-hot counts, and rate-distortion.

Usage (after training the models, see ``benchmarks/results/many_variables.md``)::

    OMP_NUM_THREADS=1 python benchmarks/many_variables.py --test samples/qcd_test.root \
        --model k6=build/many_vars/k6.pt --model k6_onehot=build/many_vars/k6_onehot.pt \
        --model k10=build/many_vars/k10.pt --model k10_onehot=build/many_vars/k10_onehot.pt

For every autoencoder model and every ``--latent-bits`` value the held-out file is
written with ``hepae_coffea.compress.files.compress`` (real ROOT files, ZSTD 5 and LZMA 9), the
ZSTD file is restored with ``hepae_coffea.compress.files.decompress`` and the restored jets are
compared with the original ones. The baseline writes the same 13 variables directly: the
float variables rounded with ``truncate_mantissa`` to ``--trunc-bits`` mantissa bits, the
integer counts in their original integer type, with the same tree layout (``run``,
``luminosityBlock``, ``event``, ``nJet``, ``Jet_*``), one ``extend`` for the whole file
(as ``hepae compress`` does for a file this small), read back and compared.

Bytes per jet of the *jet part* = compressed bytes of the ``Jet_*`` branches (baskets with
their TKey headers and the per-branch entry offsets, from ``TBranch.fZipBytes``) / jets.
``nJet`` and the event branches are identical in every file and are left out; so is the
model ``hepae compress`` embeds (reported separately as ``model_key_bytes``).

Residuals: relative ((rec - orig) / orig) for pt, mass, width and ptD (jets with orig == 0
are left out and counted), absolute for eta, phi (wrapped) and the five energy fractions;
for the integer counts the fraction reconstructed exactly, within +-1 and the mean |diff|.
``sigma68`` is half the 16-84 % width.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time
from pathlib import Path

import awkward as ak
import numpy as np
import provenance
import torch
import uproot
from common import named, sci

from hepae_coffea.compress.files import INFO_KEY, MODEL_KEY, compress, decompress, truncate_mantissa
from hepae_coffea.generate.pythia import BRANCHES
from hepae_coffea.model.export import read_metadata
from hepae_coffea.processing.metrics import sigma68, unphysical_mask

#: every jet column the generator writes
VARS = tuple(b.removeprefix("Jet_") for b in BRANCHES if b.startswith("Jet_"))
RELATIVE = ("pt", "mass", "width", "ptD")
FRACTIONS = ("chHEF", "neHEF", "chEmEF", "neEmEF", "muEF")
INTEGERS = ("nConstituents", "nCharged")
CONTINUOUS = tuple(v for v in VARS if v not in INTEGERS)
EVENT_BRANCHES = ("run", "luminosityBlock", "event")
COMPRESSIONS = {"zstd": 5, "lzma": 9}
FIG_VARS = ("pt", "eta", "mass", "width", "ptD", "neHEF")
MD_TITLE = "## Many variables: N -> k and one-hot encoding"


# --------------------------------------------------------------------------------------
# reading and residuals
# --------------------------------------------------------------------------------------
def read_jets(path: str) -> tuple[dict, np.ndarray, np.ndarray, dict]:
    """(event branches, jet counts, X float64 (n, 13), original numpy dtypes) of a file."""
    with uproot.open(path) as f:
        t = f["Events"]
        names = [f"Jet_{v}" for v in VARS]
        arr = t.arrays(["nJet", *EVENT_BRANCHES, *names], library="ak")
        dtypes = {
            v: np.dtype(t[f"Jet_{v}"].interpretation.content.to_dtype).newbyteorder("=")
            for v in VARS
        }
    counts = ak.to_numpy(arr["nJet"]).astype(np.int64)
    x = np.stack([ak.to_numpy(ak.flatten(arr[f"Jet_{v}"])).astype(np.float64) for v in VARS], 1)
    events = {b: ak.to_numpy(arr[b]) for b in EVENT_BRANCHES}
    return events, counts, x, dtypes


def read_restored(path: str) -> np.ndarray:
    with uproot.open(path) as f:
        arr = f["Events"].arrays([f"Jet_{v}" for v in VARS], library="np")
    return np.stack([np.concatenate(arr[f"Jet_{v}"]).astype(np.float64) for v in VARS], 1)


def residual_table(orig: np.ndarray, rec: np.ndarray) -> dict:
    """Per-variable residual summary, unphysical counts and the energy-fraction sum."""
    out: dict = {}
    for i, v in enumerate(VARS):
        o, r = orig[:, i], rec[:, i]
        d = r - o
        if v in INTEGERS:
            ad = np.abs(d)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.where(o != 0, d / o, np.nan)
            out[v] = {
                "kind": "integer",
                "exact": float(np.mean(ad == 0)),
                "within1": float(np.mean(ad <= 1)),
                "mean_abs_diff": float(ad.mean()),
                "mean_diff": float(d.mean()),
                "sigma68": sigma68(rel),  # relative, for the rate-distortion figure
                "sigma68_abs": sigma68(d),
            }
            continue
        if v == "phi":
            d = (d + math.pi) % (2 * math.pi) - math.pi
        if v in RELATIVE:
            keep = o != 0
            res = d[keep] / o[keep]
            kind = "relative"
        else:
            keep = np.ones(len(o), bool)
            res = d
            kind = "absolute"
        fin = res[np.isfinite(res)]
        out[v] = {
            "kind": kind,
            "mean": float(fin.mean()),
            "rms": float(np.sqrt(np.mean(fin**2))),
            "sigma68": sigma68(fin),
            "q99_abs": float(np.percentile(np.abs(fin), 99)),
            "excluded_orig_zero": int((~keep).sum()),
            "n_nonfinite": int(res.size - fin.size),
        }
    col = {v: rec[:, i] for i, v in enumerate(VARS)}
    tol = 1e-6
    detail = {
        "nonfinite": int((~np.isfinite(rec).all(axis=1)).sum()),
        "neg_pt_or_mass": int(((col["pt"] < 0) | (col["mass"] < 0)).sum()),
        "phi_out": int((np.abs(col["phi"]) > math.pi + tol).sum()),
        "fraction_out_of_0_1": int(
            np.any([(col[f] < -tol) | (col[f] > 1 + tol) for f in FRACTIONS], axis=0).sum()
        ),
        "fraction_above_1": {f: int((col[f] > 1 + tol).sum()) for f in FRACTIONS},
        "fraction_below_0": {f: int((col[f] < -tol).sum()) for f in FRACTIONS},
        "fraction_max_above_1": float(max((col[f] - 1).max() for f in FRACTIONS)),
        "width_negative": int((col["width"] < 0).sum()),
        "ptD_out_of_0_1": int(((col["ptD"] <= 0) | (col["ptD"] > 1 + tol)).sum()),
        "count_negative": int(((col["nConstituents"] < 0) | (col["nCharged"] < 0)).sum()),
        "nCharged_gt_nConstituents": int((col["nCharged"] > col["nConstituents"]).sum()),
        "nConstituents_zero": int((col["nConstituents"] < 1).sum()),
    }
    bad = ~np.isfinite(rec).all(axis=1)
    bad |= (col["pt"] < 0) | (col["mass"] < 0) | (np.abs(col["phi"]) > math.pi + tol)
    for f in FRACTIONS:
        bad |= (col[f] < -tol) | (col[f] > 1 + tol)
    bad |= (col["width"] < 0) | (col["ptD"] <= 0) | (col["ptD"] > 1 + tol)
    bad |= (col["nConstituents"] < 1) | (col["nCharged"] < 0)
    bad |= col["nCharged"] > col["nConstituents"]
    fsum = np.sum([col[f] for f in FRACTIONS], axis=0)
    out["_jets"] = {
        "n": len(rec),
        "unphysical_library": int(unphysical_mask(rec, VARS).sum()),
        "unphysical_extended": int(bad.sum()),
        "unphysical_detail": detail,
        "fraction_sum": {
            "mean": float(fsum.mean()),
            "rms_minus_1": float(np.sqrt(np.mean((fsum - 1) ** 2))),
            "sigma68": sigma68(fsum - 1),
            "frac_off_gt_0.01": float(np.mean(np.abs(fsum - 1) > 0.01)),
            "frac_off_gt_0.05": float(np.mean(np.abs(fsum - 1) > 0.05)),
            "max_abs_off": float(np.abs(fsum - 1).max()),
        },
    }
    return out


# --------------------------------------------------------------------------------------
# file sizes
# --------------------------------------------------------------------------------------
def file_sizes(path: str, n_jets: int, jet_prefix: str = "Jet_") -> dict:
    with uproot.open(path) as f:
        t = f["Events"]
        br = {b.name: int(b.compressed_bytes) for b in t.branches}
        model_key = sum(int(f.key(k).fNbytes) for k in (MODEL_KEY, INFO_KEY) if k in f)
    jet = sum(v for k, v in br.items() if k.startswith(jet_prefix))
    size = os.path.getsize(path)
    return {
        "file_bytes": size,
        "jet_branch_bytes": jet,
        "bytes_per_jet": jet / n_jets,
        "nJet_bytes": br.get("nJet", 0),
        "event_branch_bytes": sum(br.get(b, 0) for b in EVENT_BRANCHES),
        "model_key_bytes": model_key,
        "file_bytes_per_jet_without_model": (size - model_key) / n_jets,
        "branch_bytes": br,
    }


def write_truncated(path, events, counts, x, dtypes, bits, comp, level) -> np.ndarray:
    """The baseline file; returns the stored values as float64 (n, 13)."""
    cols = {}
    stored = np.empty_like(x)
    for i, v in enumerate(VARS):
        if np.issubdtype(dtypes[v], np.integer):
            c = x[:, i].astype(dtypes[v])
        else:
            c = truncate_mantissa(x[:, i].astype(np.float32), bits)
        stored[:, i] = c
        cols[v] = ak.unflatten(np.ascontiguousarray(c), counts)
    data = {**events, "Jet": ak.zip(cols)}
    _write_events(path, data, comp, level)
    back = read_restored(path)
    if not np.array_equal(back, stored):
        raise RuntimeError(f"{path}: values read back differ from those written")
    return stored


def _write_events(path, data: dict, comp: str, level: int) -> None:
    """Write ``data`` as tree ``Events`` with ZSTD or LZMA at ``level``."""
    codec = {"zstd": uproot.ZSTD, "lzma": uproot.LZMA}[comp](level)
    with uproot.recreate(path, compression=codec) as f:
        f.mktree(
            "Events", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
        )
        f["Events"].extend(data)


def layout_floor(path, events, counts, dtypes: dict, comp, level) -> dict:
    """A file of the same layout with every jet value 0 (entry offsets, headers, nJet)."""
    n = int(counts.sum())
    cols = {k: ak.unflatten(np.zeros(n, dt), counts) for k, dt in dtypes.items()}
    data = {**events, "Jet": ak.zip(cols)}
    _write_events(path, data, comp, level)
    out = file_sizes(path, n)
    os.unlink(path)
    return out


# --------------------------------------------------------------------------------------
def model_info(path: str) -> dict:
    meta = read_metadata(path)
    cfg = meta["training"]["config"]
    norm = {t["variable"]: t for t in meta["normalisation"]}
    cmd = (
        f"OMP_NUM_THREADS=1 hepae train {' '.join(cfg['inputs'])} -o {cfg['output']} "
        f"--variables {','.join(cfg['variables'])} --latent-dim {cfg['latent_dim']} "
        f"--hidden {','.join(str(h) for h in cfg['hidden'])} --epochs {cfg['epochs']} "
        f"--schedule {cfg['schedule']} --seed {cfg['seed']} --no-preview -q"
        + "".join(f" --transform {k}={v}" for k, v in cfg["transforms"].items())
    )
    return {
        "path": path,
        "latent_dim": int(meta["latent_dim"]),
        "bottleneck": meta["bottleneck"],
        "treatment": "one-hot counts" if cfg["transforms"] else "integers (rounded)",
        "transforms": cfg["transforms"],
        "hidden": cfg["hidden"],
        "parameters": meta["architecture"]["parameters"],
        "epochs_run": meta["metrics"]["epochs_run"],
        "stop_reason": meta["metrics"]["stop_reason"],
        "train_seconds": meta["metrics"]["seconds"],
        "val_loss": meta["metrics"]["val_loss"],
        "model_file_bytes": os.path.getsize(path),
        "onehot_ranges": {
            v: [t["center"], t["center"] + t["scale"] - 1]
            for v, t in norm.items()
            if t["kind"] == "onehot"
        },
        "normalisation": {v: t["kind"] for v, t in norm.items()},
        "command": cmd,
        "inputs": list(cfg["inputs"]),
    }


def run(args) -> dict:
    torch.set_num_threads(1)
    events, counts, x, dtypes = read_jets(args.test)
    n = len(x)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {
        "config": {
            "test": args.test,
            "jets": n,
            "events": len(counts),
            "variables": list(VARS),
            "trunc_bits": args.trunc_bits,
            "latent_bits": args.latent_bits,
            "compressions": COMPRESSIONS,
            "torch_threads": torch.get_num_threads(),
        },
        "original": {},
        "models": {},
        "rows": [],
    }
    orig_sizes = file_sizes(args.test, n)
    with uproot.open(args.test) as f:
        comp = f.file.compression
    result["original"] = {
        "compression": f"{type(comp).__name__}({comp.level})" if comp else "none",
        "bytes_per_jet": orig_sizes["bytes_per_jet"],
        "file_bytes": orig_sizes["file_bytes"],
        "fraction_sum": residual_table(x, x)["_jets"]["fraction_sum"],
        "nCharged_gt_nConstituents": int((x[:, 5] > x[:, 4]).sum()),
    }
    print(
        f"{args.test}: {len(counts)} events, {n} jets; original jet part "
        f"{orig_sizes['bytes_per_jet']:.2f} B/jet ({result['original']['compression']})"
    )
    # baseline: direct storage with mantissa truncation
    for bits in args.trunc_bits:
        row = {"method": "truncation", "name": f"truncation {bits} bits", "bits": bits}
        for comp_name, level in COMPRESSIONS.items():
            p = str(work / f"trunc{bits}_{comp_name}.root")
            stored = write_truncated(p, events, counts, x, dtypes, bits, comp_name, level)
            row[comp_name] = file_sizes(p, n)
            os.unlink(p)
        row["residuals"] = residual_table(x, stored)
        result["rows"].append(row)
        report(row)
    # layout floors: the same layouts with all jet values zero
    layouts = {"truncation (11 float32 + 2 int32 branches)": dtypes}
    for _name, path in args.model:
        k = int(read_metadata(path)["latent_dim"])
        layouts[f"AE k={k} ({k} float32 branches)"] = {f"z{i}": np.float32 for i in range(k)}
    result["layout_floors"] = {}
    for lname, dts in layouts.items():
        result["layout_floors"][lname] = {
            c: layout_floor(str(work / "floor.root"), events, counts, dts, c, lv)["bytes_per_jet"]
            for c, lv in COMPRESSIONS.items()
        }
        print(
            f"layout floor {lname}: "
            + ", ".join(f"{c} {b:.2f}" for c, b in result["layout_floors"][lname].items())
            + " B/jet"
        )
    # autoencoders through hepae compress / decompress
    for name, path in args.model:
        info = model_info(path)
        result["models"][name] = info
        print(
            f"model {name}: k={info['latent_dim']}, {info['treatment']}, "
            f"{info['parameters']} parameters, {info['epochs_run']} epochs"
        )
        for bits in args.latent_bits:
            lb = None if bits == "none" else int(bits)
            tag = "f32" if lb is None else f"{lb}b"
            row = {
                "method": "ae",
                "model": name,
                "name": f"AE {name} {tag} latents",
                "bits": lb,
                "latent_dim": info["latent_dim"],
            }
            z_files = {}
            for comp_name, level in COMPRESSIONS.items():
                p = str(work / f"{name}_{tag}_{comp_name}.root")
                t0 = time.perf_counter()
                summ = compress(
                    args.test,
                    p,
                    path,
                    latent_bits=lb,
                    compression=comp_name,
                    level=level,
                    overwrite=True,
                    allow_larger=True,  # the size is what is measured
                )
                row[comp_name] = file_sizes(p, n)
                row[comp_name]["compress_seconds"] = round(time.perf_counter() - t0, 2)
                assert summ.jets == n
                z_files[comp_name] = p
            restored = str(work / f"{name}_{tag}_restored.root")
            decompress(z_files["zstd"], restored, overwrite=True)
            rec = read_restored(restored)
            with uproot.open(z_files["zstd"]) as fa, uproot.open(z_files["lzma"]) as fb:
                zk = [
                    k
                    for k in fa["Events"].keys(filter_typename=None)
                    if re.fullmatch(r"Jet_z\d+", k)
                ]
                same = all(
                    np.array_equal(
                        np.concatenate(fa["Events"][k].array(library="np")),
                        np.concatenate(fb["Events"][k].array(library="np")),
                    )
                    for k in zk
                )
            if not same:
                raise RuntimeError(f"{name} {tag}: ZSTD and LZMA files hold different latents")
            row["residuals"] = residual_table(x, rec)
            if info["onehot_ranges"]:
                row["outside_onehot_range"] = {
                    v: int(((x[:, VARS.index(v)] < lo) | (x[:, VARS.index(v)] > hi)).sum())
                    for v, (lo, hi) in info["onehot_ranges"].items()
                }
            for p in (*z_files.values(), restored):
                os.unlink(p)
            result["rows"].append(row)
            report(row)
    return result


def report(row: dict) -> None:
    r = row["residuals"]
    print(
        f"{row['name']:32s} LZMA {row['lzma']['bytes_per_jet']:6.2f} ZSTD "
        f"{row['zstd']['bytes_per_jet']:6.2f} B/jet | s68 "
        + " ".join(f"{v}={r[v]['sigma68']:.2e}" for v in ("pt", "eta", "mass", "width", "neHEF"))
        + f" | nConst exact {r['nConstituents']['exact']:.3f}"
        f" | unphys {r['_jets']['unphysical_extended']}",
        flush=True,
    )


# --------------------------------------------------------------------------------------
# tables and figure
# --------------------------------------------------------------------------------------
def _unphys(j: dict) -> str:
    detail = ", ".join(
        f"{k} {v}" for k, v in j["unphysical_detail"].items() if isinstance(v, int) and v
    )
    return f"{j['unphysical_extended']} ({detail})" if detail else "0"


def _floor(res: dict, row: dict, comp: str) -> float:
    fl = res.get("layout_floors", {})
    key = next(
        (
            k
            for k in fl
            if (row["method"] == "truncation" and k.startswith("truncation"))
            or (row["method"] == "ae" and k.startswith(f"AE k={row['latent_dim']} "))
        ),
        None,
    )
    return fl[key][comp] if key else float("nan")


def _ae_rows(res: dict, bits=None) -> list[dict]:
    return [r for r in res["rows"] if r["method"] == "ae" and r["bits"] == bits]


def tables(res: dict) -> str:
    out = []
    cfg = res["config"]
    out.append(
        f"Held-out sample `{cfg['test']}`: {cfg['jets']:,} jets in {cfg['events']:,} events.\n"
    )
    out.append("#### Models\n")
    out.append(
        "| model | k | counts | normalisation of the counts | parameters | epochs | "
        "train s | val loss | model file |"
    )
    out.append("|---|---:|---|---|---:|---:|---:|---:|---:|")
    for name, m in res["models"].items():
        oh = ", ".join(f"{v} {lo:g}..{hi:g}" for v, (lo, hi) in m["onehot_ranges"].items())
        if oh:
            norm = f"one-hot ({oh})"
        else:
            norm = f"{m['normalisation']['nConstituents']}, rounded on output"
        out.append(
            f"| {name} | {m['latent_dim']} | {m['treatment']} | {norm} | {m['parameters']:,} | "
            f"{m['epochs_run']} | {m['train_seconds']:.0f} | {m['val_loss']:.3e} | "
            f"{m['model_file_bytes'] / 1000:.0f} kB |"
        )
    out.append(
        "\nThe validation losses of the two treatments are not comparable (the one-hot "
        "models' loss holds two cross-entropy terms).\n"
    )
    f32 = _ae_rows(res)
    names = [r["model"] for r in f32]
    out.append("#### Residuals, float32 latents (restored by `hepae decompress`)\n")
    out.append(
        "Relative for pt, mass, width, ptD; absolute for eta, phi and the energy fractions. "
        "Each cell: mean / RMS / **σ68**.\n"
    )
    out.append("| variable | kind | " + " | ".join(names) + " |")
    out.append("|---|---|" + "---|" * len(names))
    for v in CONTINUOUS:
        cells = []
        for r in f32:
            q = r["residuals"][v]
            cells.append(f"{sci(q['mean'])} / {sci(q['rms'])} / **{sci(q['sigma68'])}**")
        out.append(f"| {v} | {f32[0]['residuals'][v]['kind']} | " + " | ".join(cells) + " |")
    ex = {v: f32[0]["residuals"][v]["excluded_orig_zero"] for v in RELATIVE}
    out.append(
        "\nJets left out of the relative residuals because the original value is 0: "
        + ", ".join(f"{v} {c}" for v, c in ex.items())
        + ".\n"
    )
    out.append("Integer counts: fraction exact / within ±1 / mean |Δ| (mean Δ).\n")
    out.append("| count | " + " | ".join(names) + " |")
    out.append("|---|" + "---|" * len(names))
    for v in INTEGERS:
        cells = []
        for r in f32:
            q = r["residuals"][v]
            cells.append(
                f"{q['exact']:.4f} / {q['within1']:.4f} / {q['mean_abs_diff']:.4f} "
                f"({q['mean_diff']:+.4f})"
            )
        out.append(f"| {v} | " + " | ".join(cells) + " |")
    o = res["original"]["fraction_sum"]
    out.append(
        "\nPhysical checks. *Unphysical (library)*: `metrics.unphysical_mask` (non-finite, pt "
        "or mass < 0, |phi| > π). *Extended*: also an energy fraction outside [0, 1], width "
        "< 0, ptD outside (0, 1], nConstituents < 1, nCharged < 0 or nCharged > "
        "nConstituents (the originals have "
        f"{res['original']['nCharged_gt_nConstituents']} such jets). Sum of the five energy "
        f"fractions (original: mean {o['mean']:.7f}, max |sum - 1| {sci(o['max_abs_off'])}).\n"
    )
    out.append(
        "| model | unphysical (library) | unphysical (extended) | of which: fraction out of "
        "[0,1] / nCharged > nConst / other | fractions above 1 (largest excess) | fraction "
        "sum: mean / σ68(sum−1) / share with abs(sum−1) > 0.01 / > 0.05 |"
    )
    out.append("|---|---:|---:|---|---|---|")
    for r in f32:
        j = r["residuals"]["_jets"]
        d = j["unphysical_detail"]
        other = sum(
            d[k]
            for k in (
                "nonfinite",
                "neg_pt_or_mass",
                "phi_out",
                "width_negative",
                "ptD_out_of_0_1",
                "count_negative",
                "nConstituents_zero",
            )
        )
        fs = j["fraction_sum"]
        out.append(
            f"| {r['model']} | {j['unphysical_library']} | {j['unphysical_extended']} | "
            f"{d['fraction_out_of_0_1']} / {d['nCharged_gt_nConstituents']} / {other} | "
            + ", ".join(f"{f} {c}" for f, c in d["fraction_above_1"].items() if c)
            + f" ({sci(d['fraction_max_above_1'])}) | "
            f"{fs['mean']:.4f} / {sci(fs['sigma68'])} / {fs['frac_off_gt_0.01']:.3f} / "
            f"{fs['frac_off_gt_0.05']:.3f} |"
        )
    oh_rows = [r for r in f32 if "outside_onehot_range" in r]
    if oh_rows:
        out.append(
            "\nTest jets outside the one-hot range of the training data (encoded as the "
            "nearest end): "
            + "; ".join(
                f"{r['model']}: "
                + ", ".join(f"{v} {c}" for v, c in r["outside_onehot_range"].items())
                for r in oh_rows
            )
            + ".\n"
        )
    out.append("#### Rate-distortion (ROOT files, jet part)\n")
    orig = res["original"]
    out.append(
        "Bytes per jet = compressed bytes of the `Jet_*` branches / jets (`nJet`, the event "
        "branches and, for `hepae compress`, the embedded model are left out; the model "
        "strings add "
        + ", ".join(
            f"{m}: {r['lzma']['model_key_bytes']:,} B (LZMA)"
            for m, r in ((r["model"], r) for r in f32)
        )
        + f" per file). The original file's jet part: {orig['bytes_per_jet']:.2f} B/jet "
        f"({orig['compression']}). σ68 as above; counts: fraction exact.\n"
    )
    if res.get("layout_floors"):
        out.append(
            "Layout floor: the same file layout with every jet value 0 (each jagged branch "
            "stores its own entry offsets; basket headers). Bytes per jet of the jet "
            "branches:\n"
        )
        out.append("| layout | LZMA 9 | ZSTD 5 |")
        out.append("|---|---:|---:|")
        for k, v in res["layout_floors"].items():
            out.append(f"| {k} | {v['lzma']:.2f} | {v['zstd']:.2f} |")
        out.append("")
    head = (
        "| method | B/jet LZMA 9 (above floor) | B/jet ZSTD 5 (above floor) | "
        + " | ".join(f"σ68 {v}" for v in CONTINUOUS)
        + " | exact nConst | exact nCharged | share abs(Σfractions−1) > 0.01 | unphys. (ext.) |"
    )
    out.append(head)
    out.append("|---|---:|---:|" + "---:|" * (len(CONTINUOUS) + 4))
    for r in res["rows"]:
        q = r["residuals"]
        out.append(
            f"| {r['name']} | "
            + " | ".join(
                f"{r[c]['bytes_per_jet']:.2f} ({r[c]['bytes_per_jet'] - _floor(res, r, c):.2f})"
                for c in ("lzma", "zstd")
            )
            + " | "
            + " | ".join(sci(q[v]["sigma68"]) for v in CONTINUOUS)
            + f" | {q['nConstituents']['exact']:.4f} | {q['nCharged']['exact']:.4f} | "
            f"{q['_jets']['fraction_sum']['frac_off_gt_0.01']:.3f} | {_unphys(q['_jets'])} |"
        )
    return "\n".join(out) + "\n"


def figure(res: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import mplhep as mh

    mh.style.use("ATLAS")
    groups = [("truncation", None)] + [("ae", m) for m in res["models"]]
    colors = ["#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    markers = ["o", "*", "s", "^", "v", "D", "P"]
    fig, axes = plt.subplots(2, 3, figsize=(16, 10), sharex=True)
    for ax, v in zip(axes.flat, FIG_VARS, strict=True):
        for gi, (meth, model) in enumerate(groups):
            rows = [
                r
                for r in res["rows"]
                if r["method"] == meth and (model is None or r.get("model") == model)
            ]
            for comp, ls, fill in (("lzma", "-", "full"), ("zstd", ":", "none")):
                pts = sorted(
                    (r[comp]["bytes_per_jet"], r["residuals"][v]["sigma68"], r["bits"])
                    for r in rows
                )
                pts = [p for p in pts if p[1] > 0 and np.isfinite(p[1])]
                if not pts:
                    continue
                xs, ys, _ = zip(*pts, strict=True)
                if meth == "truncation":
                    lab = (
                        "mantissa truncation "
                        + "/".join(
                            str(r["bits"])
                            for r in sorted(rows, key=lambda r: -r["bits"])
                            if r["residuals"][v]["sigma68"] > 0
                        )
                        + " bits, counts int32"
                    )
                else:
                    m = res["models"][model]
                    oh = "one-hot counts" if m["onehot_ranges"] else "rounded counts"
                    lab = (
                        f"AE k={m['latent_dim']}, {oh} (f32/"
                        + "/".join(str(r["bits"]) for r in rows if r["bits"] is not None)
                        + "-bit latents)"
                    )
                ax.plot(
                    xs,
                    ys,
                    marker=markers[gi % len(markers)],
                    color=colors[gi % len(colors)],
                    ls=ls,
                    fillstyle=fill,
                    ms=8 if comp == "lzma" else 6,
                    lw=1.3,
                    label=lab if comp == "lzma" else None,
                )
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_xlim(7, 60)
        ax.set_xticks([8, 10, 15, 20, 30, 40, 60])
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        kind = "relative" if v in RELATIVE else "absolute"
        ax.set_ylabel(rf"{v} $\sigma_{{68}}$ ({kind})", fontsize=14)
        ax.set_ylim(top=ax.get_ylim()[1] * 10)
    for ax in axes[1]:
        ax.set_xlabel("bytes / jet (jet branches)", fontsize=14)
    mh.atlas.label("Internal", data=False, com=13, ax=axes[0, 0], loc=0, rlabel="")
    axes[0, 1].set_title(
        f"held-out QCD, {res['config']['jets']:,} jets, N = 13 variables", fontsize=14
    )
    h, lab = axes[0, 0].get_legend_handles_labels()
    h.append(plt.Line2D([], [], color="k", ls="-", marker="o"))
    lab.append("filled, solid: LZMA 9")
    h.append(plt.Line2D([], [], color="k", ls=":", marker="o", fillstyle="none"))
    lab.append("open, dotted: ZSTD 5")
    fig.legend(h, lab, loc="lower center", ncol=3, fontsize=11, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _description(res: dict) -> str:
    """What this run compared, from the results themselves (variables, models, training
    and the machine state recorded in its provenance)."""
    cfg = res["config"]
    variables = cfg["variables"]
    models = res["models"]
    per_model = "; ".join(
        f"`{name}`: k = {m['latent_dim']}, {m['treatment']}, hidden "
        f"{'-'.join(str(h) for h in m['hidden'])}, {m['parameters']:,} parameters, "
        f"{m['epochs_run']} epochs"
        + (f" (stopped: {m['stop_reason']})" if m["stop_reason"] != "epochs" else "")
        + f", {m['train_seconds']:.0f} s"
        + (f", trained on {', '.join(f'`{i}`' for i in m['inputs'])}" if m.get("inputs") else "")
        for name, m in models.items()
    )
    prov = res.get("provenance")
    where = (
        f"Measured at commit {str(prov['commit'])[:12]}{' (with local changes)' if prov['dirty'] else ''} "
        f"on {prov['date_end'][:10]}, {prov['machine']['cpus']} CPUs, 1-min load "
        f"{prov['loadavg_start'][0]} at the start and {prov['loadavg_end'][0]} at the end."
        if prov
        else "This results file records no provenance (commit, date, load)."
    )
    return (
        f"{len(variables)} jet variables (N = {len(variables)}: {', '.join(variables)}) "
        f"compressed to k latents by {len(models)} model(s): {per_model}. Everything below is "
        f"measured on the held-out `{cfg['test']}` ({cfg['jets']:,} jets). Training times are "
        f"wall-clock seconds as recorded in each model file, not a speed measurement. {where}"
    )


def markdown(res: dict, previous: str) -> str:
    cmds = "\n".join(m["command"] for m in res["models"].values())
    models = " ".join(f"--model {k}={m['path']}" for k, m in res["models"].items())
    cfg = res["config"]
    text = [
        MD_TITLE,
        "",
        _description(res),
        "",
        "```bash",
        cmds,
        f"OMP_NUM_THREADS=1 python benchmarks/many_variables.py --test {cfg['test']} \\",
        f"    {models} \\",
        "    --trunc-bits "
        + " ".join(str(b) for b in cfg["trunc_bits"])
        + " --latent-bits "
        + " ".join(str(b) for b in cfg["latent_bits"]),
        "```",
        "",
        tables(res),
        "![rate-distortion, 13 variables](../rate_distortion_many.png)",
        "",
        (
            "*`benchmarks/rate_distortion_many.png`: bytes per jet of the jet branches against σ68 "
            "for six of the variables. Truncation at 23 bits (plain float32) has σ68 = 0 and is "
            "not drawn on the log scale.*"
        ),
        "",
    ]
    conc = re.search(r"^### Conclusions\n.*", previous, re.DOTALL | re.MULTILINE)
    text.append(conc.group(0).rstrip() + "\n" if conc else "### Conclusions\n\n(to be written)\n")
    return "\n".join(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--test", default="samples/qcd_test.root")
    ap.add_argument("--model", action="append", default=[], help="name=path, repeatable")
    ap.add_argument("--trunc-bits", type=int, nargs="+", default=[23, 16, 12, 10, 8, 6, 4])
    ap.add_argument("--latent-bits", nargs="+", default=["none", "16", "12", "10"])
    ap.add_argument("--workdir", default="build/many_vars/rd")
    ap.add_argument("--out", default="benchmarks/results/many_variables.json")
    ap.add_argument("--md", default="benchmarks/results/many_variables.md")
    ap.add_argument("--figure", default="benchmarks/rate_distortion_many.png")
    ap.add_argument("--tables-from", default="", help="only redo md/figure from this JSON")
    args = ap.parse_args()
    if args.tables_from:
        res = json.loads(Path(args.tables_from).read_text())
    else:
        if not args.model:
            ap.error("give at least one --model name=path")
        args.model = named(args.model)
        begin = provenance.start()
        res = run(args)
        res["provenance"] = provenance.provenance(begin)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1))
    print(tables(res))
    if args.figure:
        figure(res, args.figure)
    if args.md:
        md = Path(args.md)
        md.write_text(markdown(res, md.read_text() if md.exists() else ""))
    print("wrote", "" if args.tables_from else args.out, args.md, args.figure)


if __name__ == "__main__":
    main()
