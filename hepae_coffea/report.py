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

from .atomic import write_text_atomic
from .hists import (
    RESIDUAL_RESOLUTION,
    abs_residual_stats,
    preferred_residual,
    sigma68_from_hist,
)
from .metrics import residual_kind
from .variables import canonical_variable

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


def _domain_line(c: Mapping[str, Any]) -> str:
    """The dataset's out-of-domain count, per reason."""
    if "jets_out_of_domain" not in c:
        return "Out-of-domain jets: not counted (results of an older version)."
    reasons = {
        k.removeprefix("jets_out_of_domain_"): n
        for k, n in c.items()
        if k.startswith("jets_out_of_domain_") and n
    }
    per = " (" + ", ".join(f"{r.replace('_', ' ')}: {n}" for r, n in reasons.items()) + ")"
    return (
        f"Model's domain: {c.get('jets_in_domain', 0)} jets decoded and compared, "
        f"{c['jets_out_of_domain']} out of domain, not decoded" + (per if reasons else "") + "."
    )


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
            "The mass residual is relative to max(m, 1 GeV): near m = 0 a plain relative "
            "residual explodes. "
            "Verdict: PASS when sigma68 <= threshold and no reconstructed jet is unphysical "
            "(negative pt/mass/E, |phi| > pi, non-finite). "
            "Jets outside the model's domain (non-finite or absurd values, pt <= 0, mass "
            "below -1% of pt, values beyond the training range by more than its margin) are "
            "not decoded and not in the residuals: they are counted on their own. "
            "Values in GeV."
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
            _domain_line(c),
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
    write_text_atomic(path, "\n".join(lines))
    return path
