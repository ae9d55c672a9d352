"""Residual tables printed by the commands: a model's validation set and a run's datasets."""

from __future__ import annotations

from typing import Any


def print_summary(summary: dict[str, Any], title: str) -> None:
    """Print the residuals of a validation summary (training metrics) under ``title``."""
    print(f"\nresiduals ({title}):")
    print(
        f"  {'variable':>10} {'kind':>9} {'mean':>11} {'RMS':>10} {'sigma68':>10} {'|r| q99':>10}"
    )
    for v, s in summary.items():
        if v.startswith("_"):
            continue
        print(
            f"  {v:>10} {s['kind']:>9} {s['mean']:>11.3e} {s['rms']:>10.3e} "
            f"{s['sigma68']:>10.3e} {s['q99_abs']:>10.3e}"
        )
    jets = summary.get("_jets")
    if jets:
        print(f"  jets: {jets['n']}, unphysical reconstructions: {jets['unphysical']}")


def print_run_summary(summary: dict[str, Any]) -> None:
    """Print each dataset's counters, residuals and anomaly-score quantiles of a run."""
    for dataset, d in summary.items():
        if dataset.startswith("_"):
            continue
        c = d["counters"]
        print(
            f"\n{dataset}: {c['events']} events, {c['jets']} jets, {c['jets_selected']} selected, "
            f"{c.get('jets_in_domain', c['jets_selected'])} decoded, "
            f"{c.get('jets_out_of_domain', c['jets_nonfinite'])} out of the model's domain "
            f"(not decoded), {c['jets_unphysical']} unphysical"
        )
        reasons = {
            k.removeprefix("jets_out_of_domain_"): n
            for k, n in c.items()
            if k.startswith("jets_out_of_domain_") and n
        }
        if reasons:
            print("  out of domain: " + ", ".join(f"{r} {n}" for r, n in reasons.items()))
        if c.get("jets_beyond_event_jets"):
            print(
                f"  {c['jets_beyond_event_jets']} selected jets beyond the event model's "
                "leading jets were not compressed (not in the residuals)"
            )
        print(f"  {'variable':>10} {'kind':>9} {'mean':>11} {'RMS':>10} {'sigma68':>10}")
        for v, s in d["residuals"].items():
            print(
                f"  {v:>10} {s['kind']:>9} {s['mean']:>11.3e} {s['rms']:>10.3e} {s['sigma68']:>10.3e}"
            )
        for name, q in d["scores"].items():
            print(f"  {name:>16}: median {q['q50']:.3e}, 90% {q['q90']:.3e}, 99% {q['q99']:.3e}")
