"""Train autoencoder configurations on the same jets and measure sigma68 on held-out jets.

Usage (the bottleneck study of ``benchmarks/README.md``)::

    python benchmarks/quality.py --train samples/qcd_train.root --test samples/qcd_test.root \
        --base-config benchmarks/bottleneck_study.yaml --configs default default_plain \
        --out benchmarks/results/quality.json
    python benchmarks/quality.py --train samples/qcd_train.root --test samples/qcd_test.root \
        --base-config benchmarks/bottleneck_study.yaml --minutes 8 --configs hepae_reference

Every configuration starts from ``--base-config`` (default: the shipped model's training
configuration, ``tools/default_model.yaml``), sets inputs, output, seed, ``preview=False``
and ``tensorboard=False``, then applies what ``CONFIGS`` says. Without ``--minutes`` the
configured number of epochs is used. With ``--minutes M`` one epoch is first trained and
timed (in the work directory), and the one-cycle schedule is sized to the budget:
``epochs = max(1, int(M * 60 / seconds_per_epoch))``; the schedule then runs to its end.

Each model is evaluated on the test file: sigma68 per variable (relative for pt and mass,
absolute for eta and phi), RMS, and the number of unphysical reconstructions. Rows (each
with its provenance) are merged by name into the output JSON (a list of rows).

Per-pT-bin table of one model on held-out samples (no training)::

    python benchmarks/quality.py --model hepae_coffea/data/default_model.pt \
        --held-out qcd_flat=samples/qcd_flat_test.root ttbar=samples/ttbar_test.root \
        --bins-out benchmarks/results/quality_bins.json

prints, for each held-out process, sigma68 of pt, eta, phi and mass in the pT bins of
``PT_BINS`` (bins with fewer than ``MIN_JETS`` jets are marked), checks the targets
(``TARGETS``; no bin more than 3x worse than the best) and writes a JSON file with
provenance (commit, date, machine load) and the model's SHA-256. With ``--cost-against
OTHER.pt`` it also times both models in turn (``model_cost``) and records the cost per jet.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import time
from pathlib import Path

import numpy as np
import provenance
import torch

from hepae_coffea.processing.evaluate import evaluate
from hepae_coffea.processing.metrics import residuals, sigma68
from hepae_coffea.training.loop import TrainConfig, load_config, train

#: pT bins (GeV) of the per-bin table
PT_BINS = (20, 100, 200, 400, 700, 1000, 1500, 2000, 3000)
#: sigma68 targets: relative for pt and mass, absolute for eta and phi
TARGETS = {"pt": 0.005, "eta": 0.005, "phi": 0.005, "mass": 0.005}
#: bins with fewer jets are reported but not judged
MIN_JETS = 50

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "tools" / "default_model.yaml"
VARIABLES = ("pt", "eta", "phi", "mass")
STANDARD = {v: "standard" for v in VARIABLES}

CONFIGS: dict[str, dict] = {
    # HEPAutoencoders recipe: standardised inputs, 4-200-100-50-3 tanh, MSE, plain latent
    "hepae_reference": {
        "hidden": [200, 100, 50],
        "activation": "tanh",
        "bottleneck": "plain",
        "loss": "mse",
        "transforms": STANDARD,
        "lr": 3e-3,
        "batch_size": 256,
    },
    # same net with log pt/mass (the default), eta/3 and phi/pi
    "hepae_log": {
        "hidden": [200, 100, 50],
        "activation": "tanh",
        "bottleneck": "plain",
        "loss": "mse",
        "transforms": {"eta": "scale:3", "phi": "periodic"},
        "lr": 3e-3,
        "batch_size": 256,
    },
    # Baler-like: standardised inputs (min-max to [0, 1] inside for BCE), leaky ReLU, BCE
    "baler_style": {
        "hidden": [200, 100, 50],
        "activation": "leakyrelu",
        "bottleneck": "plain",
        "loss": "bce",
        "transforms": STANDARD,
    },
    # the shipped default: packed bottleneck, physics normalisation
    "default": {},
    "default_plain": {"bottleneck": "plain"},
}
for _v in VARIABLES:
    CONFIGS[f"default_w{_v}4"] = {"weights": {_v: 4.0}}
for _v in VARIABLES:
    CONFIGS[f"plain_w{_v}4"] = {"bottleneck": "plain", "weights": {_v: 4.0}}


def make_config(
    name: str, args: argparse.Namespace, workdir: Path, suffix: str = "", **extra
) -> TrainConfig:
    cfg = load_config(args.base_config)
    cfg.update(
        inputs=[args.train],
        output=str(workdir / f"{name}{suffix}.pt"),
        seed=args.seed,
        preview=False,
        tensorboard=False,
    )
    if args.max_jets:
        cfg["max_jets"] = args.max_jets
    cfg.update(CONFIGS[name])
    cfg.update(extra)
    return TrainConfig(**cfg)


def seconds_per_epoch(name: str, args: argparse.Namespace, workdir: Path) -> float:
    """Train one epoch of ``name`` (output ``<workdir>/<name>_timing.pt``) and time it."""
    res = train(make_config(name, args, workdir, "_timing", epochs=1), progress=False)
    # from the start of train() to the end of the first epoch (data reading included)
    return float(res.history[0]["seconds"])


def run(name: str, args: argparse.Namespace, workdir: Path) -> dict:
    """Train configuration ``name`` and evaluate it on the test file: one results row."""
    begin = provenance.start()
    extra = {}
    if args.minutes:
        spe = seconds_per_epoch(name, args, workdir)
        extra["epochs"] = max(1, int(args.minutes * 60 / spe))
        print(f"{name:>18}: {spe:.1f} s/epoch -> {extra['epochs']} epochs", flush=True)
    config = make_config(name, args, workdir, **extra)
    t0 = time.perf_counter()
    res = train(config, progress=False)
    seconds = time.perf_counter() - t0
    model_path, epochs = res.paths["model"], res.metrics["epochs_run"]
    ev = evaluate(args.test, model_path)
    row = {
        "name": name,
        "train_seconds": round(seconds, 1),
        "epochs": epochs,
        "n_test_jets": len(ev.original),
        "unphysical": int(ev.summary["_jets"]["unphysical"]),
        "jets_per_second": round(float(ev.jets_per_second)),
        "config": CONFIGS[name],
        "minutes": args.minutes,
        "torch_threads": torch.get_num_threads(),
    }
    for v in ev.variables:
        row[f"sigma68_{v}"] = float(ev.summary[v]["sigma68"])
        row[f"rms_{v}"] = float(ev.summary[v]["rms"])
    row["provenance"] = provenance.provenance(begin)
    return row


# --- per-pT-bin table ----------------------------------------------------------------------


def per_bin(orig: np.ndarray, rec: np.ndarray, variables, bins=PT_BINS) -> list[dict]:
    """sigma68 per variable in bins of the original jet pT (GeV)."""
    res = residuals(orig, rec, variables)
    pt = orig[:, list(variables).index("pt")]
    rows = []
    for lo, hi in itertools.pairwise(bins):
        sel = (pt >= lo) & (pt < hi)
        row: dict = {"lo": lo, "hi": hi, "n_jets": int(sel.sum())}
        for j, v in enumerate(variables):
            r = res[sel, j]
            r = r[np.isfinite(r)]
            row[v] = float(sigma68(r)) if len(r) else float("nan")
        rows.append(row)
    return rows


def judge(rows: list[dict], variables) -> dict:
    """Targets met per bin, and the worst/best ratio per variable (bins with enough jets)."""
    judged = [r for r in rows if r["n_jets"] >= MIN_JETS]
    out: dict = {"bins_judged": len(judged), "fails": []}
    for v in variables:
        vals = [r[v] for r in judged]
        if not vals:
            continue
        out[f"worst_over_best_{v}"] = max(vals) / max(min(vals), 1e-12)
        out["fails"] += [
            f"{v} {r['lo']}-{r['hi']}: {r[v]:.4f}" for r in judged if r[v] > TARGETS.get(v, np.inf)
        ]
    return out


def print_table(process: str, rows: list[dict], variables, verdict: dict) -> None:
    print(f"\n### {process}\n")
    print("| pT bin (GeV) | jets | " + " | ".join(variables) + " |")
    print("|---|---|" + "---|" * len(variables))
    for r in rows:
        mark = "" if r["n_jets"] >= MIN_JETS else " (few jets)"
        vals = " | ".join(f"{r[v]:.4f}" if np.isfinite(r[v]) else "-" for v in variables)
        print(f"| {r['lo']}-{r['hi']}{mark} | {r['n_jets']} | {vals} |")
    ratios = ", ".join(
        f"{v} {verdict.get(f'worst_over_best_{v}', float('nan')):.1f}x" for v in variables
    )
    print(f"\nworst bin / best bin: {ratios}; bins above target: {len(verdict['fails'])}")


def model_cost(
    models: dict[str, Path], path: str, repeats: int = 15
) -> tuple[dict[str, float], list[float]]:
    """Jets/s of each model's encode -> decode -> score on the same jets, and the cost ratio
    of the first model over the others per round.

    The models are timed in turn, ``repeats`` rounds (so a change of machine load hits all
    of them). Returns the best jets/s of each model and, per round, the first model's time
    over the second's: on a loaded machine the median of these ratios is steadier than the
    ratio of two best-of figures.
    """
    from hepae_coffea.io.jets import read_jets
    from hepae_coffea.model.handle import open_model
    from hepae_coffea.processing.evaluate import run_model

    loaded = {name: open_model(m).module() for name, m in models.items()}
    variables = open_model(next(iter(models.values()))).variables
    names = list(loaded)
    x = read_jets(path, variables).values
    best = dict.fromkeys(loaded, 0.0)
    ratios: list[float] = []
    for _ in range(repeats):
        seconds = {}
        for name, m in loaded.items():
            run_model(m, x[:256])
            t0 = time.perf_counter()
            run_model(m, x)
            seconds[name] = time.perf_counter() - t0
            best[name] = max(best[name], len(x) / seconds[name])
        if len(names) > 1:
            ratios.append(seconds[names[0]] / seconds[names[1]])
    return best, ratios


def bins_main(args: argparse.Namespace) -> None:
    begin = provenance.start()
    model = Path(args.model)
    out: dict = {
        "provenance": {},
        "model": str(model),
        "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "pt_bins": list(PT_BINS),
        "targets": TARGETS,
        "min_jets_judged": MIN_JETS,
        "processes": {},
    }
    for item in args.held_out:
        process, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"--held-out wants PROCESS=FILE, got {item!r}")
        ev = evaluate(path, model)
        rows = per_bin(ev.original, ev.reconstructed, ev.variables)
        verdict = judge(rows, ev.variables)
        print_table(f"{process} (`{Path(path).name}`)", rows, ev.variables, verdict)
        out["processes"][process] = {
            "file": Path(path).name,
            "n_jets": len(ev.original),
            "unphysical": int(ev.summary["_jets"]["unphysical"]),
            "jets_per_second": round(float(ev.jets_per_second)),
            "bins": rows,
            "verdict": verdict,
        }
        print(
            f"unphysical reconstructions: {out['processes'][process]['unphysical']} of {len(ev.original)}"
        )
    if args.cost_against:
        first = args.held_out[0].partition("=")[2]
        cost, ratios = model_cost({"model": model, "reference": Path(args.cost_against)}, first)
        out["cost"] = {
            "reference": str(args.cost_against),
            "jets_per_second": cost,
            "cost_ratio": float(np.median(ratios)),
            "cost_ratio_rounds": ratios,
            "file": Path(first).name,
        }
        print(
            f"\ncost per jet: {np.median(ratios):.2f}x the reference (median of {len(ratios)} "
            f"rounds, {min(ratios):.2f}-{max(ratios):.2f}; best {cost['model']:.3g} vs "
            f"{cost['reference']:.3g} jets/s; torch threads {torch.get_num_threads()})"
        )
    out["provenance"] = provenance.provenance(begin)
    if args.bins_out:
        dest = Path(args.bins_out)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(out, indent=1) + "\n")
        print(f"\nwrote {dest}")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--train")
    p.add_argument("--test")
    p.add_argument("--model", help="per-pT-bin mode: the model to evaluate (no training)")
    p.add_argument("--held-out", nargs="+", default=[], metavar="PROCESS=FILE")
    p.add_argument("--bins-out", default="", help="per-pT-bin results JSON")
    p.add_argument(
        "--cost-against", default="", help="per-pT-bin mode: also time this reference model"
    )
    p.add_argument(
        "--minutes",
        type=float,
        default=0.0,
        help="training budget per configuration (0: the configured epochs)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-jets", type=int, default=0)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--base-config", default=str(DEFAULT_CONFIG))
    p.add_argument("--out", default="benchmarks/results/quality.json")
    p.add_argument("--workdir", default="build/bench_models")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.model:
        if not args.held_out:
            p.error("--model needs --held-out PROCESS=FILE ...")
        bins_main(args)
        return
    if not (args.train and args.test):
        p.error("--train and --test are required (or --model with --held-out)")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for name in args.configs:
        row = run(name, args, workdir)
        rows = json.loads(out.read_text()) if out.exists() else []
        rows = [r for r in rows if r["name"] != name] + [row]
        out.write_text(json.dumps(rows, indent=1) + "\n")
        print(
            f"{name:>18}: pt {row['sigma68_pt']:.4f} mass {row['sigma68_mass']:.4f} "
            f"eta {row['sigma68_eta']:.4f} phi {row['sigma68_phi']:.4f} "
            f"unphysical {row['unphysical']} ({row['epochs']} epochs, "
            f"{row['train_seconds']:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
