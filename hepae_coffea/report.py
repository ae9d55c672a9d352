"""The compression report: one Markdown page with the figures, a residual table per dataset
and a verdict per variable against thresholds.

Default thresholds (sigma68 of the residual; relative for pt, mass and E, absolute for eta
and phi): pt 0.02, mass 0.02, E 0.02, eta 0.01, phi 0.01, any other variable 0.05 (relative).
A variable passes when its sigma68 is at most its threshold and the dataset has no
unphysical reconstruction.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .data import canonical_variable
from .hists import (
    RESIDUAL_RESOLUTION,
    abs_residual_stats,
    preferred_residual,
    sigma68_from_hist,
)
from .metrics import residual_kind

__all__ = ["DEFAULT_THRESHOLDS", "OTHER_THRESHOLD", "report_table", "threshold_for", "write_report"]

DEFAULT_THRESHOLDS: dict[str, float] = {
    "pt": 0.02,
    "mass": 0.02,
    "E": 0.02,
    "eta": 0.01,
    "phi": 0.01,
}
OTHER_THRESHOLD = 0.05


def threshold_for(variable: str, thresholds: Mapping[str, float] | None = None) -> float:
    """The sigma68 threshold of a variable (user value, else the documented default)."""
    user = dict(thresholds or {})
    if variable in user:
        return float(user[variable])
    canon = canonical_variable(variable)
    if canon in user:
        return float(user[canon])
    return DEFAULT_THRESHOLDS.get(canon, OTHER_THRESHOLD)


def report_table(
    outputs: Mapping[str, Any], thresholds: Mapping[str, float] | None = None
) -> dict[str, dict[str, Any]]:
    """Per dataset and variable: mean, RMS, sigma68, 99th percentile of |residual|, fractions
    beyond 1% and 5%, threshold and verdict; plus the dataset's counters."""
    out: dict[str, dict[str, Any]] = {}
    for dataset, d in outputs.items():
        if str(dataset).startswith("_"):
            continue
        counters = dict(d["counters"])
        mom = d["residual_moments"]
        rows = {}
        for i, v in enumerate(mom.axes["variable"]):
            kind = residual_kind(v)
            view = mom.view()[i, list(mom.axes["kind"]).index(kind)]
            n = float(view["count"])
            mean = float(view["value"]) if n else math.nan
            rms = (
                math.sqrt(float(view["_sum_of_deltas_squared"]) / n + mean * mean)
                if n
                else math.nan
            )
            h = preferred_residual(d["residual"], d["residual_abs"], v)
            s68 = sigma68_from_hist(h)
            tails = abs_residual_stats(h, (0.01, 0.05))
            thr = threshold_for(v, thresholds)
            ok = bool(s68 <= thr) and counters.get("jets_unphysical", 0) == 0
            rows[v] = {
                "kind": kind,
                "mean": mean,
                "rms": rms,
                "sigma68": s68,
                "q99_abs": tails["q99_abs"],
                "frac_beyond_1pct": tails["frac_beyond_0.01"],
                "frac_beyond_5pct": tails["frac_beyond_0.05"],
                "threshold": thr,
                "verdict": "PASS" if ok else "FAIL",
            }
        out[str(dataset)] = {"variables": rows, "counters": counters}
    return out


def sigma68_vs_pt(d: Mapping[str, Any]) -> list[dict[str, Any]]:
    """sigma68 per variable in octaves of the original jet pT, from ``residual_vs_pt``
    (the processor's coarse residual binning: widths are interpolated within bins of a
    factor sqrt(2)). Rows: ``{"lo", "hi", "jets", <variable>: sigma68}``, populated octaves
    only."""
    h3 = d.get("residual_vs_pt") if hasattr(d, "get") else None
    if h3 is None:
        return []
    variables = list(h3.axes["variable"])
    edges = h3.axes["pt"].edges
    rows = []
    for start in range(0, len(edges) - 1, 2):
        stop = min(start + 2, len(edges) - 1)
        row: dict[str, Any] = {"lo": float(edges[start]), "hi": float(edges[stop])}
        n = 0.0
        for v in variables:
            h = h3[{"variable": v}][start:stop:sum, :]
            n = max(n, float(h.sum(flow=True)))
            row[v] = sigma68_from_hist(h) if h.sum(flow=True) > 0 else math.nan
        row["jets"] = int(n)
        if n > 0:
            rows.append(row)
    return rows


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def _fmt_width(x: float) -> str:
    """A residual width; below the histograms' resolution it is only known to be smaller."""
    if x is not None and 0 <= x <= RESIDUAL_RESOLUTION:
        return f"<= {RESIDUAL_RESOLUTION:.2g}"
    return _fmt(x)


