"""Anomaly scores judged against trivial baselines on the same events.

Usage::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/anomaly.py \
        --samples samples/anomaly --generate \
        --model default --out benchmarks/results/anomaly_default.json \
        --figures benchmarks/results/anomaly_default
    python benchmarks/anomaly.py --tables-from benchmarks/results/anomaly_default.json

Samples (generated with ``hepae generate`` when missing and ``--generate`` is given; seeds
different from any training sample): background ``qcd`` (pT-hat > 50 GeV), background
``qcd_hard`` (pT-hat > ``--hard-pthat``, a background at the signal's jet pT), signals
``zprime`` (2 TeV Z') and ``ttbar``.

For every model (``--model NAME=PATH``, ``default`` for the shipped one; repeatable) and
every (background, signal) pair, the exact (unbinned) ROC of each score is computed on the
same events (events with at least one jet): the model's event scores (max and mean of the
per-jet score) and the baselines leading-jet pT, leading-jet mass and HT. Printed and
written: AUC, signal efficiency at eps_B = 1e-2, 1e-3, 1e-4 (or the statistical-reach
statement when fewer than 10 background events pass), the Spearman correlation of the
score with the leading-jet pT in the background, the AUC inside leading-jet pT windows
(does the score only rank by pT?), and the sculpting of the background's leading-jet pT
and mass by cuts keeping 10% and 1% of it. Figures (ROC as rejection, sculpting) come from
the processor's histograms (``hepae_coffea.processing.run.run`` on the same files), as ``hepae
report`` draws them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import provenance
import uproot
from scipy.stats import spearmanr

from hepae_coffea.model.export import default_model_path
from hepae_coffea.model.handle import ModelHandle, open_model
from hepae_coffea.processing.anomaly import (
    DEFAULT_EPS_B,
    efficiency_at,
    event_baselines,
    event_scores,
    roc_from_scores,
    sculpting,
)
from hepae_coffea.processing.evaluate import run_model


def sample_specs(args: argparse.Namespace) -> dict[str, list[tuple[str, int, int, float | None]]]:
    """{sample: [(process, events, seed, pthat_min), ...]} (one file per entry)."""
    return {
        "qcd": [("qcd", args.qcd_events, 9101 + 4 * i, None) for i in range(args.qcd_files)],
        "qcd_hard": [("qcd", args.hard_events, 9102, args.hard_pthat)],
        "zprime": [("zprime", args.signal_events, 9103, None)],
        "ttbar": [("ttbar", args.ttbar_events, 9104, None)],
    }


MIN_BACKGROUND = 10  # background events that must pass a working point to measure it
PAIRS = (("qcd", "zprime"), ("qcd", "ttbar"), ("qcd_hard", "zprime"))
PT_WINDOWS = ((400.0, 700.0), (700.0, 1000.0), (1000.0, 1400.0))


def generate_missing(args: argparse.Namespace) -> dict[str, list[Path]]:
    """Paths of the samples, generating the missing ones (``nice -n 10``) if asked."""
    root = Path(args.samples)
    root.mkdir(parents=True, exist_ok=True)
    paths: dict[str, list[Path]] = {}
    for name, specs in sample_specs(args).items():
        for process, n, seed, pthat in specs:
            path = root / f"{name}_{n}_s{seed}.root"
            if not path.exists():
                if not args.generate:
                    raise SystemExit(f"{path} missing: run with --generate")
                cmd = ["nice", "-n", "10", str(Path(sys.executable).parent / "hepae")]
                cmd += ["generate", "--process", process, "--events", str(n)]
                cmd += ["--seed", str(seed), "-o", str(path)]
                if pthat is not None:
                    cmd += ["--pthat-min", f"{pthat:g}"]
                print("generating:", " ".join(cmd), flush=True)
                subprocess.run(cmd, check=True)
            paths.setdefault(name, []).append(path)
    return paths


def read_events(paths: list[Path], variables: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(jets (n, k) in the given variable order, jets per event) of generated files."""
    xs, cs = [], []
    for path in paths:
        with uproot.open(path) as f:
            arr = f["Events"].arrays([f"Jet_{v}" for v in variables])
        cs.append(ak.to_numpy(ak.num(arr[f"Jet_{variables[0]}"])).astype(np.int64))
        cols = [ak.to_numpy(ak.flatten(arr[f"Jet_{v}"])).astype(np.float64) for v in variables]
        xs.append(np.stack(cols, axis=1))
    return np.concatenate(xs), np.concatenate(cs)


