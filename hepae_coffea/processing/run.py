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

from ..errors import HepaeError, InputFileError
from ..io.atomic import atomic_outputs
from ..io.formats import JetFormat, detect_format, tree_keys
from ..io.jets import _resolve_columns
from ..model.handle import ModelSource
from ..variables.registry import residual_kind
from .hists import hist_quantile, moments_mean_rms, preferred_residual, sigma68_from_hist

__all__ = [
    "EXECUTORS",
    "RunResult",
    "build_fileset",
    "choose_schema",
    "dask_client",
    "load_output",
    "output_paths",
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
    formats: dict[str, JetFormat] = field(default_factory=dict)  # per input file

    def format_lines(self, to_units: str = "GeV") -> list[str]:
        """The distinct one-line descriptions of the inputs' formats."""
        return list(dict.fromkeys(f.describe(to_units) for f in self.formats.values()))

    @property
    def jets(self) -> int:
        return sum(int(d["counters"]["jets_selected"]) for d in self.output.values())

    @property
    def jets_per_second(self) -> float:
        return self.jets / self.seconds if self.seconds > 0 else float("nan")


def _read_fileset_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"{path}: cannot read fileset file ({err})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise InputFileError(f"{path}: not valid YAML{at} ({problem})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputFileError(
                f"{path}: not valid JSON at line {err.lineno}, column {err.colno} ({err.msg})"
            ) from None
    if not isinstance(data, dict):
        raise InputFileError(
            f"{path}: a fileset must map dataset names to files, got {type(data).__name__}"
        )
    return data


def _dataset_files(spec: Any, tree: str | None, where: str) -> dict[str, str]:
    """``{path: tree}`` of one fileset entry (a path, a list of paths, ``{path: tree}``
    or ``{"files": ...}``); anything else is an InputFileError naming ``where``."""
    files = spec.get("files", spec) if isinstance(spec, Mapping) else spec
    if isinstance(files, str | os.PathLike):
        files = [files]
    if isinstance(files, Mapping):
        out = {}
        for k, v in files.items():
            if not isinstance(k, str) or not (v is None or isinstance(v, str)):
                raise InputFileError(
                    f"{where}: files must map paths to tree names, got {k!r}: {v!r}"
                )
            out[k] = v or tree or ""
        return out
    if isinstance(files, list | tuple):
        bad = [f for f in files if not isinstance(f, str | os.PathLike)]
        if bad:
            raise InputFileError(f"{where}: file entries must be paths, got {bad[0]!r}")
        return {str(f): tree or "" for f in files}
    raise InputFileError(
        f"{where}: expected a file path, a list of paths or {{'files': ...}}, "
        f"got {type(files).__name__} {files!r}"
    )


def build_fileset(
    inputs: Sequence[str | os.PathLike[str]] | Mapping[str, Any], tree: str | None = None
) -> dict[str, dict[str, dict[str, str]]]:
    """Normalise inputs to coffea's fileset form ``{dataset: {"files": {path: tree}}}``.

    A tree of ``""`` (no ``tree`` given) means: the tree of the file's detected format.

    ``inputs`` is a fileset mapping, or a list of ROOT files (each its own dataset, named
    after the file) and/or fileset files (``.json``/``.yaml`` in coffea's form; a dataset
    may also be a plain list of paths).
    """
    raw: dict[Any, Any] = {}
    source: dict[str, str] = {}
    if isinstance(inputs, Mapping):
        raw = dict(inputs)
        source = {str(k): "fileset" for k in raw}
    else:
        for item in inputs:
            p = Path(item)
            if p.suffix.lower() in (".json", ".yaml", ".yml"):
                if not p.exists():
                    raise InputFileError(f"{p}: fileset file not found")
                entries = _read_fileset_file(p)
                raw.update(entries)
                source.update({str(k): str(p) for k in entries})
            else:
                name = p.stem
                while name in raw:
                    name += "_"
                raw[name] = [str(p)]
                source[name] = "command line"
    fileset: dict[str, dict[str, dict[str, str]]] = {}
    for dataset, spec in raw.items():
        where = f"{source.get(str(dataset), 'fileset')}: dataset {dataset!r}"
        if not isinstance(dataset, str) or not dataset:
            raise InputFileError(f"{where}: dataset names must be non-empty strings")
        fileset[dataset] = {"files": _dataset_files(spec, tree, where)}
        if not fileset[dataset]["files"]:
            raise InputFileError(f"{where} has no files")
    if not fileset:
        raise InputFileError("no input files given")
    return fileset


def _check_file(
    path: str,
    tree: str,
    collection: str | None,
    wanted: Sequence[str],
    fmt: str | None = None,
    units: str | None = None,
) -> JetFormat:
    """Detect a file's format and look for the jet branches the model needs.

    Raises InputFileError (unreadable file, no tree, no jets) or MissingBranchError (a
    variable's branch is missing), naming the file.
    """
    found = detect_format(path, fmt=fmt, units=units, collection=collection, tree=tree or None)
    keys = tree_keys(path, found.tree or "")
    _resolve_columns(keys, found.prefix, wanted, f"{path}:{found.tree}")
    return found


def _validate(
    fileset: dict[str, Any],
    collection: str | None,
    wanted: Sequence[str],
    skip_bad_files: bool,
    fmt: str | None = None,
    units: str | None = None,
) -> tuple[dict[str, Any], list[str], dict[str, JetFormat]]:
    good: dict[str, Any] = {}
    skipped: list[str] = []
    formats: dict[str, JetFormat] = {}
    for dataset, spec in fileset.items():
        files = {}
        for path, tree in spec["files"].items():
            try:
                found = _check_file(path, tree, collection, wanted, fmt, units)
                files[path] = found.tree
                formats[path] = found
            except InputFileError as err:
                if not skip_bad_files:
                    raise
                log.warning("skipping bad file: %s", err)
                skipped.append(str(err))
        if files:
            good[dataset] = {"files": files}
    if not good:
        raise InputFileError("no readable input files left: " + "; ".join(skipped))
    layouts = {(f.schema, f.collection, f.units) for f in formats.values()}
    if len(layouts) > 1:
        shown = "; ".join(f"{p}: {f.describe()}" for p, f in list(formats.items())[:4])
        raise InputFileError(
            f"inputs of one run must share a format (schema, jet collection, units); got {shown}"
        )
    return good, skipped, formats


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
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            # failures are reported once, as a DaskRunError; not as logged tracebacks
            silence_logs=logging.CRITICAL,
        )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        # on a busy machine the nannies can take longer than distributed's default to
        # stop their workers; that is not the run's failure
        with contextlib.suppress(TimeoutError):
            cluster.close(timeout=60)