def write_report(
    outputs: Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    info: Mapping[str, Any] | None = None,
    figures: Mapping[str, Sequence[Path]] | None = None,
    thresholds: Mapping[str, float] | None = None,
    title: str = "Jet autoencoder compression report",
) -> Path:
    """Write ``report.md`` into ``out_dir`` (figures are linked by relative path)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = dict(info or {})
    table = report_table(outputs, thresholds)
    lines = [f"# {title}", ""]
    model = info.get("model") or {}
    if model:
        names = [v["name"] if isinstance(v, Mapping) else v for v in model.get("variables") or []]
        lines += [
            (
                f"Model: `{Path(str(model.get('path'))).name}` ({model.get('kind')}, "
                f"{model.get('bottleneck')} bottleneck), variables {', '.join(names)} -> "
                f"{model.get('latent_dim')} latents."
            ),
            "",
        ]
    if "seconds" in info:
        lines += [
            (
                f"Processed {info.get('jets')} jets in {info['seconds']:.2f} s: "
                f"{info.get('jets_per_second', float('nan')):.3g} jets/s "
                f"({info.get('executor')} executor, {info.get('schema')} schema)."
            ),
            "",
        ]
    lines += [
        (
            "Residuals: absolute, rec - orig, for eta, phi, energy fractions and counts; "
            "relative, (rec - orig)/orig, for pt, mass and other variables. sigma68 is half "
            "the 16th-84th percentile width. "
            "Verdict: PASS when sigma68 <= threshold and no reconstructed jet is unphysical "
            "(negative pt/mass/E, |phi| > pi, non-finite)."
        ),
        "",
    ]
    verdicts = []
    for dataset, t in table.items():
        c = t["counters"]
        lines += [
            f"## {dataset}",
            "",
            (
                f"{c.get('events', 0)} events, {c.get('jets', 0)} jets, {c.get('jets_selected', 0)} "
                f"selected, {c.get('jets_nonfinite', 0)} non-finite (dropped), "
                f"{c.get('jets_unphysical', 0)} unphysical reconstructions."
            ),
            "",
            (
                "| variable | residual | mean | RMS | sigma68 | 99% of abs | beyond 1% | beyond 5% "
                "| threshold | verdict |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for v, r in t["variables"].items():
            lines.append(
                f"| {v} | {r['kind']} | {_fmt(r['mean'])} | {_fmt(r['rms'])} | "
                f"{_fmt_width(r['sigma68'])} | {_fmt_width(r['q99_abs'])} | {r['frac_beyond_1pct']:.2%} | "
                f"{r['frac_beyond_5pct']:.2%} | {r['threshold']:g} | **{r['verdict']}** |"
            )
            verdicts.append(r["verdict"])
        lines.append("")
        by_pt = sigma68_vs_pt(outputs[dataset])
        if by_pt:
            names = [k for k in by_pt[0] if k not in ("lo", "hi", "jets")]
            lines += [
                (
                    "sigma68 per bin of the original jet pT (octaves of the processor's pT axis; "
                    "widths interpolated in its coarse residual bins):"
                ),
                "",
                "| pT bin (GeV) | jets | " + " | ".join(names) + " |",
                "|---|---|" + "---|" * len(names),
            ]
            lines += [
                f"| {r['lo']:.0f}-{r['hi']:.0f} | {r['jets']} | "
                + " | ".join(_fmt(r[v]) for v in names)
                + " |"
                for r in by_pt
            ]
            lines.append("")
    overall = "PASS" if verdicts and all(v == "PASS" for v in verdicts) else "FAIL"
    lines[2:2] = [
        (
            f"**Overall verdict: {overall}** ({verdicts.count('PASS')} of "
            f"{len(verdicts)} variable checks pass)."
        ),
        "",
    ]
    if figures:
        lines += ["## Figures", ""]
        for name, files in figures.items():
            png = [f for f in files if Path(f).suffix == ".png"]
            if png:
                rel = os.path.relpath(png[0], out)
                lines += [f"### {name.replace('_', ' ')}", "", f"![{name}]({rel})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
