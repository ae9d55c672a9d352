"""Processor speed: jets/s of the full processor against the same processor with the model
replaced by the identity (the cost of reading and filling alone).

Measures, on one NanoAOD-style file of at least 1M jets (``hepae generate``):

* the bare model: ``encode_decode_score`` on 1M jets in memory, 1 and 2 torch threads;
* ``hepae_coffea.processing.run.run`` with the shipped default model and with an identity model
  (same metadata, so the same histograms are filled), for
  - the iterative executor (torch's default threads, and torch limited to 1 thread),
  - Dask with 1 and 2 workers. ``dask-cold`` is what ``hepae run --executor dask`` does:
    a fresh embedded LocalCluster per run (cluster start not timed, but the workers'
    first imports of torch/coffea and the model load are). ``dask-warm`` reuses one
    cluster whose workers have already imported the processor module.

Each measurement is repeated (``--repeats``); best and median are reported. The ratio
model/identity is of wall times (identity jets/s over model jets/s); the Dask speed-up is
2-worker jets/s over 1-worker jets/s.

Usage::

    # the measurements (bare model, then every executor mode, default vs identity)
    python benchmarks/processor_speed.py --file samples/zprime_1M.root \
        --chunksizes 100000 200000 50000 --repeats 3 --out benchmarks/results/speed.json
    # where the time goes (iterative, default model)
    python benchmarks/processor_speed.py --profile --profile-out FILE      # cProfile
    python benchmarks/processor_speed.py --profile-fills --profile-out FILE  # per fill stage
    py-spy record -r 200 --format raw -o RAW -- \
        python benchmarks/processor_speed.py --pyspy-target
    python benchmarks/processor_speed.py --analyse-pyspy RAW --profile-out FILE
    # markdown tables of a results file
    python benchmarks/processor_speed.py --markdown benchmarks/results/speed.json

``--models ... identity_spread`` adds an identity model whose outputs are spread like a
real model's. Everything is measured through the library's public functions and options
(``run``, ``fill_hists`` with its per-stage ``timings``, ``in_blocks``); nothing is patched.

The machine must be otherwise idle: the script records the load average and whether
``benchmarks/quality.py`` runs, and hashes of the library files before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import provenance
import torch

from hepae_coffea.model.cache import in_blocks
from hepae_coffea.model.export import default_model_path, export_model, load_model, read_metadata

ROOT = Path(__file__).resolve().parents[1]
IDENTITY_PATH = ROOT / "build" / "speed_identity_model.pt"
_EXPORT_KEYS = ("format", "format_version", "package_version", "path")


# ---------------------------------------------------------------------------------------
# identity model


class IdentityModel(torch.nn.Module):
    """Stands in for the autoencoder: latent = first k inputs, reconstruction = a copy of
    the input, score = 0. Costs ~nothing, so a run with it times reading and filling."""

    def __init__(self, n_variables: int, latent_dim: int) -> None:
        super().__init__()
        self.n = n_variables
        self.k = latent_dim

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.k].contiguous()

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = torch.zeros([z.shape[0], self.n], dtype=z.dtype)
        out[:, : self.k] = z
        return out

    @torch.jit.export
    def score(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros([x.shape[0]], dtype=x.dtype)

    @torch.jit.export
    def encode_decode_score(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            x[:, : self.k].contiguous(),
            x.clone(),
            torch.zeros([x.shape[0]], dtype=x.dtype),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class SpreadIdentityModel(IdentityModel):
    """Identity stand-in whose outputs are spread like a real model's, at almost no cost:
    reconstruction = input x (1 + u 1e-3), u in [-1, 1) taken from the input's low digits;
    latent in [0, 1); score over ~9 decades. With the plain identity every residual is 0
    and every score 0, so each fill lands in one bin (perfectly predicted branches) and the
    fills are cheaper than with a real model's outputs; this model separates the cost of
    the model call from the cost of filling realistic values."""

    @torch.jit.export
    def encode_decode_score(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w = torch.abs(torch.frac(x * 1000.0))
        rec = x * (1.0 + 2e-3 * (w - 0.5))
        return w[:, : self.k].contiguous(), rec, torch.exp(-20.0 * w[:, 0])


SPREAD_PATH = ROOT / "build" / "speed_identity_spread_model.pt"


def build_identity_model(path: Path = IDENTITY_PATH, spread: bool = False) -> Path:
    """Export the identity model with the default model's metadata into ``build/``."""
    meta = read_metadata(default_model_path())
    meta = {k: v for k, v in meta.items() if k not in _EXPORT_KEYS}
    cls = SpreadIdentityModel if spread else IdentityModel
    module = cls(len(meta["variables"]), int(meta["latent_dim"]))
    return export_model(module, path, meta)