class DaskRunError(HepaeError):
    """A Dask run failed: the message says what failed and how many chunks were done."""


def _describe_dask_failure(err: BaseException) -> str:
    from concurrent.futures import CancelledError

    from distributed.scheduler import KilledWorker

    if isinstance(err, KilledWorker):
        return (
            "a chunk was lost with its worker too many times (worker killed or out of "
            "memory; the scheduler's allowed-failures was reached)"
        )
    if isinstance(err, CancelledError):
        return "the chunks were cancelled (the connection to the Dask scheduler was lost)"
    if isinstance(err, OSError | TimeoutError):
        return f"lost the connection to the Dask scheduler ({type(err).__name__}: {err})"
    cause = _root_cause(err)
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return text


def _robust_dask_executor(base: type[Any]) -> type[Any]:
    """coffea's DaskExecutor with the processor sent along with every chunk and results
    gathered as they finish.

    * Each task carries the (small, compressed) processor itself instead of depending on
      one shared future: chunks start on every worker at once (coffea's shared future
      makes the scheduler queue all chunks on the worker holding it, benchmarks/README.md)
      and a chunk whose worker dies is rescheduled on another one (distributed's
      ``retries`` and allowed-failures), with nothing left to be lost.
    * Results are accumulated here as they finish, so a failure ends the run at once with
      one :class:`DaskRunError` saying what failed and how many chunks were done; a
      connection to the scheduler lost for longer than ``lost_after`` seconds does too.
    """

    class RobustDaskExecutor(base):  # type: ignore[misc]  # base: coffea's DaskExecutor (untyped)
        lost_after: float = 20.0

        def __call__(self, items: Any, function: Any, accumulator: Any) -> Any:
            if self.use_dataframes or not len(items):
                return super().__call__(items, function, accumulator)
            from coffea.processor.accumulator import accumulate
            from coffea.processor.executor import _compression_wrapper, _decompress
            from distributed import wait

            if self.compression is not None:
                function = _compression_wrapper(self.compression, function, name=self.function_name)
            if self.heavy_input is not None:
                items = [(item, self.heavy_input) for item in items]
            futures = self.client.map(
                function, items, pure=False, retries=self.retries, priority=self.priority
            )
            total, done = len(futures), 0
            pending = set(futures)
            out = accumulator
            lost_since: float | None = None
            bar = None
            if self.status:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, desc=self.desc, unit=self.unit)
            try:
                while pending:
                    try:
                        finished, pending = wait(
                            pending, timeout=1.0, return_when="FIRST_COMPLETED"
                        )
                    except TimeoutError:  # nothing finished within the poll interval
                        finished = set()
                    for fut in finished:
                        result = fut.result()
                        if self.compression is not None:
                            result = _decompress(result)
                        out = accumulate([result], out)
                        done += 1
                        fut.release()
                        if bar is not None:
                            bar.update(1)
                    if self.client.status == "running":
                        lost_since = None
                    elif lost_since is None:
                        lost_since = time.monotonic()
                    elif time.monotonic() - lost_since > self.lost_after:
                        raise TimeoutError(
                            f"no connection to the Dask scheduler for {self.lost_after:g} s"
                        )
            except HepaeError:
                raise
            except Exception as err:
                what = _describe_dask_failure(err)
                raise DaskRunError(
                    f"Dask run failed after {done} of {total} chunks were done: {what}"
                ) from err
            finally:
                if bar is not None:
                    bar.close()
                for fut in pending:
                    fut.cancel()
            return out, 0

    return RobustDaskExecutor


