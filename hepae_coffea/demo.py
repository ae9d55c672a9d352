"""``hepae demo``: the shipped model over the shipped sample, outputs to one folder."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from .evaluate import evaluate
from .plotting import plot_residuals

__all__ = ["run_demo", "sample_path"]


def sample_path() -> Path:
    """The small NanoAOD-style Pythia QCD sample shipped in the package."""
    return Path(str(resources.files("hepae_coffea") / "data" / "sample_qcd.root"))


def run_demo(output: str | os.PathLike, model: str | os.PathLike | None = None) -> dict[str, Any]:
    """Evaluate ``model`` (default: shipped) on the shipped sample; write plots and a summary."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    ev = evaluate(sample_path(), model)
    files = [
        plot_residuals(
            ev.residuals,
            ev.variables,
            out / "residuals.png",
            title=f"shipped QCD sample, {len(ev.original)} jets",
        ),
    ]
    summary_path = out / "summary.json"
    summary_path.write_text(
        json.dumps(
            {
                "summary": ev.summary,
                "n_jets": len(ev.original),
                "jets_per_second": ev.jets_per_second,
            },
            indent=1,
        )
    )
    files.append(summary_path)
    return {
        "summary": ev.summary,
        "n_jets": len(ev.original),
        "jets_per_second": ev.jets_per_second,
        "files": files,
    }