def event_table(
    path: list[Path], model: ModelHandle, kin: tuple[np.ndarray, np.ndarray]
) -> dict[str, np.ndarray]:
    """Per event (with jets): the model's scores and the baselines."""
    x, counts = read_events(path, list(model.variables))
    pt_mass, kcounts = kin
    if not np.array_equal(counts, kcounts):
        raise SystemExit(f"{path}: jet counts differ between the model's and pt/mass branches")
    if not np.isfinite(x).all():
        raise SystemExit(f"{path}: non-finite jet values")
    _, _, score = run_model(model.module(), x)
    out = {f"score_{k}": v for k, v in event_scores(score.astype(np.float64), counts).items()}
    out.update(event_baselines(pt_mass[:, 0], pt_mass[:, 1], counts))
    return out


def compare(b: dict[str, np.ndarray], s: dict[str, np.ndarray]) -> dict[str, object]:
    curves = {}
    for key in ("score_max", "score_mean", "leading_jet_pt", "leading_jet_mass", "ht"):
        roc = roc_from_scores(b[key], s[key])
        # the tightest working point the background sample measures: 10 events passing
        reach = MIN_BACKGROUND / roc.n_background * (1 + 1e-9)
        (tight,) = efficiency_at(roc, [reach], min_background=MIN_BACKGROUND)
        curves[key] = {
            "auc": roc.auc,
            "working_points": [
                wp.as_dict()
                for wp in efficiency_at(roc, DEFAULT_EPS_B, min_background=MIN_BACKGROUND)
            ],
            "tightest_measurable": {"eps_b": reach, "eps_s": tight.eps_s},
        }
    windows = []
    for lo, hi in PT_WINDOWS:
        mb = (b["leading_jet_pt"] >= lo) & (b["leading_jet_pt"] < hi)
        ms = (s["leading_jet_pt"] >= lo) & (s["leading_jet_pt"] < hi)
        row = {"pt_window": [lo, hi], "background_events": int(mb.sum()), "signal": int(ms.sum())}
        if mb.sum() >= 20 and ms.sum() >= 20:
            for key in ("score_max", "score_mean", "leading_jet_mass"):
                row[f"auc_{key}"] = roc_from_scores(b[key][mb], s[key][ms]).auc
        windows.append(row)
    return {
        "background_events": len(b["score_max"]),
        "signal_events": len(s["score_max"]),
        "curves": curves,
        "auc_in_leading_pt_windows": windows,
    }


def sculpt(b: dict[str, np.ndarray]) -> dict[str, object]:
    out: dict[str, object] = {}
    edges = {
        "leading_jet_pt": np.geomspace(20, 4000, 24),
        "leading_jet_mass": np.geomspace(1, 1000, 16),
    }
    for key in ("score_max", "score_mean"):
        rho = spearmanr(b[key], b["leading_jet_pt"]).statistic
        rho_m = spearmanr(b[key], b["leading_jet_mass"]).statistic
        per = {"spearman_leading_pt": float(rho), "spearman_leading_mass": float(rho_m)}
        for obs, e in edges.items():
            res = sculpting(b[key], b[obs], e, (0.1, 0.01))
            per[obs] = {
                str(eps): {
                    "threshold": r["threshold"],
                    "kept": r["kept"],
                    "median_after": float(np.median(b[obs][b[key] >= r["threshold"]]))
                    if r["kept"]
                    else None,
                    "ratio": [None if not np.isfinite(v) else float(v) for v in r["ratio"]],
                }
                for eps, r in res.items()
            }
            per[obs]["median_inclusive"] = float(np.median(b[obs]))
            per[obs]["edges"] = e.tolist()
        out[key] = per
    return out


def figures(paths: dict[str, list[Path]], model_path: Path, out_dir: Path) -> list[str]:
    """ROC (rejection) and sculpting figures from the processor's histograms."""
    from hepae_coffea.plots.plotting import figure_roc, figure_sculpting, save_figure
    from hepae_coffea.processing.run import run

    res = run(
        {k: [str(p) for p in v] for k, v in paths.items()}, model=str(model_path), chunksize=20000
    )
    made = []
    for bkg, sig in PAIRS:
        made += save_figure(
            figure_roc(res.output, bkg, sig), out_dir / f"roc_{bkg}_{sig}", ("png",)
        )
    for bkg in ("qcd", "qcd_hard"):
        made += save_figure(
            figure_sculpting(res.output[bkg], bkg), out_dir / f"sculpting_{bkg}", ("png",)
        )
    return [str(p) for p in made]


