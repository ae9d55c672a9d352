"""Print the Markdown model card of a model file from its per-pT-bin held-out results.

python tools/model_card.py MODEL.pt QUALITY.json [PREVIOUS.json [PREVIOUS.pt]] > MODEL_CARD.md

QUALITY.json is written by ``benchmarks/quality.py --model MODEL.pt --held-out ...
--bins-out QUALITY.json``; PREVIOUS.json (optional) is the same for the model this one
replaces, on the same held-out files, and PREVIOUS.pt that model (its network is named).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from hepae_coffea.model.export import read_metadata

VARS = ("pt", "eta", "phi", "mass")


def _f(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def _bin_table(proc: dict, min_jets: int, previous: dict | None) -> list[str]:
    lines = ["| pT bin (GeV) | jets | pt | eta | phi | mass |", "|---|---|---|---|---|---|"]
    prev_rows = {(r["lo"], r["hi"]): r for r in (previous or {}).get("bins", [])}
    for r in proc["bins"]:
        few = " (few jets)" if r["n_jets"] < min_jets else ""
        cells = []
        for v in VARS:
            cell = _f(r[v])
            p = prev_rows.get((r["lo"], r["hi"]))
            if p is not None and r["n_jets"] >= min_jets:
                cell += f" ({_f(p[v])})"
            cells.append(cell)
        lines.append(f"| {r['lo']}-{r['hi']}{few} | {r['n_jets']} | " + " | ".join(cells) + " |")
    return lines


def _file_lines(files: list[str], width: int = 88) -> list[str]:
    """The training files as continued shell lines of at most ``width`` characters."""
    lines: list[str] = []
    line = "   "
    for f in files:
        word = f" samples/{f}"
        if len(line) + len(word) + 2 > width and line.strip():
            lines.append(line + " \\")
            line = "   "
        line += word
    return [*lines, line]


def _cost_text(cost: dict, load: float) -> str:
    """The measured cost per jet against the previous default, as a sentence's end."""
    rounds = cost.get("cost_ratio_rounds")
    how = (
        f"median of {len(rounds)} rounds timing both in turn, {min(rounds):.2f}-"
        f"{max(rounds):.2f}x; best "
        if rounds
        else "best of 7: "
    )
    return (
        f": measured {cost['cost_ratio']:.2f}x its cost per jet ({how}"
        f"{cost['jets_per_second']['model']:.3g} vs "
        f"{cost['jets_per_second']['reference']:.3g} jets/s, encode -> decode -> score, "
        f"one thread, on `{cost['file']}`; load average {load:.1f})."
    )


def _load(prov: dict) -> float:
    """The load average when the measurement began (older results: ``load_average``)."""
    return float((prov.get("loadavg_start") or prov["load_average"])[0])


def _network(meta: dict) -> str:
    arch = meta["architecture"]
    return f"hidden {arch['hidden']} {arch['activation']}, {arch['parameters']} parameters"


def _reexport_text(meta: dict) -> str:
    src = meta.get("reexported_from")
    if not src:
        return ""
    return (
        f"; exported again on {src['date'][:10]} from the file with SHA-256 "
        f"`{src['sha256'][:8]}…` (`tools/reexport_model.py`: the same weights, scripted with "
        "this version's code)"
    )


