"""Speed of ``hepae run`` against a minimal coffea job on the same file, side by side.

The input is one large NanoAOD-style file (``Events`` tree: ``run``, ``luminosityBlock``,
``event``, ``nJet`` and ``Jet_pt``/``Jet_eta``/``Jet_phi``/``Jet_mass`` as float32, ZSTD
level 5), built once into the cache folder by tiling the events of the shipped sample
(``hepae_coffea/data/sample_qcd.root``) with a small random jitter: each copy of an event
is rotated in phi by a random angle, and its jets' pt and mass are scaled by
``exp(N(0, 0.02))`` and their eta shifted by ``N(0, 0.01)``. The jets therefore have the
sample's spectra and jet multiplicities, but are not identical copies (the model's
outputs and the histograms' bins are spread as for real data).

Then, in ``--rounds`` alternating rounds (the machine may be shared: alternating and
medians keep drifts out of the ratio):

(a) a minimal coffea job: ``coffea.processor.Runner`` reading the four jet columns and
    filling one ``hist`` histogram each;
(b) ``hepae_coffea.processing.run.run`` with the default model (what ``hepae run`` calls),
    through the same executor, schema, branch filter and chunking;
(c) with ``--processes``: the whole ``hepae run FILE -o OUT`` process against a process
    running the minimal job and saving its histograms (imports, model load and the
    output files included).

Printed and written to ``--out`` (JSON, with provenance): jets/s inside the run (the time
of the Runner call), whole-process wall times, medians, the ratio (a)/(b), and the load
average around each measurement.

Usage::

    python benchmarks/run_vs_coffea.py                         # 4M jets, 5 rounds
    python benchmarks/run_vs_coffea.py --jets 200000 --rounds 1  # a quick check
    python benchmarks/run_vs_coffea.py --processes --out benchmarks/results/run_vs_coffea.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import provenance

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "hepae_coffea" / "data" / "sample_qcd.root"
COLUMNS = ("pt", "eta", "phi", "mass")
#: target of the comparison: hepae run within this factor of the minimal job
TARGET = 3.0


# ---------------------------------------------------------------------------------------
# the input file


def build_file(path: Path, n_jets: int, seed: int = 1) -> dict[str, Any]:
    """Write a NanoAOD-style file of at least ``n_jets`` jets tiled from the shipped sample
    (see the module docstring); returns its description."""
    import uproot

    with uproot.open(SAMPLE) as f:
        t = f["Events"]
        jets = t.arrays([f"Jet_{c}" for c in COLUMNS])
    counts = ak.to_numpy(ak.num(jets["Jet_pt"], axis=1)).astype(np.int64)
    flat = {c: ak.to_numpy(ak.flatten(jets[f"Jet_{c}"])).astype(np.float64) for c in COLUMNS}
    per_copy = int(counts.sum())
    copies = max(1, -(-n_jets // per_copy))
    rng = np.random.default_rng(seed)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n_events = 0
    with uproot.recreate(tmp, compression=uproot.ZSTD(5)) as out:
        tree = out.mktree(
            "Events",
            {
                "run": np.uint32,
                "luminosityBlock": np.uint32,
                "event": np.uint64,
                "Jet": ak.types.from_datashape(
                    "var * {pt: float32, eta: float32, phi: float32, mass: float32}",
                    highlevel=False,
                ),
            },
        )
        for k in range(copies):
            n_ev = len(counts)
            rot = np.repeat(rng.uniform(-np.pi, np.pi, n_ev), counts)
            pt = flat["pt"] * np.exp(rng.normal(0.0, 0.02, per_copy))
            mass = flat["mass"] * np.exp(rng.normal(0.0, 0.02, per_copy))
            eta = flat["eta"] + rng.normal(0.0, 0.01, per_copy)
            phi = np.mod(flat["phi"] + rot + np.pi, 2 * np.pi) - np.pi
            cols = {"pt": pt, "eta": eta, "phi": phi, "mass": mass}
            jet = ak.unflatten(
                ak.zip({c: cols[c].astype(np.float32) for c in COLUMNS}, depth_limit=1), counts
            )
            tree.extend(
                {
                    "run": np.ones(n_ev, np.uint32),
                    "luminosityBlock": np.full(n_ev, k + 1, np.uint32),
                    "event": np.arange(n_events + 1, n_events + n_ev + 1, dtype=np.uint64),
                    "Jet": jet,
                }
            )
            n_events += n_ev
    os.replace(tmp, path)
    return describe_file(path)


def describe_file(path: Path) -> dict[str, Any]:
    import uproot

    with uproot.open(path) as f:
        t = f["Events"]
        n_jets = int(np.sum(t["nJet"].array(library="np")))
        return {
            "path": str(path),
            "events": int(t.num_entries),
            "jets": n_jets,
            "bytes": path.stat().st_size,
            "compression": str(f.file.compression),
            "made_from": f"{SAMPLE.name} tiled with jitter (phi rotation, pt/mass x "
            "exp(N(0, 0.02)), eta + N(0, 0.01))",
        }


def input_file(cache: Path, n_jets: int) -> dict[str, Any]:
    """The cached file of ``n_jets`` (rounded up to whole copies of the sample), built if
    missing."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"nanoaod_jets_{n_jets}.root"
    if path.exists():
        return {**describe_file(path), "reused": True}
    t0 = time.perf_counter()
    info = build_file(path, n_jets)
    return {**info, "reused": False, "build_seconds": round(time.perf_counter() - t0, 2)}