def _skipping(inner: Any) -> Any:
    """Processor wrapper for ``skip_bad_files``: a chunk that fails while being read
    (a file damaged in the middle) is reported as ``{"_failed_files": {(file, why)}}``
    instead of failing the run, so the file can be left out completely afterwards."""
    from coffea import processor

    class SkipFailingFiles(processor.ProcessorABC):  # type: ignore[misc]  # coffea is untyped
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def process(self, events: Any) -> Any:
            try:
                return self.inner.process(events)
            except HepaeError:
                raise
            except Exception as err:  # noqa: BLE001  (uproot/zlib/awkward raise many types)
                meta = getattr(events, "metadata", {}) or {}
                cause = _root_cause(err)
                why = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
                name = meta.get("filename", "?")
                rng = f"[{meta.get('entrystart', '?')}:{meta.get('entrystop', '?')}]"
                return {"_failed_files": {(name, f"{type(cause).__name__} in {rng}: {why}")}}

        def postprocess(self, accumulator: Any) -> Any:
            return self.inner.postprocess(accumulator)

    return SkipFailingFiles(inner)


def _root_cause(err: BaseException) -> BaseException:
    seen = set()
    while err.__cause__ is not None and id(err) not in seen:
        seen.add(id(err))
        err = err.__cause__
    return err


