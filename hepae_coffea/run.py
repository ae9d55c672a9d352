"""Running the compression processor with coffea's Runner: iterative, futures or Dask.

:func:`run` is the Python API behind ``hepae run``: it takes a fileset (coffea's form,
``{dataset: {"files": {path: tree}}}``), a model and executor settings, and returns the
accumulated output (plain nested dicts of ``hist.Hist``) with timing figures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_output
from .data import _resolve_columns
from .errors import HepaeError, InputFileError
from .hists import hist_quantile, preferred_residual, sigma68_from_hist
from .metrics import residual_kind

__all__ = [
    "EXECUTORS",
    "RunResult",
    "build_fileset",
    "choose_schema",
    "dask_client",
    "load_output",
    "run",
    "run_info",
    "save_output",
    "split_output",
    "summarize",
]

log = logging.getLogger(__name__)

EXECUTORS = ("iterative", "futures", "dask")
_EVENT_ID = ("run", "luminosityBlock", "event")


@dataclass
class RunResult:
    """Accumulated processor output with its bookkeeping."""

    output: dict[str, Any]
    seconds: float
    executor: str
    schema: str
    skipped_files: list[str] = field(default_factory=list)

    @property
    def jets(self) -> int:
        return sum(int(d["counters"]["jets_selected"]) for d in self.output.values())

    @property
    def jets_per_second(self) -> float:
        return self.jets / self.seconds if self.seconds > 0 else float("nan")


def _read_fileset_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: a fileset must map dataset names to files")
    return data


def build_fileset(
    inputs: Sequence[str | os.PathLike] | Mapping[str, Any], tree: str = "Events"
) -> dict[str, dict[str, dict[str, str]]]:
    """Normalise inputs to coffea's fileset form ``{dataset: {"files": {path: tree}}}``.

    ``inputs`` is a fileset mapping, or a list of ROOT files (each its own dataset, named
    after the file) and/or fileset files (``.json``/``.yaml`` in coffea's form; a dataset
    may also be a plain list of paths).
    """
    raw: dict[str, Any] = {}
    if isinstance(inputs, Mapping):
        raw = dict(inputs)
    else:
        for item in inputs:
            p = Path(item)
            if p.suffix.lower() in (".json", ".yaml", ".yml"):
                if not p.exists():
                    raise InputFileError(f"{p}: fileset file not found")
                raw.update(_read_fileset_file(p))
            else:
                name = p.stem
                while name in raw:
                    name += "_"
                raw[name] = [str(p)]
    fileset: dict[str, dict[str, dict[str, str]]] = {}
    for dataset, spec in raw.items():
        files = spec.get("files", spec) if isinstance(spec, Mapping) else spec
        if isinstance(files, str):
            files = [files]
        if isinstance(files, Mapping):
            fileset[dataset] = {"files": {str(k): str(v or tree) for k, v in files.items()}}
        else:
            fileset[dataset] = {"files": {str(f): tree for f in files}}
        if not fileset[dataset]["files"]:
            raise InputFileError(f"dataset {dataset!r} has no files")
    if not fileset:
        raise InputFileError("no input files given")
    return fileset


def _check_file(path: str, tree: str, collection: str, wanted: Sequence[str]) -> None:
    """Open a file and its tree and look for the jet branches the model needs.

    Raises InputFileError (unreadable file, no tree, no jet collection) or
    MissingBranchError (a variable's branch is missing), naming the file.
    """
    import uproot

    if "://" not in path and not os.path.exists(path):
        raise InputFileError(f"{path}: file not found")
    try:
        with uproot.open(path) as f:
            if tree not in f:
                raise InputFileError(f"{path}: no tree {tree!r}; keys: {f.keys(cycle=False)}")
            keys = f[tree].keys()
    except HepaeError:
        raise
    except Exception as err:  # noqa: BLE001  (uproot raises many types for corrupt files)
        raise InputFileError(f"{path}: cannot be read as a ROOT file ({err})") from None
    jets = [k for k in keys if k.startswith(collection + "_")]
    if not jets:
        raise InputFileError(
            f"{path}:{tree}: no branches of jet collection {collection!r} "
            f"(no '{collection}_*' branch); branches: {keys[:40]}"
        )
    _resolve_columns(keys, collection + "_", wanted, f"{path}:{tree}")


def _validate(
    fileset: dict[str, Any], collection: str, wanted: Sequence[str], skip_bad_files: bool
) -> tuple[dict[str, Any], list[str]]:
    good: dict[str, Any] = {}
    skipped: list[str] = []
    for dataset, spec in fileset.items():
        files = {}
        for path, tree in spec["files"].items():
            try:
                _check_file(path, tree, collection, wanted)
                files[path] = tree
            except InputFileError as err:
                if not skip_bad_files:
                    raise
                log.warning("skipping bad file: %s", err)
                skipped.append(str(err))
        if files:
            good[dataset] = {"files": files}
    if not good:
        raise InputFileError("no readable input files left: " + "; ".join(skipped))
    return good, skipped


def choose_schema(path: str, tree: str = "Events") -> str:
    """``"nanoaod"`` when the tree has run/luminosityBlock/event branches, else ``"base"``."""
    import uproot

    with uproot.open(path) as f:
        keys = set(f[tree].keys())
    return "nanoaod" if all(k in keys for k in _EVENT_ID) else "base"


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None, workers: int = 2, timeout: float = 10.0
) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler`` if given, else an embedded LocalCluster."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{timeout}s")
        except (OSError, TimeoutError) as err:
            raise HepaeError(
                f"cannot connect to Dask scheduler {scheduler!r} within {timeout:g} s ({err})"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    import dask

    # distributed's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which makes
    # torch's allocations 2-3x slower there (benchmarks/README.md): start ours without it
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _broadcast_dask_executor(base):
    """coffea's DaskExecutor, but with the pickled processor broadcast to every worker.

    coffea submits the processor as one future that every chunk task depends on, so the
    scheduler queues all chunks on the worker holding it and the others only steal work
    (measured in benchmarks/README.md). Scattering it to all workers first lets chunks
    start everywhere at once.
    """

    class BroadcastDaskExecutor(base):
        def __call__(self, items, function, accumulator):
            if self.heavy_input is not None and len(items):
                heavy = self.client.scatter(self.heavy_input, broadcast=True, hash=False)
                items = [(item, heavy) for item in items]
                self.heavy_input = None
            return super().__call__(items, function, accumulator)

    return BroadcastDaskExecutor


def _root_cause(err: BaseException) -> BaseException:
    seen = set()
    while err.__cause__ is not None and id(err) not in seen:
        seen.add(id(err))
        err = err.__cause__
    return err


def run(
    fileset: Sequence[str | os.PathLike] | Mapping[str, Any],
    model: str | os.PathLike | bytes | None = None,
    *,
    executor: str = "iterative",
    workers: int = 2,
    scheduler: str | None = None,
    client: Any = None,
    chunksize: int = 100_000,
    maxchunks: int | None = None,
    skip_bad_files: bool = False,
    schema: str | None = None,
    collection: str = "Jet",
    fields: Mapping[str, str] | None = None,
    pt_min: float | None = None,
    abs_eta_max: float | None = None,
    status: bool = False,
    compress_dir: str | os.PathLike | None = None,
    latent_bits: int | None = None,
    device: str = "cpu",
) -> RunResult:
    """Run the compression processor over a fileset and return the accumulated output.

    Parameters
    ----------
    fileset : fileset mapping or list of paths
        See :func:`build_fileset`.
    model : path or bytes, optional
        hepae-coffea TorchScript model; the shipped default when omitted.
    executor : {"iterative", "futures", "dask"}
        coffea executor. ``dask`` uses ``client`` if given, else connects to ``scheduler``,
        else starts an embedded LocalCluster with ``workers`` worker processes.
    chunksize, maxchunks, skip_bad_files
        Passed to ``coffea.processor.Runner``.
    schema : {"nanoaod", "base"}, optional
        Chosen from the first file when omitted (NanoAOD when event-ID branches exist).
    collection, fields, pt_min, abs_eta_max
        Passed to :class:`~hepae_coffea.processors.compression.JetCompressionProcessor`.
    status : bool
        Show coffea's progress bar.
    compress_dir, latent_bits
        Also write the compressed events chunk by chunk (see the processor).
    device : {"auto", "cpu", "cuda"}
        Where each worker runs the model (``auto``: cuda when the worker has a GPU).
    """
    from coffea import processor
    from coffea.nanoevents import BaseSchema

    from .processors.compression import JetCompressionProcessor
    from .schemas import JetNanoAODSchema

    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} not in {EXECUTORS}")
    threads = None if executor == "iterative" else 1
    proc = JetCompressionProcessor(
        model,
        collection=collection,
        fields=fields,
        pt_min=pt_min,
        abs_eta_max=abs_eta_max,
        torch_threads=threads,
        compress_dir=compress_dir,
        latent_bits=latent_bits,
        device=device,
    )
    wanted = [proc.fields.get(v, v) for v in proc.variables]
    fs, skipped = _validate(build_fileset(fileset), collection, wanted, skip_bad_files)
    first_path, first_tree = next(iter(next(iter(fs.values()))["files"].items()))
    schema = schema or choose_schema(first_path, first_tree)
    if schema not in ("nanoaod", "base"):
        raise ValueError(f"schema {schema!r} not in ('nanoaod', 'base')")
    schema_cls = JetNanoAODSchema if schema == "nanoaod" else BaseSchema
    with contextlib.ExitStack() as stack:
        if executor == "iterative":
            ex = processor.IterativeExecutor(status=status)
        elif executor == "futures":
            ex = processor.FuturesExecutor(status=status, workers=workers)
        else:
            if client is None:
                client = stack.enter_context(dask_client(scheduler, workers))
            ex = _broadcast_dask_executor(processor.DaskExecutor)(client=client, status=status)
        runner = processor.Runner(
            executor=ex,
            pre_executor=processor.IterativeExecutor(status=status),
            schema=schema_cls,
            chunksize=chunksize,
            maxchunks=maxchunks,
            skipbadfiles=skip_bad_files,
        )
        t0 = time.perf_counter()
        try:
            output = runner(fs, processor_instance=proc, treename=None)
        except HepaeError:
            raise
        except Exception as err:
            cause = _root_cause(err)
            if isinstance(cause, HepaeError):
                raise type(cause)(str(cause)) from None
            raise HepaeError(f"processing failed: {err}") from err
        seconds = time.perf_counter() - t0
    return RunResult(dict(output), seconds, executor, schema, skipped)


# ---------------------------------------------------------------------------------------
# summaries and saving


def summarize(output: Mapping[str, Any], seconds: float | None = None) -> dict[str, Any]:
    """Per dataset: per-variable mean / RMS / sigma68 of the residuals (relative for pt and
    mass, absolute for eta and phi), anomaly-score quantiles and counters; with ``seconds``
    also the overall jets/s."""
    quantiles = {"q50": 0.5, "q90": 0.9, "q99": 0.99}
    total = sum(int(d["counters"]["jets_selected"]) for d in output.values())
    out: dict[str, Any] = {}
    for dataset, d in output.items():
        mom = d["residual_moments"]
        table = {}
        for i, v in enumerate(mom.axes["variable"]):
            view = mom.view()[i, 0 if residual_kind(v) == "relative" else 1]
            n = float(view["count"])
            mean = float(view["value"]) if n else float("nan")
            var = float(view["_sum_of_deltas_squared"]) / n if n else float("nan")
            table[v] = {
                "kind": residual_kind(v),
                "mean": mean,
                "rms": float(np.sqrt(var + mean * mean)) if n else float("nan"),
                "sigma68": sigma68_from_hist(
                    preferred_residual(d["residual"], d["residual_abs"], v)
                ),
            }
        scores = {}
        for name in ("score_jet", "score_event_max"):
            qs = hist_quantile(d[name], list(quantiles.values()))
            scores[name] = {k: float(x) for k, x in zip(quantiles, qs, strict=True)}
        out[dataset] = {"residuals": table, "scores": scores, "counters": dict(d["counters"])}
    if seconds:
        out["_total"] = {"jets": total, "seconds": seconds, "jets_per_second": total / seconds}
    return out


def _atomic_write(path: Path, write) -> None:
    with atomic_output(path) as tmp:
        write(tmp)


def _root_items(output: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(name, histogram without category axes) pairs for writing to ROOT."""
    for dataset, d in output.items():
        for v in d["residual"].axes["variable"]:
            yield f"{dataset}/residual_{v}", d["residual"][{"variable": v}]
            yield f"{dataset}/residual_abs_{v}", d["residual_abs"][{"variable": v}]
            yield f"{dataset}/residual_vs_pt_{v}", d["residual_vs_pt"][{"variable": v}]
        for v, h in d["distribution"].items():
            for version in ("original", "reconstructed"):
                yield f"{dataset}/{version}_{v}", h[{"version": version}]
        for name in ("score_jet", "score_event_max", "score_event_mean"):
            yield f"{dataset}/{name}", d[name]
        for k in d["latent"].axes["dim"]:
            yield f"{dataset}/latent_{k}", d["latent"][{"dim": k}]


def run_info(result: RunResult, model_metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Bookkeeping of a run, stored under ``"_run"`` in saved outputs."""
    info: dict[str, Any] = {
        "seconds": result.seconds,
        "executor": result.executor,
        "schema": result.schema,
        "jets": result.jets,
        "jets_per_second": result.jets_per_second,
        "skipped_files": list(result.skipped_files),
    }
    if model_metadata is not None:
        info["model"] = {
            k: model_metadata.get(k)
            for k in ("path", "kind", "bottleneck", "latent_dim", "variables", "package_version")
        }
    return info


def split_output(saved: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(datasets, run info) of a loaded ``.coffea`` output (keys starting with ``_`` are info)."""
    data = {k: v for k, v in saved.items() if not str(k).startswith("_")}
    return data, dict(saved.get("_run", {}))


def load_output(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a ``.coffea`` file written by :func:`save_output`: (datasets, run info)."""
    from coffea.util import load

    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: results file not found")
    try:
        saved = load(path)
    except Exception as err:  # noqa: BLE001  (lz4/cloudpickle raise many types)
        raise InputFileError(f"{path}: not a coffea output file ({err})") from None
    if not isinstance(saved, Mapping):
        raise InputFileError(f"{path}: not a hepae-coffea results file")
    data, info = split_output(saved)
    if not data or not all(isinstance(d, Mapping) and "residual" in d for d in data.values()):
        raise InputFileError(f"{path}: not a hepae-coffea results file (no residual histograms)")
    return data, info


def save_output(
    output: Mapping[str, Any], path: str | os.PathLike, info: Mapping[str, Any] | None = None
) -> list[Path]:
    """Save with ``coffea.util.save`` to ``path`` (with ``info`` under ``"_run"``) and as ROOT
    histograms beside it (``.root``), both written atomically."""
    import uproot
    from coffea.util import save

    path = Path(path)
    payload = dict(output)
    if info is not None:
        payload["_run"] = dict(info)
    _atomic_write(path, lambda tmp: save(payload, tmp))
    root_path = path.with_suffix(".root")

    def write_root(tmp: str) -> None:
        with uproot.recreate(tmp) as f:
            for name, h in _root_items(output):
                f[name] = h

    _atomic_write(root_path, write_root)
    return [path, root_path]