# ---------------------------------------------------------------------------------------
# the two jobs

MINIMAL_AXES = {
    "pt": (80, 0.0, 2000.0),
    "eta": (100, -5.0, 5.0),
    "phi": (64, -np.pi, np.pi),
    "mass": (80, 0.0, 400.0),
}


def minimal_processor() -> Any:
    """A coffea processor reading Jet pt/eta/phi/mass and filling one histogram each."""
    import hist
    from coffea import processor

    class MinimalJets(processor.ProcessorABC):  # type: ignore[misc]
        def process(self, events: Any) -> dict[str, Any]:
            jets = events.Jet
            out: dict[str, Any] = {"jets": int(ak.sum(ak.num(jets, axis=1)))}
            for name, (n, lo, hi) in MINIMAL_AXES.items():
                h = hist.Hist(hist.axis.Regular(n, lo, hi, name=name))
                h.fill(ak.to_numpy(ak.flatten(jets[name])))
                out[name] = h
            return out

        def postprocess(self, accumulator: Any) -> Any:
            return accumulator

    return MinimalJets()


def runner(executor: str, workers: int, chunksize: int) -> Any:
    """coffea's Runner as ``hepae_coffea.processing.run.run`` builds it."""
    from coffea import processor

    from hepae_coffea.io.schemas import schema_class

    if executor == "iterative":
        ex = processor.IterativeExecutor()
    else:
        ex = processor.FuturesExecutor(workers=workers)
    return processor.Runner(
        executor=ex,
        pre_executor=processor.IterativeExecutor(),
        schema=schema_class("nanoaod"),
        chunksize=chunksize,
    )


def run_minimal(path: str, executor: str, workers: int, chunksize: int) -> dict[str, float]:
    from hepae_coffea.io.schemas import jet_branch_filter

    fileset = {"bench": {"files": {path: "Events"}}}
    r = runner(executor, workers, chunksize)
    options = {"filter_branch": jet_branch_filter("nanoaod", "Jet")}
    t0 = time.perf_counter()
    out = r(fileset, processor_instance=minimal_processor(), iteritems_options=options)
    seconds = time.perf_counter() - t0
    jets = int(out["jets"])
    return {"seconds": seconds, "jets": jets, "jets_per_second": jets / seconds}


def run_hepae(
    path: str, executor: str, workers: int, chunksize: int, model: Any, threads: int | None = 1
) -> dict[str, float]:
    from hepae_coffea.processing.run import run

    res = run(
        [path],
        model,
        executor=executor,
        workers=workers,
        chunksize=chunksize,
        torch_threads=threads,
    )
    return {"seconds": res.seconds, "jets": res.jets, "jets_per_second": res.jets_per_second}