def run(
    fileset: Sequence[str | os.PathLike[str]] | Mapping[str, Any],
    model: ModelSource = None,
    *,
    executor: str = "iterative",
    workers: int = 2,
    scheduler: str | None = None,
    client: Any = None,
    chunksize: int = 100_000,
    maxchunks: int | None = None,
    skip_bad_files: bool = False,
    schema: str | None = None,
    collection: str | None = None,
    fields: Mapping[str, str] | None = None,
    pt_min: float | None = None,
    abs_eta_max: float | None = None,
    status: bool = False,
    compress_dir: str | os.PathLike[str] | None = None,
    latent_bits: int | None = None,
    fmt: str | None = None,
    units: str | None = None,
    device: str = "cpu",
    codec: str | None = None,
    precision: str | None = None,
    torch_threads: int | None = 1,
) -> RunResult:
    """Run the compression processor over a fileset and return the accumulated output.

    Parameters
    ----------
    fileset : fileset mapping or list of paths
        See :func:`build_fileset`.
    model : path, bytes or ModelHandle, optional
        hepae-coffea TorchScript model; the shipped default when omitted.
    executor : {"iterative", "futures", "dask"}
        coffea executor. ``dask`` uses ``client`` if given, else connects to ``scheduler``,
        else starts an embedded LocalCluster with ``workers`` worker processes.
    chunksize, maxchunks, skip_bad_files
        Passed to ``coffea.processor.Runner``.
    schema : {"nanoaod", "physlite", "base"}, optional
        The detected format's schema when omitted.
    collection : str, optional
        Jet collection; the detected format's when omitted (``Jet`` in NanoAOD, ``Jets``
        in PHYSLITE, where ``LargeRJets`` may be chosen).
    fmt, units : str, optional
        Force a file format and/or the files' energy unit (see
        :func:`hepae_coffea.io.formats.detect_format`); values are converted to the model's
        units when read.
    fields, pt_min, abs_eta_max
        Passed to :class:`~hepae_coffea.processors.compression.JetCompressionProcessor`.
    status : bool
        Show coffea's progress bar.
    compress_dir, latent_bits, codec, precision
        Also write the compressed events chunk by chunk (see the processor), with the
        codec and precision SPEC of ``hepae compress``; each file's format is detected.
    device : {"auto", "cpu", "cuda"}
        Where each worker runs the model (``auto``: cuda when the worker has a GPU).
    torch_threads : int or None
        torch's intra-op threads in each worker (with the iterative executor: in this
        process, restored afterwards). One by default: the chunks are the unit of
        parallelism, and when the machine's cores are busy, torch's threads wait for each
        other at every operation of the small networks (a run can then be tens of times
        slower; benchmarks/README.md). None leaves torch's setting.
    """
    from coffea import processor
    from coffea.nanoevents import BaseSchema

    from ..io.schemas import jet_branch_filter, schema_class
    from ..processors.compression import JetCompressionProcessor

    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} not in {EXECUTORS}")
    for name, value, least in (("chunksize", chunksize, 1), ("workers", workers, 1)):
        if int(value) < least:
            raise ValueError(f"{name} must be >= {least}, got {value}")
    if maxchunks is not None and maxchunks < 1:
        raise ValueError(f"maxchunks must be >= 1 or None, got {maxchunks}")
    for option, given in (
        ("latent_bits", latent_bits is not None),
        ("codec", codec is not None),
        ("precision", precision is not None),
    ):
        if given and compress_dir is None:
            raise ValueError(f"{option} needs compress_dir (it applies to the compressed files)")
    if compress_dir is not None:
        from ..codecs import parse_precision
        from ..compress.choose import choose_codec

        choose_codec(codec, precision)  # an unknown codec fails before anything is read
        if precision is not None:
            parse_precision(precision)  # a bad SPEC fails before anything is read
    if torch_threads is not None and torch_threads < 1:
        raise ValueError(f"torch_threads must be >= 1 or None, got {torch_threads}")
    proc = JetCompressionProcessor(
        model,
        collection=collection or "Jet",
        fields=fields,
        pt_min=pt_min,
        abs_eta_max=abs_eta_max,
        torch_threads=torch_threads,
        compress_dir=compress_dir,
        latent_bits=latent_bits,
        device=device,
        codec=codec,
        precision=precision,
    )
    wanted = [proc.fields.get(v, v) for v in proc.variables]
    fs, skipped, formats = _validate(
        build_fileset(fileset), collection, wanted, skip_bad_files, fmt, units
    )
    if compress_dir is not None:
        proc.sources = _chunk_sources(formats, proc, collection, fmt, units)
    first = next(iter(formats.values()))
    proc.collection = first.collection
    proc.units = first.units
    schema = schema or first.schema
    schema_cls = schema_class(schema)
    if schema_cls is BaseSchema and first.schema != "base":  # flat branches: Jet_pt, ...
        proc.collection = first.prefix.rstrip("_")
    with contextlib.ExitStack() as stack:
        if executor == "iterative":
            stack.enter_context(_restore_torch_threads())
            ex = processor.IterativeExecutor(status=status)
        elif executor == "futures":
            ex = processor.FuturesExecutor(status=status, workers=workers)
        else:
            if client is None:
                client = stack.enter_context(dask_client(scheduler, workers))
            ex = _robust_dask_executor(processor.DaskExecutor)(client=client, status=status)
        runner = processor.Runner(
            executor=ex,
            pre_executor=processor.IterativeExecutor(status=status),
            schema=schema_cls,
            chunksize=chunksize,
            maxchunks=maxchunks,
            skipbadfiles=skip_bad_files,
        )
        t0 = time.perf_counter()
        keep = jet_branch_filter(schema, proc.collection)
        options = {"filter_branch": keep} if keep is not None else {}
        output = _run_runner(runner, fs, _skipping(proc) if skip_bad_files else proc, options)
        failed = output.pop("_failed_files", set())
        if failed:
            # files that failed in the middle: leave them out completely (no partial file
            # in the histograms) and run again over the rest
            bad = sorted({name for name, _ in failed})
            for name in bad:
                why = "; ".join(sorted(w for n, w in failed if n == name))
                log.warning("skipping file that failed while being read: %s (%s)", name, why)
                skipped.append(f"{name}: failed while being read ({why})")
            fs = {
                d: {"files": {f: t for f, t in spec["files"].items() if f not in bad}}
                for d, spec in fs.items()
            }
            fs = {d: spec for d, spec in fs.items() if spec["files"]}
            if not fs:
                raise InputFileError("no readable input files left: " + "; ".join(skipped))
            output = _run_runner(runner, fs, _skipping(proc), options)
            if output.pop("_failed_files", set()):
                raise InputFileError("input files failed again while being read")
        seconds = time.perf_counter() - t0
    return RunResult(dict(output), seconds, executor, schema, skipped, formats)


