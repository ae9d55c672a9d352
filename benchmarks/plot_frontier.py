"""Draw the per-variable trade-off of the loss weighting, packed vs plain bottleneck.

Usage::

    python benchmarks/plot_frontier.py [benchmarks/results/quality.json] [-o benchmarks/frontier.png]

One panel per variable: x is which variable had its loss weight raised to 4 (``none`` for
the unweighted run), y is the held-out sigma68 (relative for pt and mass, absolute for eta
and phi), log scale. Two series: the packed-bottleneck default family (``default``,
``default_w{var}4``) and the plain-bottleneck family (``default_plain``, ``plain_w{var}4``).
Dashed: the quality target; dotted: the ``hepae_reference`` row when present.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mplhep as mh

VARIABLES = ("pt", "mass", "eta", "phi")
WEIGHTED = ("none", "pt", "eta", "phi", "mass")
TARGET = {"pt": 0.02, "mass": 0.02, "eta": 0.01, "phi": 0.01}
LABEL = {
    "pt": r"$\sigma_{68}$ of $\Delta p_T / p_T$",
    "mass": r"$\sigma_{68}$ of $\Delta m / m$",
    "eta": r"$\sigma_{68}$ of $\Delta\eta$",
    "phi": r"$\sigma_{68}$ of $\Delta\phi$",
}
FAMILIES = {
    "packed (default)": ("default", "default_w{}4", "o", "tab:blue"),
    "plain": ("default_plain", "plain_w{}4", "s", "tab:orange"),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json", nargs="?", default="benchmarks/results/quality.json")
    p.add_argument("-o", "--out", default="benchmarks/frontier.png")
    p.add_argument("--dpi", type=int, default=90)
    args = p.parse_args()
    rows = {r["name"]: r for r in json.loads(Path(args.json).read_text())}
    ref = rows.get("hepae_reference")
    with plt.style.context(mh.style.ATLAS):
        fig, axes = plt.subplots(2, 2, figsize=(11, 9), sharex=True)
        for k, (ax, var) in enumerate(zip(axes.flat, VARIABLES, strict=True)):
            for i, (label, (base, fmt, marker, color)) in enumerate(FAMILIES.items()):
                xs, ys = [], []
                for j, w in enumerate(WEIGHTED):
                    name = base if w == "none" else fmt.format(w)
                    if name in rows:
                        xs.append(j + (i - 0.5) * 0.12)
                        ys.append(rows[name][f"sigma68_{var}"])
                ax.plot(xs, ys, marker=marker, color=color, ls="none", ms=8, label=label)
            ax.axhline(TARGET[var], color="k", ls="--", lw=1.2, label="target")
            if ref is not None:
                ax.axhline(
                    ref[f"sigma68_{var}"],
                    color="tab:red",
                    ls=":",
                    lw=1.6,
                    label="HEPAutoencoders recipe",
                )
            ax.set_yscale("log")
            ax.set_ylabel(LABEL[var], fontsize=15)
            ax.set_xticks(range(len(WEIGHTED)), WEIGHTED)
            ax.set_xlim(-0.5, len(WEIGHTED) - 0.5)
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo / 1.5, hi * 6)
            if k >= 2:
                ax.set_xlabel(r"variable weighted $\times 4$", fontsize=15)
            if k == 0:
                mh.atlas.label("Internal", data=False, com=13, ax=ax, fontsize=14)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=13)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        fig.savefig(args.out, dpi=args.dpi)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