def process_seconds(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return seconds


def minimal_script(path: str, executor: str, workers: int, chunksize: int, out: Path) -> str:
    """The minimal job as a stand-alone script that also saves its histograms."""
    return f"""
import awkward as ak, hist, numpy as np
from coffea import processor
from coffea.nanoevents import NanoAODSchema
from coffea.util import save

NanoAODSchema.warn_missing_crossrefs = False
AXES = {MINIMAL_AXES!r}

class MinimalJets(processor.ProcessorABC):
    def process(self, events):
        jets = events.Jet
        out = {{"jets": int(ak.sum(ak.num(jets, axis=1)))}}
        for name, (n, lo, hi) in AXES.items():
            h = hist.Hist(hist.axis.Regular(n, lo, hi, name=name))
            h.fill(ak.to_numpy(ak.flatten(jets[name])))
            out[name] = h
        return out

    def postprocess(self, accumulator):
        return accumulator

if __name__ == "__main__":
    ex = (processor.IterativeExecutor() if {executor!r} == "iterative"
          else processor.FuturesExecutor(workers={workers}))
    run = processor.Runner(executor=ex, schema=NanoAODSchema, chunksize={chunksize})
    out = run({{"bench": {{"files": {{{path!r}: "Events"}}}}}}, processor_instance=MinimalJets())
    save(out, {str(out)!r})
    print(out["jets"], "jets")
"""


# ---------------------------------------------------------------------------------------


def load() -> float:
    return round(os.getloadavg()[0], 2)


def median_of(rows: list[dict[str, float]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jets", type=int, default=4_000_000, help="jets in the input file")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of (a) and (b)")
    p.add_argument("--chunksize", type=int, default=100_000, help="events per chunk")
    p.add_argument("--executor", choices=["iterative", "futures"], default="iterative")
    p.add_argument("--workers", type=int, default=2, help="futures executor workers")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "hepae_run_vs_coffea",
        help="where the input file is built (and reused)",
    )
    p.add_argument("--processes", action="store_true", help="also time the whole processes")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="run()'s torch_threads (default 1, as hepae run; 0: leave torch's default)",
    )
    p.add_argument(
        "--model", type=Path, default=None, help="model file (default: the shipped model)"
    )
    p.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = p.parse_args(argv)

    begin = provenance.start()
    from hepae_coffea.model.handle import open_model

    info = input_file(args.cache_dir, args.jets)
    print(
        f"input: {info['path']}: {info['events']:,} events, {info['jets']:,} jets, "
        f"{info['bytes'] / 1e6:.1f} MB, {info['compression']}; {info['made_from']}"
        + ("" if info["reused"] else f" (built in {info['build_seconds']} s)"),
        flush=True,
    )
    path = info["path"]
    model = open_model(args.model)
    common = (args.executor, args.workers, args.chunksize)
    threads = args.torch_threads or None
    # untimed warm-up: imports, the model load and TorchScript's first (profiling) calls
    run_minimal(path, *common)
    run_hepae(path, *common, model, threads)

    rows: dict[str, list[dict[str, float]]] = {"minimal": [], "hepae": []}
    procs: dict[str, list[dict[str, float]]] = {"minimal": [], "hepae": []}
    script = args.cache_dir / "minimal_job.py"
    out_dir = Path(tempfile.mkdtemp(prefix="hepae_run_vs_coffea_out_"))
    script.write_text(minimal_script(path, *common, out_dir / "minimal.coffea"))
    hepae = [str(Path(sys.executable).with_name("hepae"))]
    hepae_cmd = [*hepae, "run", path, "-o", str(out_dir / "hepae.coffea"), "-q"]
    hepae_cmd += ["--executor", args.executor, "--workers", str(args.workers)]
    hepae_cmd += ["--chunksize", str(args.chunksize)]
    if args.model is not None:
        hepae_cmd += ["--model", str(args.model)]
    for i in range(args.rounds):
        for name in ("minimal", "hepae"):
            before = load()
            r = (
                run_minimal(path, *common)
                if name == "minimal"
                else run_hepae(path, *common, model, threads)
            )
            r = {**r, "load_before": before, "load_after": load()}
            rows[name].append(r)
            print(
                f"round {i + 1} {name:8s} in-run {r['seconds']:6.2f} s "
                f"{r['jets_per_second'] / 1e6:6.2f} M jets/s  load {before:.2f}",
                flush=True,
            )
        if args.processes:
            for name, cmd in (("minimal", [sys.executable, str(script)]), ("hepae", hepae_cmd)):
                before = load()
                s = process_seconds(cmd)
                procs[name].append({"seconds": s, "load_before": before, "load_after": load()})
                print(f"round {i + 1} {name:8s} process {s:6.2f} s  load {before:.2f}", flush=True)

    summary: dict[str, Any] = {
        name: {
            "median_jets_per_second": median_of(rs, "jets_per_second"),
            "median_seconds": median_of(rs, "seconds"),
            "jets": rs[0]["jets"],
        }
        for name, rs in rows.items()
    }
    ratio = (
        summary["minimal"]["median_jets_per_second"] / summary["hepae"]["median_jets_per_second"]
    )
    summary["ratio_in_run"] = ratio
    print(
        f"\nin the run (median of {args.rounds}): minimal coffea "
        f"{summary['minimal']['median_jets_per_second'] / 1e6:.2f} M jets/s, hepae run "
        f"{summary['hepae']['median_jets_per_second'] / 1e6:.2f} M jets/s: ratio {ratio:.2f} "
        f"(target <= {TARGET:g}: {'met' if ratio <= TARGET else 'not met'})"
    )
    if args.processes:
        for name, ps in procs.items():
            summary[f"process_{name}_median_seconds"] = median_of(ps, "seconds")
        pr = summary["process_hepae_median_seconds"] / summary["process_minimal_median_seconds"]
        summary["ratio_process"] = pr
        print(
            f"whole processes (median): minimal {summary['process_minimal_median_seconds']:.2f} s,"
            f" hepae run {summary['process_hepae_median_seconds']:.2f} s: ratio {pr:.2f}"
        )
    result = {
        "input": info,
        "settings": {
            "executor": args.executor,
            "workers": args.workers if args.executor != "iterative" else 1,
            "chunksize": args.chunksize,
            "rounds": args.rounds,
            "torch_threads": threads,
            "model": model.label,
            "model_sha256": model.sha256,
        },
        "runs": rows,
        "processes": procs if args.processes else None,
        "summary": summary,
        "provenance": provenance.provenance(begin),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