def main(
    model: str, quality: str, previous: str | None = None, previous_model: str | None = None
) -> None:
    meta = read_metadata(model)
    q = json.loads(Path(quality).read_text())
    prev = json.loads(Path(previous).read_text()) if previous else None
    prev_meta = read_metadata(previous_model) if previous_model else None
    prev_text = (
        f"the previous default model ({_network(prev_meta)}; file SHA-256 "
        f"`{prev['model_sha256'][:8]}…`)"
        if prev and prev_meta
        else "the previous default model"
    )
    cfg = meta["training"]["config"]
    data = meta["training"]["data"]
    arch = meta["architecture"]
    out: list[str] = ["# Model card: hepae-coffea default jet autoencoder", ""]
    out += [
        (
            f"- File: `{meta['path'].split('/')[-1]}` (TorchScript, device-neutral: loads on the "
            "CPU, runs on a GPU with `--device`; metadata: `hepae info`)"
        ),
        f"- Package version: {meta['package_version']}; created {meta['created']}"
        + _reexport_text(meta),
        "- Variables: "
        + ", ".join(v["name"] + (f" [{v['unit']}]" if v["unit"] else "") for v in meta["variables"])
        + f" -> {meta['latent_dim']} float32 latents",
        (
            f"- Network: {meta['kind'].upper()}, {meta['bottleneck']} bottleneck "
            f"({meta['levels']} coarse levels per latent), hidden {arch['hidden']} "
            f"{arch['activation']}, {arch['parameters']} parameters, loss {meta['loss'].upper()} "
            "in normalised space"
        ),
        "- Normalisation (inside the model, fitted robustly: median and half the 16-84% "
        "quantile width): "
        + "; ".join(
            f"{t['variable']}: {t['kind']}"
            + (f" (offset {t['offset']:.3g} GeV)" if t["kind"] == "log" and t["offset"] else "")
            for t in meta["normalisation"]
        ),
        (
            "- Domain: jets of 10 GeV to ~4 TeV, |eta| < 4.5; masses zero and slightly negative "
            "(down to -1% of the median training mass) are inside the log transform's domain; "
            "decoded pt and mass are never negative."
        ),
        "",
        "## Training",
        "",
        "Command (all of it in `tools/make_default_model.sh`):",
        "",
        "```",
        (
            "OMP_NUM_THREADS=1 hepae train --config tools/default_model.yaml "
            "-o build/default_model/default_model.pt \\"
        ),
        *_file_lines(data["files"]),
        "```",
        "",
        (
            "Data: Pythia 8 at 13 TeV, anti-kt R=0.4 jets with pT > 10 GeV and |eta| < 4.5: QCD "
            "(HardQCD:all, pTHatMin 15 GeV, phase-space bias (pT-hat/15)^5.5, 10k events, seed "
            "101), Z' 2 TeV -> qq (4k, seed 103), ttbar (4k, seed 102), W+jet and Z+jet "
            "(pTHatMin 30 GeV, bias (pT-hat/30)^3, 5k each, seeds 104, 105), and unweighted "
            "QCD pT-hat slices for the jets of 1-3 TeV, rare even in the flattened spectrum "
            "(pTHatMin 1 TeV: 2.5k events each with seeds 106 and 107; pTHatMin 1.8 TeV: 1.5k "
            "events with seed 106 and 3k with seed 108). "
            "The model is trained without the event weights on purpose: the flattened spectra "
            "and the slices spread the training over the whole pT range."
        ),
        "",
        (
            f"{data.get('n_train', data.get('n_jets'))} training and {data.get('n_validation', '?')} "
            f"validation jets (a {cfg['val_fraction']:.0%} split), streamed from the files through "
            f"a {cfg['shuffle_buffer']}-jet shuffle buffer; absurd jets left out: "
            f"{data.get('absurd', {}).get('n_train_absurd', 0)} (rule: "
            f"{data.get('absurd', {}).get('rule', 'n/a')}). "
            f"{meta['metrics']['epochs_run']} epochs, {cfg['schedule']} schedule, max lr "
            f"{cfg['lr']}, batch {cfg['batch_size']}: {meta['metrics']['seconds']:.0f} s on one "
            "thread of a shared 2-core machine."
        ),
        "",
        "## Held-out performance",
        "",
        (
            "sigma68 (half the 16-84% width) of the residual in bins of the original jet pT: "
            "relative for pt and mass, absolute for eta and phi. Held-out samples are the same "
            "processes with other seeds (201-207). Targets: 0.005 for all four; bins with fewer "
            f"than {q['min_jets_judged']} jets are shown but not judged."
        ),
    ]
    if prev:
        out += [f"In brackets: {prev_text} on the same jets."]
    out.append("")
    for name, proc in q["processes"].items():
        v = proc["verdict"]
        ratios = ", ".join(f"{x} {v.get(f'worst_over_best_{x}', float('nan')):.1f}x" for x in VARS)
        out += [
            f"### {name} (`{proc['file']}`, {proc['n_jets']} jets)",
            "",
            *_bin_table(proc, q["min_jets_judged"], (prev or {}).get("processes", {}).get(name)),
            "",
            f"Unphysical reconstructions: {proc['unphysical']}. Worst bin / best bin: {ratios}. "
            f"Bins above target: {len(v['fails'])}"
            + (f" ({'; '.join(v['fails'])})." if v["fails"] else "."),
            "",
        ]
    cost = q.get("cost")
    out += [
        "## Cost",
        "",
        f"Network: {_network(meta)}; {prev_text if prev_meta else 'no previous default given'}"
        + (_cost_text(cost, _load(q["provenance"])) if cost else "."),
        "",
        "## How the bottleneck works",
        "",
        (
            "Each float32 latent carries two learned channels: a coarse one quantised to "
            f"{meta['levels']} levels (straight-through gradients in training) and a fine "
            "continuous one in its fractional part. Encoder and decoder are ordinary learned "
            "MLPs; a plain continuous 4 -> 3 bottleneck must fold one dimension away (see "
            "`benchmarks/README.md`)."
        ),
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main(*sys.argv[1:5])
