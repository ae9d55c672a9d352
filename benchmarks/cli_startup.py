"""Start-up time of the ``hepae`` command line: ``--help`` of every command.

Each command is run ``--repeat`` times as a fresh process (after one warm-up run that fills
the file cache), as hyperfine does; the figures are wall-clock seconds. For reference the
same is measured for a bare ``python -c pass`` and for ``python -c "import torch"``.
``python -X importtime`` then lists the slowest imports of ``import hepae_coffea.cli``, and
each command's ``--help`` reports the heavy packages it loaded (there should be none).

Usage::

    python benchmarks/cli_startup.py [--repeat 10] [--out benchmarks/results/cli_startup.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import ROOT, provenance, start

from hepae_coffea.cli import command_names

TARGET_S = 0.5
HEAVY = ("torch", "coffea", "dask", "uproot", "awkward", "matplotlib", "hist", "onnx", "numpy")

_LOADED = """
import sys
from hepae_coffea.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print("HEAVY:" + ",".join(sorted({{m.split(".")[0] for m in sys.modules}} & {heavy!r})))
"""


def _hepae() -> list[str]:
    """The installed ``hepae`` script beside this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("hepae")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hepae_coffea.cli"]


def time_command(argv: list[str], repeat: int) -> dict[str, float]:
    """Wall-clock seconds of ``repeat`` fresh runs of ``argv`` (after one warm-up)."""
    subprocess.run(argv, capture_output=True, check=True, cwd=ROOT)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return {
        "min": min(times),
        "median": statistics.median(times),
        "mean": statistics.fmean(times),
        "max": max(times),
        "stdev": statistics.stdev(times) if len(times) > 1 else 0.0,
        "runs": len(times),
    }


def heavy_loaded(argv: list[str]) -> list[str]:
    """Heavy packages in ``sys.modules`` after ``hepae ARGV`` (run in-process, fresh python)."""
    code = _LOADED.format(argv=argv, heavy=set(HEAVY))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    marked = [line for line in out.stdout.splitlines() if line.startswith("HEAVY:")]
    return [m for m in marked[-1].removeprefix("HEAVY:").split(",") if m]


def slowest_imports(module: str = "hepae_coffea.cli", top: int = 8) -> list[dict[str, Any]]:
    """The ``top`` imports with the largest cumulative time in ``python -X importtime``."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cum_us, name = (p.strip() for p in line.removeprefix("import time:").split("|"))
        rows.append(
            {"module": name, "self_ms": int(self_us) / 1e3, "cumulative_ms": int(cum_us) / 1e3}
        )
    rows.sort(key=lambda r: -r["cumulative_ms"])
    return rows[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per command (10)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/cli_startup.json"))
    args = parser.parse_args()
    begin = start()
    hepae = _hepae()

    cases: dict[str, list[str]] = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "hepae --help": [*hepae, "--help"],
        "hepae --version": [*hepae, "--version"],
        **{f"hepae {c} --help": [*hepae, c, "--help"] for c in command_names()},
    }
    results: dict[str, Any] = {}
    print(f"{'command':<28} {'min':>7} {'median':>7} {'max':>7}  heavy imports")
    for label, argv in cases.items():
        t = time_command(argv, args.repeat)
        entry: dict[str, Any] = {"seconds": t}
        if label.startswith("hepae"):
            entry["heavy_imports"] = heavy_loaded(argv[len(hepae) :])
            entry["under_target"] = t["median"] < TARGET_S
        results[label] = entry
        heavy = ", ".join(entry.get("heavy_imports", [])) or (
            "-" if "heavy_imports" in entry else ""
        )
        print(f"{label:<28} {t['min']:7.3f} {t['median']:7.3f} {t['max']:7.3f}  {heavy}")

    imports = slowest_imports()
    print("\nslowest imports of hepae_coffea.cli (cumulative ms):")
    for r in imports:
        print(f"  {r['module']:<40} {r['cumulative_ms']:8.1f}")

    hepae_runs = {k: v for k, v in results.items() if k.startswith("hepae")}
    worst = max(v["seconds"]["median"] for v in hepae_runs.values())
    ok = all(v["under_target"] and not v["heavy_imports"] for v in hepae_runs.values())
    print(
        f"\nslowest median: {worst:.3f} s (target < {TARGET_S} s): "
        + ("met" if ok else "NOT met")
        + f"; machine load {begin['loadavg_start']}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "target_seconds": TARGET_S,
        "repeat": args.repeat,
        "results": results,
        "slowest_imports": imports,
        "slowest_median_seconds": worst,
        "target_met": ok,
        "provenance": provenance(begin),
    }
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