@contextlib.contextmanager
def _restore_torch_threads() -> Iterator[None]:
    """torch's intra-op threads of this process as they were (the iterative executor runs
    the processor, which sets them, here)."""
    import torch

    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _chunk_sources(
    formats: Mapping[str, JetFormat],
    proc: Any,
    collection: str | None,
    fmt: str | None,
    units: str | None,
) -> dict[str, dict[str, Any]]:
    """Where each file's jets are for the compressed chunks, detected once here (one line
    each, as ``hepae compress`` prints); ``--field`` names replace the format's branches."""
    from ..compress.choose import KINEMATICS
    from ..compress.files import detect_source

    variables = proc.variables if proc.codec in (None, "ae") else list(KINEMATICS)
    out = {}
    for path, found in formats.items():
        kw, _ = detect_source(
            path, variables, fmt=fmt, units=units, collection=collection, tree=found.tree
        )
        if proc.fields and "branches" in kw:
            for v, name in proc.fields.items():
                kw["branches"][v] = found.prefix + name
        out[path] = kw
    return out


def _run_runner(
    runner: Any, fileset: dict[str, Any], proc: Any, options: dict[str, Any]
) -> dict[str, Any]:
    try:
        return dict(
            runner(fileset, processor_instance=proc, treename=None, iteritems_options=options)
        )
    except HepaeError:
        raise
    except Exception as err:
        cause = _root_cause(err)
        if isinstance(cause, HepaeError):
            raise type(cause)(str(cause)) from None
        raise HepaeError(f"processing failed: {err}") from err


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
        for v in mom.axes["variable"]:
            mean, rms = moments_mean_rms(mom, v, residual_kind(v))
            table[v] = {
                "kind": residual_kind(v),
                "mean": mean,
                "rms": rms,
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
        "formats": result.format_lines(),
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


def output_paths(path: str | os.PathLike[str]) -> dict[str, Path]:
    """Every file :func:`save_output` (and ``hepae run``) writes for an output ``X.coffea``:
    the pickle, ROOT histograms ``X.root``, the safe results ``X.hists.json`` and the
    summary ``X.summary.json``."""
    from ..io.results import safe_results_path

    path = Path(path)
    return {
        "coffea": path,
        "root": path.with_suffix(".root"),
        "safe": safe_results_path(path),
        "summary": path.with_suffix(".summary.json"),
    }


def load_output(
    path: str | os.PathLike[str], *, trust_pickle: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load the results of a run: (datasets, run info).

    ``path`` is the safe results file ``X.hists.json`` (plain JSON, nothing executed) or
    the ``.coffea`` output; for the latter its ``X.hists.json`` sibling is read when it
    exists. The ``.coffea`` pickle itself is loaded only with ``trust_pickle=True``
    (unpickling can run code from the file).
    """
    from ..io.results import read_results, safe_results_path

    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: results file not found")
    is_json = path.suffix.lower() == ".json"
    if is_json or (not trust_pickle and safe_results_path(path).exists()):
        saved = read_results(path if is_json else safe_results_path(path))
        where = path if is_json else safe_results_path(path)
    else:
        from coffea.util import load

        from ..io.guards import UntrustedPickleError

        if not trust_pickle:
            raise UntrustedPickleError(
                f"{path}: is a pickle (loading it can run code) and has no "
                f"{safe_results_path(path).name} beside it; pass --trust-pickle if you "
                "trust its author"
            )
        try:
            saved = load(path)
        except Exception as err:  # noqa: BLE001  (lz4/cloudpickle raise many types)
            raise InputFileError(f"{path}: not a coffea output file ({err})") from None
        where = path
    if not isinstance(saved, Mapping):
        raise InputFileError(f"{where}: not a hepae-coffea results file")
    data, info = split_output(saved)
    if not data or not all(isinstance(d, Mapping) and "residual" in d for d in data.values()):
        raise InputFileError(f"{where}: not a hepae-coffea results file (no residual histograms)")
    return data, info


def save_output(
    output: Mapping[str, Any],
    path: str | os.PathLike[str],
    info: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Save a run's output: ``coffea.util.save`` to ``path`` (with ``info`` under
    ``"_run"``), ROOT histograms beside it (``.root``), the same histograms as safe JSON
    (``.hists.json``, readable without unpickling) and, if given, ``summary`` as
    ``.summary.json``. All are written to temporary files first and then renamed, so
    either every output appears or none does."""
    import uproot
    from coffea.util import save

    from ..io.guards import check_outputs
    from ..io.results import write_results

    paths = output_paths(path)
    if summary is None:
        del paths["summary"]
    check_outputs([], paths.values())
    payload = dict(output)
    if info is not None:
        payload["_run"] = dict(info)
    with atomic_outputs(list(paths.values())) as tmps:
        tmp = dict(zip(paths, tmps, strict=True))
        save(payload, tmp["coffea"])
        with uproot.recreate(tmp["root"]) as f:
            for name, h in _root_items(output):
                f[name] = h
        write_results(payload, tmp["safe"])
        if summary is not None:
            Path(tmp["summary"]).write_text(json.dumps(summary, indent=1))
    return list(paths.values())
