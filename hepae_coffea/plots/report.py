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

import numpy as np

from ..io.atomic import write_text_atomic
from ..processing.anomaly import DEFAULT_EPS_B, efficiency_at
from ..processing.anomaly_hists import (
    BASELINES,
    CURVES,
    has_anomaly_hists,
    rocs_from_outputs,
    sculpting_from_output,
)
from ..processing.hists import (
    abs_residual_stats,
    moments_mean_rms,
    preferred_residual,
    sigma68_from_hist,
)
from ..processing.metrics import residual_kind
from ..variables.registry import canonical_variable
from .style import RESOLUTION_TEXT, below_resolution

__all__ = [
    "DEFAULT_THRESHOLDS",
    "OTHER_THRESHOLD",
    "anomaly_section",
    "report_table",
    "threshold_for",
    "write_report",
]

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
        for v in mom.axes["variable"]:
            kind = residual_kind(v)
            mean, rms = moments_mean_rms(mom, v, kind)
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


def _fmt(x: object) -> str:
    """A number with 3 significant digits; None and NaN as ``n/a``."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def _fmt_width(x: float | None) -> str:
    """A residual width; below the histograms' resolution it is only known to be smaller."""
    if below_resolution(x):
        return RESOLUTION_TEXT
    return _fmt(x)


def write_report(
    outputs: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    info: Mapping[str, Any] | None = None,
    figures: Mapping[str, Sequence[Path]] | None = None,
    thresholds: Mapping[str, float] | None = None,
    title: str = "Jet autoencoder compression report",
    background: str | None = None,
    signal: str | None = None,
) -> Path:
    """Write ``report.md`` into ``out_dir`` (figures are linked by relative path).

    With ``background`` and ``signal`` (dataset names) the page has an "Anomaly score"
    section: the model's scores against trivial baselines at fixed background efficiency,
    and the sculpting of the background spectra."""
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
    if background and signal:
        lines += anomaly_section(outputs, background, signal)
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


def _weighted_median(counts: Sequence[float] | np.ndarray, edges: Sequence[float]) -> float:
    counts = np.asarray(counts, dtype=float)
    if counts.sum() <= 0:
        return math.nan
    cum = np.cumsum(counts) / counts.sum()
    i = int(np.searchsorted(cum, 0.5))
    prev = cum[i - 1] if i else 0.0
    frac = (0.5 - prev) / (cum[i] - prev) if cum[i] > prev else 0.5
    return float(edges[i] * (edges[i + 1] / edges[i]) ** frac)  # log-linear inside the bin


def _plain_curve(key: str) -> str:
    """A curve's display name without TeX (for Markdown)."""
    return CURVES[key].replace("$p_T$", "pT").replace("$H_T$", "HT")


def anomaly_section(
    outputs: Mapping[str, Any],
    background: str,
    signal: str,
    eps_b: Sequence[float] = DEFAULT_EPS_B,
    *,
    min_background: int = 10,
) -> list[str]:
    """Markdown lines of the "Anomaly score" section (see :func:`write_report`)."""
    rocs = rocs_from_outputs(outputs, background, signal)
    lines = [
        "## Anomaly score",
        "",
        (
            f"Background `{background}`, signal `{signal}`. Signal efficiency eps_S at fixed "
            "background efficiency eps_B for cuts on the model's scores and on trivial "
            "baselines computed from the same jets of the same events (binned: from the "
            "processor's histograms). A working point is measured only where at least "
            f"{min_background} background events pass it; otherwise the cell gives the "
            "signal efficiency of the cut that keeps no background event and the 95% CL "
            "lower limit on the rejection there. The jet score counts jets, the rest events."
        ),
        "",
        "| score | AUC | " + " | ".join(f"eps_S at eps_B = {e:g}" for e in eps_b) + " |",
        "|---|---|" + "---|" * len(eps_b),
    ]
    table = {}
    for key, roc in rocs.items():
        wps = efficiency_at(roc, eps_b, min_background=min_background)
        table[key] = wps
        name = _plain_curve(key)
        lines.append(f"| {name} | {roc.auc:.3f} | " + " | ".join(w.cell() for w in wps) + " |")
    lines.append("")
    if "score_event_max" in rocs:
        n_b = rocs["score_event_max"].n_background
        lines += [
            f"{n_b:.0f} background and {rocs['score_event_max'].n_signal:.0f} signal events.",
            "",
        ]
    base = [k for k in BASELINES if k in table]
    model = [k for k in ("score_event_max", "score_event_mean") if k in table]
    for i, e in enumerate(eps_b):
        if not base or not model or not table[model[0]][i].measurable:
            continue
        best_b = max(base, key=lambda k: table[k][i].eps_s)
        best_m = max(model, key=lambda k: table[k][i].eps_s)
        verdict = "beats" if table[best_m][i].eps_s > table[best_b][i].eps_s else "does not beat"
        lines += [
            (
                f"At eps_B = {e:g} the best model score ({_plain_curve(best_m)}, eps_S = "
                f"{table[best_m][i].eps_s:.3g}) {verdict} the best baseline "
                f"({_plain_curve(best_b)}, "
                f"eps_S = {table[best_b][i].eps_s:.3g})."
            ),
            "",
        ]
    d = outputs[background]
    if has_anomaly_hists(d):
        sc = sculpting_from_output(d, "max", (0.1, 0.01))
        for name, res in sc.items():
            label = name.replace("_", " ").replace(" pt", " pT")
            parts = []
            for eps, r in res.items():
                if r["kept"] > 0:
                    parts.append(
                        f"{_weighted_median(r['counts'], r['edges']):.3g} GeV after the cut "
                        f"for {eps:.0%} (score >= {r['threshold']:.3g}, keeping "
                        f"{r['kept'] / r['inclusive'].sum():.1%})"
                    )
            inc = next(iter(res.values()))
            lines += [
                (
                    f"Sculpting of `{background}` by the event score (max): median {label} "
                    f"{_weighted_median(inc['inclusive'], inc['edges']):.3g} GeV inclusive, "
                    + ", ".join(parts)
                    + "."
                ),
                "",
            ]
    return lines