# ---------------------------------------------------------------------------------------
# helpers


def machine_state() -> dict[str, Any]:
    """Load average and whether the other benchmark is running (the box must be idle)."""
    try:
        other = subprocess.run(
            ["pgrep", "-f", "benchmarks/quality.py"], check=False, capture_output=True, text=True
        ).stdout.split()
    except OSError:
        other = []
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], "quality_py_pids": other}


_CODE = (
    "processors/compression.py",
    "hepae_coffea/processing/run.py",
    "hepae_coffea/model/cache.py",
    "hepae_coffea/processing/hists.py",
    "hepae_coffea/processing/metrics.py",
    "hepae_coffea/io/jets.py",
    "hepae_coffea/data/default_model.pt",
)


def code_state() -> dict[str, str]:
    """Short SHA-256 of the library files timed here (the tree is edited concurrently)."""
    import hashlib

    return {
        f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest()[:12]
        for f in _CODE
        if (ROOT / f).exists()
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"best": max(values), "median": statistics.median(values), "all": values}


def file_jets(path: str) -> tuple[int, int]:
    import awkward as ak
    import uproot

    with uproot.open(path) as f:
        t = f["Events"]
        n = t["nJet"].array(library="np") if "nJet" in t else None
        if n is None:
            n = ak.to_numpy(ak.num(t["Jet_pt"].array()))
        return int(t.num_entries), int(np.sum(n))


def read_block(path: str, n_max: int) -> np.ndarray:
    """First ``n_max`` jets of the file as a float32 (n, 4) block (pt, eta, phi, mass)."""
    import awkward as ak
    import uproot

    with uproot.open(path) as f:
        arrs = f["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"])
    cols = [ak.to_numpy(ak.flatten(arrs[c])) for c in arrs.fields]
    return np.ascontiguousarray(np.stack(cols, axis=1)[:n_max], dtype=np.float32)


# ---------------------------------------------------------------------------------------
# bare model


def bench_bare(
    path: str, repeats: int, threads_list: list[int], batches: list[int]
) -> dict[str, Any]:
    """``encode_decode_score`` on the first 1M jets of the file, in one call (batch 0) or in
    slices of ``batch`` jets."""
    x = torch.from_numpy(read_block(path, 1_000_000))
    out: dict[str, Any] = {"jets": len(x)}
    before = torch.get_num_threads()
    for label, model_path in (("default", default_model_path()), ("identity", IDENTITY_PATH)):
        module = load_model(model_path).module
        for threads in threads_list:
            torch.set_num_threads(threads)
            for batch in batches if label == "default" else [0]:
                fn = module.encode_decode_score
                with torch.inference_mode():
                    for _ in range(3):  # warm-up (TorchScript profiling executor runs)
                        in_blocks(fn, x[:100_000], block=batch or len(x))
                    rates = []
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        in_blocks(fn, x, block=batch or len(x))
                        rates.append(len(x) / (time.perf_counter() - t0))
                what = f"slices of {batch}" if batch else "one call"
                out[f"{label}/{what}/threads={threads}"] = summary(rates)
                print(
                    f"bare {label:8s} {what:16s} threads={threads}: best {max(rates):,.0f} "
                    f"jets/s, median {statistics.median(rates):,.0f} jets/s",
                    flush=True,
                )
    torch.set_num_threads(before)
    return out


# ---------------------------------------------------------------------------------------
# processor runs


def _warm_worker() -> int:
    import hepae_coffea.processors.compression  # noqa: F401  (torch, coffea, awkward)

    return os.getpid()


