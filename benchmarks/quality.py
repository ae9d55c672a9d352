"""Train autoencoder configurations on the same jets and measure sigma68 on held-out jets.

Usage::

    python benchmarks/quality.py --train samples/qcd_train.root --test samples/qcd_test.root \
        --minutes 8 --configs hepae_reference default --out benchmarks/results/quality.json

Each configuration trains for at most ``--minutes`` on this machine's CPU cores and is then
evaluated on the test file: sigma68 per variable (relative for pt and mass, absolute for
eta and phi), RMS, and the number of unphysical reconstructions.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from hepae_coffea.evaluate import evaluate
from hepae_coffea.train import TrainConfig, train

STANDARD = {"pt": "standard", "eta": "standard", "phi": "standard", "mass": "standard"}

CONFIGS: dict[str, dict] = {
    # HEPAutoencoders recipe: standardised inputs, 4-200-100-50-3 tanh, MSE, plain latent
    "hepae_reference": {
        "hidden": [200, 100, 50],
        "activation": "tanh",
        "bottleneck": "plain",
        "transforms": STANDARD,
        "lr": 3e-3,
        "batch_size": 256,
    },
    # same net with log pt/mass, eta/3, phi/3
    "hepae_log": {
        "hidden": [200, 100, 50],
        "activation": "tanh",
        "bottleneck": "plain",
        "transforms": {"eta": "scale:3", "phi": "periodic"},
        "lr": 3e-3,
        "batch_size": 256,
    },
    # the shipped default: packed bottleneck, physics normalisation
    "default": {},
}
for var in ("pt", "eta", "phi", "mass"):
    CONFIGS[f"default_w{var}4"] = {"weights": {var: 4.0}}


def run(name: str, overrides: dict, args: argparse.Namespace, workdir: Path) -> dict:
    cfg = {
        "inputs": [args.train],
        "output": str(workdir / f"{name}.pt"),
        "epochs": args.epochs,
        "max_minutes": args.minutes,
        "seed": args.seed,
        "preview": False,
        "tensorboard": False,
        "max_jets": args.max_jets,
    }
    cfg.update(overrides)
    t0 = time.perf_counter()
    res = train(TrainConfig(**cfg), progress=False)
    seconds = time.perf_counter() - t0
    ev = evaluate(args.test, res.paths["model"])
    row = {
        "name": name,
        "train_seconds": round(seconds, 1),
        "epochs": res.metrics["epochs_run"],
        "n_test_jets": len(ev.original),
        "unphysical": ev.summary["_jets"]["unphysical"],
        "jets_per_second": ev.jets_per_second,
        "config": overrides,
    }
    for v in ev.variables:
        row[f"sigma68_{v}"] = ev.summary[v]["sigma68"]
        row[f"rms_{v}"] = ev.summary[v]["rms"]
    return row


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-jets", type=int, default=0)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--out", default="benchmarks/results/quality.json")
    p.add_argument("--workdir", default="benchmarks/results/models")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"torch threads: {torch.get_num_threads()}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(out.read_text()) if out.exists() else []
    for name in args.configs:
        row = run(name, CONFIGS[name], args, Path(args.workdir))
        rows = [r for r in rows if r["name"] != name] + [row]
        out.write_text(json.dumps(rows, indent=1))
        print(
            f"{name:>18}: pt {row['sigma68_pt']:.4f} mass {row['sigma68_mass']:.4f} "
            f"eta {row['sigma68_eta']:.4f} phi {row['sigma68_phi']:.4f} "
            f"unphysical {row['unphysical']} ({row['epochs']} epochs, {row['train_seconds']:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
