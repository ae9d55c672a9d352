"""Print the Markdown model card of a model file, with metrics on a held-out sample.

python tools/model_card.py MODEL.pt HELD_OUT.root > MODEL_CARD.md
"""

from __future__ import annotations

import sys

from hepae_coffea.evaluate import evaluate
from hepae_coffea.export import read_metadata


def main(model: str, test: str) -> None:
    meta = read_metadata(model)
    cfg = meta["training"]["config"]
    data = meta["training"]["data"]
    ev = evaluate(test, model)
    arch = meta["architecture"]
    print("# Model card: hepae-coffea default jet autoencoder\n")
    print(f"- File: `{meta['path'].split('/')[-1]}` (TorchScript; metadata: `hepae info`)")
    print(f"- Package version: {meta['package_version']}; created {meta['created']}")
    print(
        f"- Variables: {', '.join(v['name'] + (' [' + v['unit'] + ']' if v['unit'] else '') for v in meta['variables'])}"
        f" -> {meta['latent_dim']} float32 latents"
    )
    print(
        f"- Network: {meta['kind'].upper()}, {meta['bottleneck']} bottleneck "
        f"({meta['levels']} coarse levels per latent), hidden {arch['hidden']} {arch['activation']}, "
        f"{arch['parameters']} parameters, loss {meta['loss'].upper()} in normalised space"
    )
    print(
        "- Normalisation (inside the model): "
        + "; ".join(f"{t['variable']}: {t['kind']}" for t in meta["normalisation"])
    )
    print("\n## Training\n")
    print("Command (see `tools/make_default_model.sh`):\n")
    print(
        "```\nhepae train --config tools/default_model.yaml samples/qcd_train.root "
        "-o build/default_model/default_model.pt\n```\n"
    )
    print(
        f"Data: {data['files']}: {data['n_jets']} jets from {data['n_events']} Pythia 8 QCD events "
        f"(13 TeV, HardQCD:all, pTHatMin 50 GeV, seed {cfg['seed']}; anti-kt R=0.4, pT > 20 GeV), "
        f"{cfg['val_fraction']:.0%} held back for validation. "
        f"{meta['metrics']['epochs_run']} epochs, {cfg['schedule']} schedule, max lr {cfg['lr']}, "
        f"batch {cfg['batch_size']}, {meta['metrics']['seconds']:.0f} s on 2 CPU cores."
    )
    print(
        f"\n## Held-out performance\n\nQCD sample `{test.split('/')[-1]}` (Pythia seed 2), "
        f"{len(ev.original)} jets:\n"
    )
    print("| variable | residual | mean | RMS | sigma68 | 99% of abs | beyond 1% | beyond 5% |")
    print("|---|---|---|---|---|---|---|---|")
    for v in ev.variables:
        s = ev.summary[v]
        print(
            f"| {v} | {s['kind']} | {s['mean']:.2e} | {s['rms']:.2e} | {s['sigma68']:.2e} | "
            f"{s['q99_abs']:.2e} | {s['frac_above_1pct']:.2%} | {s['frac_above_5pct']:.2%} |"
        )
    print(
        f"\nUnphysical reconstructions: {ev.summary['_jets']['unphysical']} of {len(ev.original)}. "
        "Relative mass residuals have a long tail from jets of very small mass "
        "(a single-photon jet has m = 0), which is why RMS and sigma68 differ."
    )
    print("\n## How the bottleneck works\n")
    print(
        "Each float32 latent carries two learned channels: a coarse one quantised to "
        f"{meta['levels']} levels (straight-through gradients in training) and a fine continuous one "
        "in its fractional part. Encoder and decoder are ordinary learned MLPs; a plain continuous "
        "4 -> 3 bottleneck must fold one dimension away (see `benchmarks/README.md`)."
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