@contextlib.contextmanager
def torch_threads(n: int | None):
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_run(
    path: str,
    model: Path,
    chunksize: int,
    mode: str,
    client: Any = None,
    maxchunks: int | None = None,
    threads: int | None = 1,
) -> dict:
    from hepae_coffea.processing.run import run

    fileset = {"bench": {"files": {path: "Events"}}}
    if mode.startswith("iterative"):
        res = run(
            fileset,
            model,
            executor="iterative",
            chunksize=chunksize,
            maxchunks=maxchunks,
            torch_threads=threads,
        )
    elif mode.startswith("dask-cold"):
        workers = int(mode.rsplit("-", 1)[1])
        res = run(fileset, model, executor="dask", workers=workers, chunksize=chunksize)
    else:
        res = run(fileset, model, executor="dask", client=client, chunksize=chunksize)
    return {"seconds": res.seconds, "jets": res.jets, "jets_per_second": res.jets_per_second}


def bench_processor(
    path: str,
    chunksizes: list[int],
    modes: list[str],
    repeats: int,
    model_names: tuple[str, ...] = ("default", "identity"),
) -> dict[str, Any]:
    all_models = {
        "default": default_model_path(),
        "identity": IDENTITY_PATH,
        "identity_spread": SPREAD_PATH,
    }
    models = {name: all_models[name] for name in model_names}
    results: dict[str, Any] = {}
    suffix = ""
    for chunksize in chunksizes:
        for mode in modes:
            stack = contextlib.ExitStack()
            client = None
            # "iterative": torch's default threads; "iterative-1thread": run()'s default
            threads = 1 if mode == "iterative-1thread" else None
            if mode.startswith("iterative"):
                # untimed: load both models into this process's cache and let TorchScript's
                # profiling executor specialise, as any earlier chunk of a long run would
                with torch_threads(threads):
                    for model in models.values():
                        one_run(path, model, chunksize, mode, maxchunks=2, threads=threads)
            if mode.startswith("dask-warm"):
                from hepae_coffea.processing.run import dask_client

                client = stack.enter_context(dask_client(workers=int(mode.rsplit("-", 1)[1])))
                client.run(_warm_worker)
                # one untimed pass per model so each worker has loaded both models
                for model in models.values():
                    one_run(path, model, chunksize, mode, client)
            with stack, torch_threads(threads):
                runs: dict[str, list[dict]] = {name: [] for name in models}
                for _ in range(repeats):  # interleave model and identity against drift
                    for name, model in models.items():
                        r = one_run(path, model, chunksize, mode, client, threads=threads)
                        runs[name].append(r)
                        print(
                            f"chunksize={chunksize:>7d} {mode:18s} {name:8s} "
                            f"{r['seconds']:7.2f} s {r['jets_per_second']:>10,.0f} jets/s "
                            f"load {os.getloadavg()[0]:.2f}",
                            flush=True,
                        )
            entry: dict[str, Any] = {}
            for name, rs in runs.items():
                entry[name] = summary([r["jets_per_second"] for r in rs])
                entry[name]["seconds"] = [r["seconds"] for r in rs]
                entry[name]["jets"] = rs[0]["jets"]
            for other in models:
                if other != "default" and "default" in models:
                    entry[f"ratio_model_over_{other}"] = {
                        "best": entry[other]["best"] / entry["default"]["best"],
                        "median": entry[other]["median"] / entry["default"]["median"],
                    }
            results[f"{chunksize}/{mode}{suffix}"] = entry
    # speed-ups 2 workers over 1
    for chunksize in chunksizes:
        for kind in ("dask-cold", "dask-warm"):
            one = results.get(f"{chunksize}/{kind}-1{suffix}")
            two = results.get(f"{chunksize}/{kind}-2{suffix}")
            if one and two:
                for name in models:
                    two[name]["speedup_over_1_worker"] = {
                        k: two[name][k] / one[name][k] for k in ("best", "median")
                    }
    return results


def _fmt(e: dict[str, Any], name: str) -> str:
    v = e.get(name)
    return f"{v['best']:,.0f} ({v['median']:,.0f})" if v else ""


def _fmt_ratio(e: dict[str, Any], name: str) -> str:
    r = e.get(f"ratio_model_over_{name}")
    return f"{r['best']:.2f} ({r['median']:.2f})" if r else ""


def _fmt_speedup(e: dict[str, Any], name: str) -> str:
    s = e.get(name, {}).get("speedup_over_1_worker")
    return f"{s['best']:.2f} ({s['median']:.2f})" if s else ""


