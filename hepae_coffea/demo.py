"""``hepae demo``: the shipped model over the shipped sample through the coffea processor."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from .io.atomic import write_text_atomic
from .model.export import read_metadata
from .model.handle import ModelSource, open_model
from .plots.plotting import plot_results
from .plots.report import write_report
from .processing.evaluate import evaluate
from .processing.run import run, run_info, save_output, summarize

__all__ = ["run_demo", "sample_path"]


def sample_path() -> Path:
    """The small NanoAOD-style Pythia QCD sample shipped in the package."""
    return Path(str(resources.files("hepae_coffea") / "data" / "sample_qcd.root"))


def run_demo(
    output: str | os.PathLike[str],
    model: ModelSource = None,
    executor: str = "iterative",
) -> dict[str, Any]:
    """Run the processor with ``model`` (default: shipped) over the shipped sample.

    Writes ``results.coffea`` (and ``results.root``), ``summary.json``, the figures in
    ``plots/`` and the compression report ``report.md`` into ``output``.
    """
    handle = open_model(model)  # the model file is read once, here
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    result = run({"qcd_sample": [str(sample_path())]}, handle, executor=executor, chunksize=1000)
    info = run_info(result, read_metadata(handle))
    files = save_output(result.output, out / "results.coffea", info)
    summary = summarize(result.output, result.seconds)
    summary_path = out / "summary.json"
    write_text_atomic(summary_path, json.dumps(summary, indent=1))
    files.append(summary_path)
    ev = evaluate(sample_path(), handle)
    figures = plot_results(result.output, out / "plots", model=handle)
    report = write_report(result.output, out, info=info, figures=figures)
    files += [report, out / "plots"]
    return {
        "summary": summary,
        "files": files,
        "jets_per_second": result.jets_per_second,
        "model_jets_per_second": ev.jets_per_second,
        "report": report,
    }
