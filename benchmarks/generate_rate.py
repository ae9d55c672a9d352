"""Time Pythia 8 + FastJet sample generation (hepae_coffea.generate.pythia).

Generates QCD events (default 1000) into a temporary file and prints the rate
and where the time goes: Pythia initialisation, showering (``nextBatch``: hard
process, parton showers, hadronisation and decays), visible-particle
extraction, FastJet clustering + jet observables, and uproot writing.

Usage::

    python benchmarks/generate_rate.py [--events 1000] [--process qcd] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import provenance

from hepae_coffea.generate.pythia import PROCESSES, generate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--process", default="qcd", choices=sorted(PROCESSES))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--out", default="", help="also write the figures here (JSON)")
    args = parser.parse_args(argv)
    begin = provenance.start()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.root"
        summary = generate(
            args.process,
            args.events,
            args.seed,
            path,
            batch_size=args.batch_size,
            progress=False,
        )
        size = path.stat().st_size

    print(
        f"{summary.process}: {summary.n_events} events, {summary.n_jets} jets "
        f"({summary.n_jets / summary.n_events:.2f} jets/event), {size / 1024:.0f} KiB"
    )
    print(f"total {summary.seconds:.2f} s -> {summary.events_per_second:.1f} events/s")
    for name, seconds in summary.timings.items():
        share = 100.0 * seconds / summary.seconds
        rate = summary.n_events / seconds if seconds > 0 else float("inf")
        print(f"  {name:8s} {seconds:7.3f} s  {share:5.1f} %  ({rate:9.0f} events/s alone)")
    if args.out:
        result = {
            "process": summary.process,
            "seed": args.seed,
            "batch_size": args.batch_size,
            "events": summary.n_events,
            "jets": summary.n_jets,
            "file_bytes": size,
            "seconds": summary.seconds,
            "events_per_second": summary.events_per_second,
            "timings": summary.timings,
            "provenance": provenance.provenance(begin),
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print("wrote", args.out)


if __name__ == "__main__":
    main()