def print_table(results: dict[str, Any]) -> None:
    print("\njets/s best (median); ratio = model time / identity time; 2v1 = 2 over 1 worker")
    for key, e in results.items():
        parts = [f"{key:40s}", f"default {_fmt(e, 'default'):>22s}"]
        for other in ("identity", "identity_spread"):
            if other in e:
                parts.append(f"{other} {_fmt(e, other):>22s} ratio {_fmt_ratio(e, other)}")
        sp = _fmt_speedup(e, "default")
        if sp:
            parts.append(f"2v1 default {sp}, identity {_fmt_speedup(e, 'identity')}")
        print("  ".join(parts))


def markdown(results: dict[str, Any]) -> str:
    """Markdown tables of a results JSON (for benchmarks/speed.md)."""
    out = []
    bare = results.get("bare_model")
    if bare:
        out += [
            f"Bare model, `encode_decode_score` on {bare['jets']:,} jets in memory:",
            "",
            "| model | call | torch threads | best jets/s | median jets/s |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for key, v in bare.items():
            if key == "jets":
                continue
            name, what, threads = key.split("/")
            out.append(
                f"| {name} | {what} | {threads.split('=')[1]} | {v['best']:,.0f} "
                f"| {v['median']:,.0f} |"
            )
        out.append("")
    proc = results.get("processor", {})
    if proc:
        spread = any("identity_spread" in e for e in proc.values())
        head = "| chunksize | executor | default model | identity | ratio model/identity "
        sep = "| ---: | --- | ---: | ---: | ---: "
        if spread:
            head += "| identity_spread | ratio model/identity_spread "
            sep += "| ---: | ---: "
        head += "| 2 vs 1 worker: default | 2 vs 1 worker: identity |"
        sep += "| ---: | ---: |"
        out += [head, sep]
        for key, e in proc.items():
            chunksize, mode = key.split("/")
            row = (
                f"| {int(chunksize):,} | {mode} | {_fmt(e, 'default')} | {_fmt(e, 'identity')} "
                f"| {_fmt_ratio(e, 'identity')} "
            )
            if spread:
                row += f"| {_fmt(e, 'identity_spread')} | {_fmt_ratio(e, 'identity_spread')} "
            row += f"| {_fmt_speedup(e, 'default')} | {_fmt_speedup(e, 'identity')} |"
            out.append(row)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# Dask diagnostics: the allocator setting and where the chunks run


_BARE_SNIPPET = """
import sys, time, torch
sys.path.insert(0, {bench!r})
from processor_speed import read_block
from hepae_coffea.model.export import load_model
m = load_model().module
torch.set_num_threads(1)
x = torch.from_numpy(read_block({path!r}, 500_000))
with torch.inference_mode():
    for b in (500_000, 8192):
        for _ in range(3):
            m.encode_decode_score(x[:b])
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(0, len(x), b):
                m.encode_decode_score(x[i : i + b])
            ts.append(time.perf_counter() - t0)
        print(f"  {{b:>7d}} jets per call: {{len(x) / min(ts):>12,.0f}} jets/s")
"""


def dask_diagnostics(path: str, out_path: Path | None) -> None:
    """Bare model with and without ``MALLOC_TRIM_THRESHOLD_=65536`` (which distributed's
    nanny sets in its workers, and ``hepae_coffea.processing.run.dask_client`` removes)."""
    lines = ["bare model, 1 torch thread, 500k jets, best of 3 (subprocesses):"]
    code = _BARE_SNIPPET.format(bench=str(Path(__file__).parent), path=path)
    for label, trim in (("normal environment", False), ("MALLOC_TRIM_THRESHOLD_=65536", True)):
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
        if trim:
            env["MALLOC_TRIM_THRESHOLD_"] = "65536"
        res = subprocess.run(
            [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env
        )
        lines.append(f" {label}:")
        lines += [ln for ln in res.stdout.splitlines() if "jets/s" in ln]
    text = "\n".join(lines)
    print(text)
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text + "\n")


# ---------------------------------------------------------------------------------------
# profile

# (stage, function name pattern in pstats keys) -- cumulative times, so nested stages are
# reported separately and the breakdown is read top-down.
_STAGES = [
    ("run() total", ("hepae_coffea/processing/run.py", "run")),
    ("processor.process", ("compression.py", "process")),
    ("  compress_decompress_chunk", ("compression.py", "compress_decompress_chunk")),
    ("    read(): uproot + ak.flatten + to_numpy + assemble", ("compression.py", "read")),
    ("      ak.flatten (of virtual arrays)", ("awkward/operations/ak_flatten.py", "flatten")),
    ("      ak.to_numpy", ("awkward/operations/ak_to_numpy.py", "to_numpy")),
    ("    model (in_blocks: encode_decode_score)", ("model/cache.py", "in_blocks")),
    ("  make_hists", ("hists.py", "make_hists")),
    ("  fill_hists (residuals + fills)", ("compression.py", "fill_hists")),
    ("    residuals()", ("metrics.py", "residuals")),
    ("    bin indices (binning .index)", ("processing/binning.py", "index")),
    ("    np.bincount fills (add_counts)", ("processing/binning.py", "add_counts")),
    ("    np.bincount fills (add_per_column)", ("processing/binning.py", "add_per_column")),
    ("    anomaly_hists", ("anomaly_hists.py", "anomaly_hists")),
    ("  unphysical_mask", ("metrics.py", "unphysical_mask")),
    ("NanoEventsFactory.from_root", ("coffea/nanoevents/factory.py", "from_root")),
    (
        "uproot TBranch.array (read, decompress, interpret)",
        ("uproot/behaviors/TBranch.py", "array"),
    ),
    ("accumulation (coffea iadd)", ("coffea/processor/accumulator.py", "iadd")),
]


def _model_outputs(model_path: Path | None, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """(latent, reconstruction, score) of a model on ``x``, 1 torch thread, in blocks."""
    module = load_model(model_path).module
    with torch.inference_mode(), torch_threads(1):
        z, rec, sc = in_blocks(module.encode_decode_score, torch.from_numpy(x))
    return z.numpy(), rec.numpy(), sc.numpy()


def profile_fills(path: str, n_jets: int, out_path: Path | None) -> None:
    """Time each stage of ``fill_hists`` (its ``timings``) for one chunk-sized block of
    real jets and the default model's outputs (best of 3)."""
    from hepae_coffea.processing.hists import make_hists
    from hepae_coffea.processors.compression import ChunkResult, JetCompressionProcessor, fill_hists

    x = read_block(path, n_jets)
    counts = np.full(len(x) // 5, 5)
    x = x[: counts.sum()]
    proc = JetCompressionProcessor(None)

    def chunk(model_path: Path | None) -> ChunkResult:
        z, rec, sc = _model_outputs(model_path, x)
        return ChunkResult(x, rec, z, sc, counts, len(x), len(x), 0, False)

    res = chunk(None)
    best: tuple[float, dict[str, float]] | None = None
    for _ in range(3):
        out = make_hists(proc.metadata)
        spent: dict[str, float] = {}
        t0 = time.perf_counter()
        fill_hists(out, res, proc.variables, proc.metadata, spent)
        total = time.perf_counter() - t0
        if best is None or total < best[0]:
            best = (total, spent)
    assert best is not None
    total, spent = best
    lines = [
        (
            f"fill_hists on {len(x):,} jets (one 100k-event chunk) with the default model's "
            f"outputs: {total * 1e3:.0f} ms"
        ),
        "",
        f"{'stage':24s} {'ms':>7s} {'ns/jet':>7s}",
    ]
    for key, sec in sorted(spent.items(), key=lambda kv: -kv[1]):
        lines.append(f"{key:24s} {sec * 1e3:7.1f} {sec / len(x) * 1e9:7.1f}")
    lines += ["", "fill_hists time (best of 3) with each model's outputs for the same jets:"]
    for name, model_path in (
        ("default", None),
        ("identity", IDENTITY_PATH),
        ("identity_spread", SPREAD_PATH),
    ):
        r = chunk(model_path)
        times = []
        for _ in range(3):
            out = make_hists(proc.metadata)
            t0 = time.perf_counter()
            fill_hists(out, r, proc.variables, proc.metadata)
            times.append(time.perf_counter() - t0)
        lines.append(f"  {name:16s} {min(times) * 1e3:6.0f} ms")
    text = "\n".join(lines)
    print(text)
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text + "\n")


def profile_run(path: str, chunksize: int, out_path: Path | None) -> None:
    from hepae_coffea.processing.run import run

    fileset = {"bench": {"files": {path: "Events"}}}
    run(fileset, None, executor="iterative", chunksize=chunksize, maxchunks=1)  # warm imports
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    res = run(fileset, None, executor="iterative", chunksize=chunksize)
    prof.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    rows = []
    for stage, (file_pat, func) in _STAGES:
        total = 0.0
        calls = 0
        for (fname, _line, fn), (_cc, nc, _tt, ct, _callers) in stats.stats.items():
            if fn == func and file_pat in fname:
                total += ct
                calls += nc
        rows.append((stage, total, calls))
    base = rows[0][1] or res.seconds
    lines = [
        (
            f"cProfile of run(iterative, default model, chunksize={chunksize}) on {path}: "
            f"{res.jets:,} jets, {res.seconds:.2f} s in run() ({res.jets_per_second:,.0f} jets/s; "
            f"{wall:.2f} s wall with profiling), torch threads {torch.get_num_threads()}"
        ),
        "",
        f"{'stage (cumulative)':56s} {'seconds':>8s} {'% of run':>8s} {'calls':>7s}",
    ]
    for stage, total, calls in rows:
        lines.append(f"{stage:56s} {total:8.3f} {100 * total / base:7.1f}% {calls:7d}")
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(45)
    buf2 = io.StringIO()
    pstats.Stats(prof, stream=buf2).sort_stats("tottime").print_stats(30)
    text = "\n".join(lines) + "\n\n--- top by cumulative ---\n" + buf.getvalue()
    text += "\n--- top by tottime ---\n" + buf2.getvalue()
    print(text)
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text)


# py-spy: sampling profile of one iterative run, samples grouped by stage

# First matching rule wins (most specific first); a rule is (stage, substrings any of
# which must occur in the sample's stack).
_PYSPY_RULES = [
    ("model (TorchScript encode_decode_score)", ("@MODEL_LINE@", "in_blocks (")),
    ("ROOT reading (uproot: baskets, decompression, interpretation)", ("(uproot/",)),
    ("histogram creation (make_hists, per chunk)", ("make_hists (",)),
    ("histogram fills (bin indices and np.bincount)", ("(hepae_coffea/processing/binning.py",)),
    ("residuals + unphysical_mask (numpy)", ("residuals (", "unphysical_mask (")),
    ("other work in fill_hists (masks, casts, event scores)", ("fill_hists (",)),
    (
        "awkward flatten/to_numpy/unflatten + float casts (compress_decompress_chunk)",
        ("compress_decompress_chunk (",),
    ),
    ("NanoEvents construction (coffea.nanoevents)", ("(coffea/nanoevents/",)),
    ("other, inside processor.process", ("process (processors/compression.py",)),
    ("output accumulation (coffea accumulate / hist add)", ("accumulate (",)),
]


def _model_call_frame() -> str:
    """``compress_decompress_chunk (processors/compression.py:LINE)`` of the model call."""
    import hepae_coffea.processors.compression as comp

    src = Path(comp.__file__).read_text().splitlines()
    lines = [i + 1 for i, t in enumerate(src) if ".encode_decode_score(" in t]
    # newer processors call the model through model_cache.in_blocks (matched by name)
    return f"compression.py:{lines[0]})" if lines else "in_blocks ("


def _pyspy_timed_run(path: str, chunksize: int) -> Any:
    from hepae_coffea.processing.run import run

    return run({"bench": {"files": {path: "Events"}}}, None, chunksize=chunksize)


def pyspy_target(path: str, chunksize: int) -> None:
    """Warm up (imports, model load, TorchScript specialisation), then one timed run."""
    from hepae_coffea.processing.run import run

    # a small warm-up chunk, so that few uproot-thread samples belong to the warm-up
    run({"bench": {"files": {path: "Events"}}}, None, chunksize=2000, maxchunks=1)
    res = _pyspy_timed_run(path, chunksize)
    print(f"pyspy target: {res.jets:,} jets in {res.seconds:.2f} s ({res.jets_per_second:,.0f}/s)")


def analyse_pyspy(raw: Path, out_path: Path | None) -> None:
    """Group py-spy ``--format raw`` samples of the timed run by stage."""
    model_frame = _model_call_frame()
    rules = [
        (stage, tuple(p.replace("@MODEL_LINE@", model_frame) for p in pats))
        for stage, pats in _PYSPY_RULES
    ]
    totals: dict[str, int] = {}
    n_all = n_run = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        n_all += n
        if "_pyspy_timed_run (" in stack:
            stage = next((st for st, pats in rules if any(p in stack for p in pats)), None)
            stage = stage or "coffea Runner / other"
        elif "(uproot/" in stack and "importlib" not in stack and "pyspy_target (" not in stack:
            # uproot's decompression thread pool (the main thread waits, unsampled, meanwhile)
            stage = "ROOT reading, uproot worker threads (decompression)"
        else:
            continue
        n_run += n
        totals[stage] = totals.get(stage, 0) + n
    lines = [
        (
            f"py-spy samples of the timed run: {n_run} (of {n_all} in the process, rest is "
            "imports and warm-up)"
        ),
        "",
        f"{'stage':80s} {'samples':>7s} {'share':>6s}",
    ]
    for stage, n in sorted(totals.items(), key=lambda kv: -kv[1]):
        lines.append(f"{stage:80s} {n:7d} {100 * n / max(n_run, 1):5.1f}%")
    text = "\n".join(lines)
    print(text)
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text + "\n")


# ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", default=str(ROOT / "samples" / "zprime_1M.root"))
    parser.add_argument("--chunksizes", type=int, nargs="+", default=[100_000, 200_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--modes",
        nargs="+",
        default=[
            "iterative",
            "iterative-1thread",
            "dask-cold-1",
            "dask-cold-2",
            "dask-warm-1",
            "dask-warm-2",
        ],
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["default", "identity"],
        choices=["default", "identity", "identity_spread"],
    )
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--skip-processor", action="store_true")
    parser.add_argument("--min-jets", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    parser.add_argument("--profile", action="store_true", help="cProfile one iterative run")
    parser.add_argument("--profile-out", type=Path, default=None)
    parser.add_argument("--profile-fills", action="store_true", help="time each histogram's fills")
    parser.add_argument(
        "--pyspy-target",
        action="store_true",
        help="warm up, then one iterative run (run this under py-spy record --format raw)",
    )
    parser.add_argument(
        "--dask-diagnostics",
        action="store_true",
        help="bare model with and without MALLOC_TRIM_THRESHOLD_",
    )
    parser.add_argument("--analyse-pyspy", type=Path, default=None, help="py-spy raw file")
    parser.add_argument(
        "--markdown", type=Path, default=None, help="print markdown tables of a results JSON"
    )
    args = parser.parse_args(argv)

    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return

    if args.pyspy_target:
        pyspy_target(args.file, args.chunksizes[0])
        return
    if args.analyse_pyspy:
        analyse_pyspy(args.analyse_pyspy, args.profile_out)
        return

    import awkward
    import coffea
    import uproot

    build_identity_model()
    build_identity_model(SPREAD_PATH, spread=True)
    events, jets = file_jets(args.file)
    info = {
        "file": args.file,
        "events": events,
        "jets": jets,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "coffea": coffea.__version__,
        "awkward": awkward.__version__,
        "uproot": uproot.__version__,
        "cpus": os.cpu_count(),
        "torch_threads_default": torch.get_num_threads(),
        "state_before": machine_state(),
        "code_before": code_state(),
    }
    print(json.dumps(info), flush=True)
    if jets < args.min_jets:
        sys.exit(f"{args.file}: {jets} jets < {args.min_jets}")
    if info["state_before"]["quality_py_pids"]:
        print("WARNING: benchmarks/quality.py is running; timings are not on an idle machine")

    if args.profile:
        profile_run(args.file, args.chunksizes[0], args.profile_out)
        return
    if args.dask_diagnostics:
        dask_diagnostics(args.file, args.profile_out)
        return
    if args.profile_fills:
        profile_fills(args.file, 511_000, args.profile_out)
        return

    results: dict[str, Any] = {"info": info}
    if not args.skip_bare:
        results["bare_model"] = bench_bare(args.file, args.repeats, [1, 2], [0, 4096, 16384, 65536])
    if not args.skip_processor:
        results["processor"] = bench_processor(
            args.file,
            args.chunksizes,
            args.modes,
            args.repeats,
            tuple(args.models),
        )
        print_table(results["processor"])
    results["info"]["state_after"] = machine_state()
    results["info"]["code_after"] = code_state()
    if results["info"]["code_after"] != info["code_before"]:
        print("WARNING: library files changed during the benchmark; rerun")
    results["provenance"] = provenance.provenance(
        {"loadavg_start": info["state_before"]["loadavg"]}
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
