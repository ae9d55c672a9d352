"""Event-level vs jet-level autoencoder compression on the same events.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/event_level.py \
        --sample qcd=samples/qcd_test.root --sample ttbar=samples/ttbar_test.root \
        --signal zprime=samples/zprime_test.root \
        --jet-model default=hepae_coffea/data/default_model.pt \
        --event-model J4_k12=build/event_level/event_j4_k12.pt \
        --event-model J6_k18=build/event_level/event_j6_k18.pt \
        --workdir build/event_level/files --out benchmarks/results/event_level.json

For every sample (``--sample``) and model, a real compressed ROOT file is written with
``hepae_coffea.compress.files.compress`` (what ``hepae compress`` runs), once per output
compression (``--compression zstd:5 --compression lzma:9``), and its size is read from disk.
Every other branch of the input is carried along unchanged, so a lossless reference (the
input tree rewritten with the same ROOT compression, jets untouched, one basket per branch
like ``compress``) is written too. Sizes per event:

* ``original``: the input file as given (its own compression);
* ``lossless``: the lossless reference file;
* ``file``: the compressed file; ``file - model``: the same minus the on-disk size (TKey
  ``fNbytes``) of the two objects ``compress`` embeds (the model and its JSON info);
* ``jet part``: ``TBranch.compressed_bytes`` of the jet kinematics: the four ``Jet_*``
  branches in the lossless file, the ``Jet_z*`` latents for a jet-level model, and the
  ``JetLatent_z*`` latents + ``nJetExtra`` + ``JetExtra_*`` (jets beyond J, unchanged) for an
  event-level model. ``nJet`` is kept unchanged in every file and is not counted.

Residuals come from ``hepae_coffea.compress.files.decompress`` of the first compression's file
(the latents are the same float32 values whatever the ROOT compression; checked), compared
jet by jet with the input. Both models are evaluated on the jets an event model covers (the
leading J of each event) and the jet-level model on all jets too.

Anomaly scores are computed on the input jets: the event model's per-event ``score(x,
mask)`` (mean error of the leading J jets) and the max of its ``jet_scores``, against the
jet-level model's ``score(x)`` reduced per event by max and mean, over all jets and over the
leading J only. AUCs are exact (Mann-Whitney with tied ranks averaged) for every other
sample vs the first (background) sample; events without jets are left out of the AUCs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import provenance
import torch
import uproot
from common import branch_bytes, named

from hepae_coffea.compress.files import INFO_KEY, MODEL_KEY, compress, decompress
from hepae_coffea.model.handle import ModelHandle, open_model
from hepae_coffea.processing.anomaly import roc_from_scores
from hepae_coffea.processing.metrics import residual_summary, unphysical_mask

VARS = ("pt", "eta", "phi", "mass")
JET_BRANCHES = tuple(f"Jet_{v}" for v in VARS)
CODECS = {"zstd": uproot.ZSTD, "lzma": uproot.LZMA, "zlib": uproot.ZLIB, "lz4": uproot.LZ4}


def open_checked(path: str) -> ModelHandle:
    """The model file at ``path``, checked to take (pt, eta, phi, mass) in this order."""
    handle = open_model(path)
    handle.check_variables(VARS)
    return handle


def _codec(spec: str) -> tuple[str, int]:
    name, _, level = spec.partition(":")
    return name, int(level or 5)


# --------------------------------------------------------------------------------------
# reading


def read_sample(path: str) -> dict:
    """nJet and the four jet kinematics (float32 as stored) of every event."""
    with uproot.open(path) as f:
        t = f["Events"]
        arr = t.arrays(["nJet", *JET_BRANCHES], library="ak")
    counts = ak.to_numpy(ak.num(arr[JET_BRANCHES[0]], axis=1)).astype(np.int64)
    x = np.stack([ak.to_numpy(ak.flatten(arr[b])) for b in JET_BRANCHES], axis=1)
    return {"counts": counts, "x": x.astype(np.float32), "slot": _slots(counts)}


def _slots(counts: np.ndarray) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.arange(int(counts.sum())) - np.repeat(starts, counts)


def pad(x: np.ndarray, counts: np.ndarray, slot: np.ndarray, j: int):
    n = len(counts)
    ev = np.repeat(np.arange(n), counts)
    keep = slot < j
    xe = np.zeros((n, j, x.shape[1]), np.float32)
    xe[ev[keep], slot[keep]] = x[keep]
    mask = np.arange(j)[None, :] < np.minimum(counts, j)[:, None]
    return xe, mask


# --------------------------------------------------------------------------------------
# sizes


def embedded_bytes(path: str) -> int:
    """On-disk bytes of the model and info objects that ``compress`` embeds."""
    with uproot.open(path) as f:
        return sum(int(f.key(k).fNbytes) for k in (MODEL_KEY, INFO_KEY) if k in f)


def write_lossless(src: str, dst: Path, codec: str, level: int) -> None:
    """The input tree rewritten with another ROOT compression, jets unchanged."""
    with uproot.open(src) as f:
        t = f["Events"]
        keys = t.keys()
        arr = t.arrays(keys, library="ak")
    jagged = [k for k in keys if k.startswith("Jet_")]
    data = {k: arr[k] for k in keys if k != "nJet" and k not in jagged}
    data["Jet"] = ak.zip({k[4:]: arr[k] for k in jagged})
    dst.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(dst, compression=CODECS[codec](level)) as out:
        out.mktree("Events", {k: v.type for k, v in data.items()})
        out["Events"].extend(data)


def jet_part(sizes: dict[str, int], kind: str) -> int:
    if kind == "lossless":
        return sum(sizes[b] for b in JET_BRANCHES)
    if kind == "jet":
        return sum(v for k, v in sizes.items() if k.startswith("Jet_z"))
    return sum(
        v
        for k, v in sizes.items()
        if k.startswith(("JetLatent_z", "JetExtra_")) or k == "nJetExtra"
    )


# --------------------------------------------------------------------------------------
# scores and AUC


def event_reduce(per_jet: np.ndarray, counts: np.ndarray, how: str) -> np.ndarray:
    a = ak.unflatten(per_jet, counts)
    out = ak.max(a, axis=1) if how == "max" else ak.mean(a, axis=1)
    return ak.to_numpy(ak.fill_none(out, np.nan)).astype(np.float64)


def scores(sample: dict, jet_models: dict, event_models: dict) -> dict[str, np.ndarray]:
    """Per-event scores of every score definition (NaN for events without jets)."""
    counts, x, slot = sample["counts"], sample["x"], sample["slot"]
    out: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for name, lm in jet_models.items():
            s = lm.module().score(torch.from_numpy(x)).numpy().astype(np.float64)
            for how in ("max", "mean"):
                out[f"jet:{name}:{how}:all"] = event_reduce(s, counts, how)
            for em in event_models.values():
                j = int(em.metadata["event_jets"])
                lead = slot < j
                for how in ("max", "mean"):
                    out[f"jet:{name}:{how}:lead{j}"] = event_reduce(
                        s[lead], np.minimum(counts, j), how
                    )
        for name, em in event_models.items():
            j = int(em.metadata["event_jets"])
            xe, mask = pad(x, counts, slot, j)
            tx, tm = torch.from_numpy(xe), torch.from_numpy(mask.astype(np.float32))
            ev = em.module().score(tx, tm).numpy().astype(np.float64)
            js = em.module().jet_scores(tx, tm).numpy().astype(np.float64)
            js = np.where(mask, js, -np.inf).max(axis=1)
            empty = counts == 0
            ev[empty] = np.nan
            js[empty] = np.nan
            out[f"event:{name}:score"] = ev
            out[f"event:{name}:max"] = js
    return out


# --------------------------------------------------------------------------------------


def residual_rows(orig: np.ndarray, rec: np.ndarray) -> dict:
    s = residual_summary(orig, rec, VARS)
    return {
        "jets": len(orig),
        "unphysical": int(unphysical_mask(rec, VARS).sum()),
        **{
            v: {k: s[v][k] for k in ("mean", "rms", "sigma68", "q99_abs", "frac_above_1pct")}
            for v in VARS
        },
    }


def read_restored(path: str) -> tuple[np.ndarray, np.ndarray]:
    with uproot.open(path) as f:
        arr = f["Events"].arrays(["nJet", *JET_BRANCHES], library="ak")
    counts = ak.to_numpy(arr["nJet"]).astype(np.int64)
    x = np.stack([ak.to_numpy(ak.flatten(arr[b])) for b in JET_BRANCHES], axis=1)
    return counts, x.astype(np.float32)


def latent_arrays(path: str) -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        t = f["Events"]
        prefixes = ("Jet_z", "JetLatent_z", "JetExtra_")
        names = [k for k in t.keys() if k.startswith(prefixes)]  # noqa: SIM118 (uproot)
        arr = t.arrays(names, library="ak")
    return {k: ak.to_numpy(ak.flatten(arr[k], axis=None)) for k in names}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sample", action="append", default=[], help="name=path (first: background)")
    p.add_argument("--signal", action="append", default=[], help="name=path, AUC only")
    p.add_argument("--jet-model", default="default=hepae_coffea/data/default_model.pt")
    p.add_argument("--event-model", action="append", default=[], help="name=path")
    p.add_argument("--compression", action="append", default=[], help="codec:level")
    p.add_argument("--workdir", default="build/event_level/files")
    p.add_argument("--out", default="benchmarks/results/event_level.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tables-from", help="only print the tables of an existing JSON result")
    args = p.parse_args(argv)
    if args.tables_from:
        print(tables(json.loads(Path(args.tables_from).read_text())))
        return 0
    torch.set_num_threads(args.threads)
    samples = named(args.sample or ["qcd=samples/qcd_test.root", "ttbar=samples/ttbar_test.root"])
    signals = named(args.signal or ["zprime=samples/zprime_test.root"])
    codecs = [_codec(c) for c in (args.compression or ["zstd:5", "lzma:9"])]
    (jet_name, jet_path) = named([args.jet_model])[0]
    event_paths = named(args.event_model)
    if not event_paths:
        p.error("give at least one --event-model name=path")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    begin = provenance.start()

    jet_models = {jet_name: open_checked(jet_path)}
    event_models = {n: open_checked(pth) for n, pth in event_paths}
    for n, em in event_models.items():
        if em.metadata.get("level") != "event":
            p.error(f"{n}: not an event-level model")
    models = {jet_name: ("jet", jet_path, jet_models[jet_name])}
    models.update({n: ("event", pth, event_models[n]) for n, pth in event_paths})

    result: dict = {
        "command": "python benchmarks/event_level.py " + " ".join(argv or sys.argv[1:]),
        "models": {},
        "samples": {},
        "bytes": [],
        "residuals": [],
        "auc": [],
    }
    for name, (kind, path, lm) in models.items():
        meta = lm.metadata
        tr = meta.get("training", {}).get("config", {})
        mt = meta.get("metrics", {})
        result["models"][name] = {
            "level": kind,
            "path": path,
            "file_bytes": os.path.getsize(path),
            "sha256": lm.sha256,
            "event_jets": meta.get("event_jets"),
            "latent_dim": meta["latent_dim"],
            "hidden": meta["architecture"]["hidden"],
            "parameters": meta["architecture"]["parameters"],
            "epochs": tr.get("epochs"),
            "epochs_run": mt.get("epochs_run"),
            "train_seconds": mt.get("seconds"),
            "stop_reason": mt.get("stop_reason"),
        }

    data: dict[str, dict] = {}
    for sname, spath in samples + signals:
        data[sname] = read_sample(spath)
        c = data[sname]["counts"]
        info = {
            "path": spath,
            "events": len(c),
            "jets": int(c.sum()),
            "events_without_jets": int((c == 0).sum()),
            "jets_per_event": float(c.mean()),
            "role": "compressed" if (sname, spath) in samples else "signal (AUC only)",
        }
        for em in event_models.values():
            j = int(em.metadata["event_jets"])
            info[f"frac_jets_beyond_{j}"] = float(np.maximum(c - j, 0).sum() / c.sum())
            info[f"frac_events_beyond_{j}"] = float((c > j).mean())
        result["samples"][sname] = info

    # ---- sizes and residuals ---------------------------------------------------------
    for sname, spath in samples:
        d = data[sname]
        n_ev = len(d["counts"])
        orig_bytes = os.path.getsize(spath)
        for codec, level in codecs:
            ref = work / f"{sname}_lossless_{codec}{level}.root"
            write_lossless(spath, ref, codec, level)
            ref_sizes = branch_bytes(str(ref))
            result["bytes"].append(
                {
                    "sample": sname,
                    "compression": f"{codec}:{level}",
                    "method": "lossless (jets as stored)",
                    "level": "none",
                    "events": n_ev,
                    "file_bytes": os.path.getsize(ref),
                    "embedded_bytes": 0,
                    "jet_part_bytes": jet_part(ref_sizes, "lossless"),
                    "original_file_bytes": orig_bytes,
                }
            )
            for mname, (kind, mpath, _) in models.items():
                out = work / f"{sname}_{mname}_{codec}{level}.root"
                t0 = time.perf_counter()
                # the size is what is measured, larger than the input or not
                compress(
                    spath,
                    out,
                    mpath,
                    compression=codec,
                    level=level,
                    overwrite=True,
                    allow_larger=True,
                )
                secs = time.perf_counter() - t0
                sizes = branch_bytes(str(out))
                result["bytes"].append(
                    {
                        "sample": sname,
                        "compression": f"{codec}:{level}",
                        "method": mname,
                        "level": kind,
                        "events": n_ev,
                        "file_bytes": os.path.getsize(out),
                        "embedded_bytes": embedded_bytes(str(out)),
                        "jet_part_bytes": jet_part(sizes, kind),
                        "original_file_bytes": orig_bytes,
                        "compress_seconds": round(secs, 2),
                    }
                )
        # residuals from the first codec's files; the other codecs hold the same latents
        codec0 = f"{codecs[0][0]}{codecs[0][1]}"
        for mname, (kind, _, _) in models.items():
            first = work / f"{sname}_{mname}_{codec0}.root"
            lat0 = latent_arrays(str(first))
            for codec, level in codecs[1:]:
                other = latent_arrays(str(work / f"{sname}_{mname}_{codec}{level}.root"))
                if any(not np.array_equal(lat0[k], other[k]) for k in lat0):
                    raise RuntimeError(f"{sname} {mname}: latents differ between codecs")
            restored = work / f"{sname}_{mname}_restored.root"
            t0 = time.perf_counter()
            decompress(first, restored, overwrite=True)
            secs = time.perf_counter() - t0
            counts, rec = read_restored(str(restored))
            if not np.array_equal(counts, d["counts"]):
                raise RuntimeError(f"{sname} {mname}: jet counts changed")
            subsets: dict[str, np.ndarray] = {}
            if kind == "jet":
                subsets["all jets"] = np.ones(len(rec), bool)
                for em in event_models.values():
                    j = int(em.metadata["event_jets"])
                    subsets[f"leading {j}"] = d["slot"] < j
            else:
                j = int(models[mname][2].metadata["event_jets"])
                subsets[f"leading {j}"] = d["slot"] < j
                beyond = d["slot"] >= j
                subsets[f"beyond {j} (stored unchanged)"] = beyond
                if beyond.any() and not np.array_equal(rec[beyond], d["x"][beyond]):
                    raise RuntimeError(f"{sname} {mname}: jets beyond J were altered")
                subsets["all jets"] = np.ones(len(rec), bool)
            for label, sel in subsets.items():
                if not sel.any():
                    continue
                row = residual_rows(d["x"][sel], rec[sel])
                result["residuals"].append(
                    {
                        "sample": sname,
                        "model": mname,
                        "level": kind,
                        "jets_subset": label,
                        "decompress_seconds": round(secs, 2),
                        **row,
                    }
                )

    # ---- anomaly-score AUCs ----------------------------------------------------------
    bkg_name = samples[0][0]
    all_scores = {s: scores(data[s], jet_models, event_models) for s in data}
    for sname in data:
        if sname == bkg_name:
            continue
        for key in all_scores[bkg_name]:
            b = all_scores[bkg_name][key]
            s = all_scores[sname][key]
            result["auc"].append(
                {
                    "signal": sname,
                    "background": bkg_name,
                    "score": key,
                    "auc": roc_from_scores(b[np.isfinite(b)], s[np.isfinite(s)]).auc,
                    "signal_events": int(np.isfinite(s).sum()),
                    "background_events": int(np.isfinite(b).sum()),
                }
            )

    result["provenance"] = provenance.provenance(begin)
    result["provenance"]["wall_seconds"] = round(time.time() - t_start, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(tables(result))
    print(f"\nwrote {out}")
    return 0


# --------------------------------------------------------------------------------------
# tables


def _f(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


def tables(r: dict) -> str:
    lines: list[str] = []
    lines.append("### Models\n")
    lines.append("| model | level | J | k | hidden | parameters | model file | epochs run |")
    lines.append("|---|---|---:|---:|---|---:|---:|---:|")
    for n, m in r["models"].items():
        lines.append(
            f"| {n} | {m['level']} | {m['event_jets'] or '–'} | {m['latent_dim']} | "
            f"{'-'.join(map(str, m['hidden']))} | {m['parameters']:,} | "
            f"{m['file_bytes']:,} B | {m['epochs_run']} |"
        )
    lines.append("\n### Samples\n")
    beyond = sorted({k for s in r["samples"].values() for k in s if k.startswith("frac_jets_b")})
    head = " | ".join(f"jets beyond {k.rsplit('_', 1)[1]}" for k in beyond)
    lines.append(f"| sample | role | events | jets | jets/event | {head} |")
    lines.append("|---|---|---:|---:|---:|" + "---:|" * len(beyond))
    for n, s in r["samples"].items():
        fr = " | ".join(f"{100 * s[k]:.1f}%" for k in beyond)
        lines.append(
            f"| {n} | {s['role']} | {s['events']:,} | {s['jets']:,} | "
            f"{s['jets_per_event']:.2f} | {fr} |"
        )
    lines.append("\n### Bytes per event\n")
    lines.append(
        "| sample | ROOT compression | method | original file | file | embedded model+info | "
        "file - model | jet part |"
    )
    lines.append("|---|---|---|---:|---:|---:|---:|---:|")
    for b in r["bytes"]:
        n = b["events"]
        lines.append(
            f"| {b['sample']} | {b['compression']} | {b['method']} | "
            f"{_f(b['original_file_bytes'] / n)} | {_f(b['file_bytes'] / n)} | "
            f"{_f(b['embedded_bytes'] / n)} ({b['embedded_bytes']:,} B) | "
            f"{_f((b['file_bytes'] - b['embedded_bytes']) / n)} | "
            f"{_f(b['jet_part_bytes'] / n)} |"
        )
    lines.append("\n### Residuals (decompressed vs original)\n")
    lines.append(
        "| sample | model | jets | n | σ68 pt | σ68 eta | σ68 phi | σ68 m | mean pt | "
        "mean eta | mean phi | mean m | >1% pt | >0.01 eta | >0.01 phi | >1% m | unphys. |"
    )
    lines.append("|---|---|---|---:|" + "---:|" * 13)
    for x in r["residuals"]:
        s68 = " | ".join(f"{x[v]['sigma68']:.2e}" for v in VARS)
        mean = " | ".join(f"{x[v]['mean']:.1e}" for v in VARS)
        frac = " | ".join(f"{100 * x[v]['frac_above_1pct']:.2f}%" for v in VARS)
        lines.append(
            f"| {x['sample']} | {x['model']} | {x['jets_subset']} | {x['jets']:,} | {s68} | "
            f"{mean} | {frac} | {x['unphysical']} |"
        )
    lines.append("\n### Anomaly-score AUC (exact, per event)\n")
    sigs = list(dict.fromkeys(a["signal"] for a in r["auc"]))
    lines.append(
        "| score | " + " | ".join(f"{s} vs {r['auc'][0]['background']}" for s in sigs) + " |"
    )
    lines.append("|---|" + "---:|" * len(sigs))
    keys = list(dict.fromkeys(a["score"] for a in r["auc"]))
    for k in keys:
        vals = {a["signal"]: a["auc"] for a in r["auc"] if a["score"] == k}
        lines.append(f"| {score_label(k)} | " + " | ".join(f"{vals[s]:.4f}" for s in sigs) + " |")
    return "\n".join(lines)


def score_label(key: str) -> str:
    """``jet:default:max:lead4`` -> a readable row name."""
    parts = key.split(":")
    if parts[0] == "jet":
        _, name, how, jets = parts
        over = "all jets" if jets == "all" else f"leading {jets[4:]} jets"
        return f"jet-level {name}: {how} of jet scores over {over}"
    _, name, how = parts
    if how == "score":
        return f"event-level {name}: score(x, mask) (mean over leading J)"
    return f"event-level {name}: max of jet_scores over leading J"


if __name__ == "__main__":
    raise SystemExit(main())
