"""``hepae demo``: the shipped model over the shipped sample through the coffea processor."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from .evaluate import evaluate
from .plotting import plot_residuals
from .run import run, save_output, summarize

__all__ = ["run_demo", "sample_path"]


def sample_path() -> Path:
    """The small NanoAOD-style Pythia QCD sample shipped in the package."""
    return Path(str(resources.files("hepae_coffea") / "data" / "sample_qcd.root"))


def run_demo(
    output: str | os.PathLike, model: str | os.PathLike | None = None, executor: str = "iterative"
) -> dict[str, Any]:
    """Run the processor with ``model`` (default: shipped) over the shipped sample.

    Writes ``results.coffea`` (and ``results.root``), ``summary.json`` and
    ``residuals.png`` into ``output``; returns the summary and the paths.
    """
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    result = run({"qcd_sample": [str(sample_path())]}, model, executor=executor, chunksize=1000)
    files = save_output(result.output, out / "results.coffea")
    summary = summarize(result.output, result.seconds)
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=1))
    files.append(summary_path)
    ev = evaluate(sample_path(), model)
    files.append(
        plot_residuals(
            ev.residuals,
            ev.variables,
            out / "residuals.png",
            title=f"shipped QCD sample, {len(ev.original)} jets",
        )
    )
    return {
        "summary": summary,
        "files": files,
        "jets_per_second": result.jets_per_second,
        "model_jets_per_second": ev.jets_per_second,
    }
