"""Provenance recorded in every benchmark results file: commit, date, machine and load.

Each script in ``benchmarks/`` calls :func:`start` when it begins and stores
``provenance(begin)`` under the key ``"provenance"`` of the results file it writes, so every
figure quoted in ``benchmarks/README.md`` can be traced to the code and machine state that
produced it. The work tree counts as changed (``dirty``) only for tracked files outside the
benchmarks' own outputs (``benchmarks/results``, ``benchmarks/*.png``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: library files whose content decides the benchmarks' speed and quality figures
CORE_FILES = (
    "processors/compression.py",
    "hepae_coffea/processing/run.py",
    "hepae_coffea/model/cache.py",
    "hepae_coffea/processing/hists.py",
    "hepae_coffea/processing/binning.py",
    "hepae_coffea/processing/metrics.py",
    "hepae_coffea/model/normalize.py",
    "hepae_coffea/model/networks.py",
    "hepae_coffea/compress/files.py",
    "hepae_coffea/io/jets.py",
    "hepae_coffea/data/default_model.pt",
)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def code_hashes(files: tuple[str, ...] = CORE_FILES) -> dict[str, str]:
    """Short SHA-256 of each library file (missing files are left out)."""
    return {
        f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest()[:12]
        for f in files
        if (ROOT / f).exists()
    }


def start() -> dict[str, Any]:
    """The state at the start of a run: pass it to :func:`provenance` at the end."""
    return {
        "date_start": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


#: the benchmarks' own outputs, left out of the ``dirty`` test
OUTPUTS = (":(exclude)benchmarks/results", ":(exclude)benchmarks/*.png")


def _versions() -> dict[str, Any]:
    """Versions of numpy and, where the script imported them, torch (with its threads) and uproot."""
    import numpy

    out: dict[str, Any] = {"numpy": numpy.__version__}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
        out["torch_threads"] = torch.get_num_threads()
    uproot = sys.modules.get("uproot")
    if uproot is not None:
        out["uproot"] = uproot.__version__
    return out


def provenance(begin: dict[str, Any] | None = None) -> dict[str, Any]:
    """Commit (and whether the work tree had changes), date, command, machine and load.

    Parameters
    ----------
    begin
        What :func:`start` returned when the run began (start date and load); without it
        only the end of the run is recorded.
    """
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *OUTPUTS)
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
        **(begin or {}),
        "date_end": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            **_versions(),
        },
        "code": code_hashes(),
    }


def best_cpu_time(fn: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    """``fn()``'s last result and its best CPU time (``time.process_time``) of ``repeat`` runs."""
    best, res = math.inf, None
    for _ in range(repeat):
        t0 = time.process_time()
        res = fn()
        best = min(best, time.process_time() - t0)
    return res, best