def _median(value: float | None, digits: int) -> str:
    """A median for the tables; ``-`` where the cut kept no event."""
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(result: dict) -> None:
    eps = [f"eps_S@{e:g}" for e in DEFAULT_EPS_B]
    for model, pairs in result["models"].items():
        for pair, r in pairs["pairs"].items():
            print(
                f"\n{model}: {pair} ({r['background_events']} background, "
                f"{r['signal_events']} signal events)"
            )
            tight = next(iter(r["curves"].values()))["tightest_measurable"]["eps_b"]
            print(
                f"{'score':18s} {'AUC':>6s} "
                + " ".join(f"{e:>12s}" for e in eps)
                + f" {'eps_S@' + format(tight, '.2g'):>14s}"
            )
            for key, c in r["curves"].items():
                cells = []
                for wp in c["working_points"]:
                    if wp["measurable"]:
                        cells.append(f"{wp['eps_s']:12.3g}")
                    else:
                        cells.append(f"n/m({wp['eps_s_no_background']:.2g})".rjust(12))
                cells.append(f"{c['tightest_measurable']['eps_s']:14.3g}")
                print(f"{key:18s} {c['auc']:6.3f} " + " ".join(cells))
            for w in r["auc_in_leading_pt_windows"]:
                if "auc_score_max" in w:
                    print(
                        f"  leading pT {w['pt_window'][0]:.0f}-{w['pt_window'][1]:.0f} GeV "
                        f"({w['background_events']} bkg, {w['signal']} sig): AUC max "
                        f"{w['auc_score_max']:.3f}, mean {w['auc_score_mean']:.3f}, "
                        f"leading mass {w['auc_leading_jet_mass']:.3f}"
                    )
        for bkg, sc in pairs["sculpting"].items():
            for key in ("score_max",):
                s = sc[key]
                pt, mass = s["leading_jet_pt"], s["leading_jet_mass"]
                print(
                    f"  sculpting {bkg} by {key}: Spearman(score, leading pT) = "
                    f"{s['spearman_leading_pt']:.2f}; median leading pT "
                    f"{_median(pt['median_inclusive'], 0)} GeV inclusive, "
                    f"{_median(pt['0.1']['median_after'], 0)} (10% kept), "
                    f"{_median(pt['0.01']['median_after'], 0)} (1% kept); median "
                    f"leading mass {_median(mass['median_inclusive'], 1)} -> "
                    f"{_median(mass['0.1']['median_after'], 1)} -> "
                    f"{_median(mass['0.01']['median_after'], 1)} GeV"
                )
    print(
        "(n/m: fewer than 10 background events pass; in brackets eps_S of the cut that keeps "
        "no background event; last column: the tightest measurable eps_B, 10 events passing)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", default="samples/anomaly", help="sample folder")
    p.add_argument("--generate", action="store_true", help="generate missing samples")
    p.add_argument("--qcd-events", type=int, default=5000, help="QCD events per file")
    p.add_argument("--qcd-files", type=int, default=2, help="QCD files (seeds 9101 + 4 i)")
    p.add_argument("--hard-events", type=int, default=1500)
    p.add_argument("--hard-pthat", type=float, default=600.0)
    p.add_argument("--signal-events", type=int, default=3000)
    p.add_argument("--ttbar-events", type=int, default=800)
    p.add_argument(
        "--model", action="append", default=None, help="NAME=PATH or 'default' (repeatable)"
    )
    p.add_argument("--out", default="benchmarks/results/anomaly.json")
    p.add_argument("--figures", default=None, help="folder for the figures (first model)")
    p.add_argument(
        "--tables-from", default=None, metavar="JSON", help="only print the tables of a result"
    )
    args = p.parse_args(argv)
    if args.tables_from:
        print_table(json.loads(Path(args.tables_from).read_text()))
        return 0
    t0 = time.time()
    begin = provenance.start()
    paths = generate_missing(args)
    models = []
    for item in args.model or ["default"]:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = item, str(default_model_path()) if item == "default" else item
        models.append((Path(path).stem if name == path else name, Path(path)))
    kin = {name: read_events(path, ["pt", "mass"]) for name, path in paths.items()}
    result: dict = {"samples": {k: [str(p) for p in v] for k, v in paths.items()}, "models": {}}
    for name, path in models:
        model = open_model(path)
        ev = {k: event_table(paths[k], model, kin[k]) for k in paths}
        pairs = {f"{b}_vs_{s}": compare(ev[b], ev[s]) for b, s in PAIRS}
        result["models"][name] = {
            "path": str(path),
            "variables": list(model.variables),
            "pairs": pairs,
            "sculpting": {b: sculpt(ev[b]) for b in ("qcd", "qcd_hard")},
        }
    if args.figures:
        result["figures"] = figures(paths, models[0][1], Path(args.figures))
    result["provenance"] = provenance.provenance(begin)
    result["provenance"]["wall_seconds"] = round(time.time() - t0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print_table(result)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
