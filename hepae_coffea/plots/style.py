"""What every figure shares: the ATLAS style and label, axis labels, the residual-width
text, log-axis ticks, colours and saving figures atomically.

matplotlib is imported when a figure is drawn, not when this module is imported; a
non-interactive backend (Agg) is chosen unless one that writes files or draws inline in a
notebook is already active.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io.atomic import atomic_output
from ..processing.hists import RESIDUAL_RESOLUTION
from ..processing.metrics import residual_kind
from ..variables.registry import tex_label, unit_label

if TYPE_CHECKING:
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_LABEL",
    "RESOLUTION_TEXT",
    "atlas_label",
    "atlas_style",
    "below_resolution",
    "colors",
    "plain_log_ticks",
    "residual_axis_label",
    "save_figure",
    "save_single",
    "stats_text",
    "use_file_backend",
    "var_label",
]

#: the ATLAS label's default text: simulated events, not for public results
DEFAULT_LABEL = "Simulation Internal"

#: how a residual width below the histograms' resolution is written (only a bound is known)
RESOLUTION_TEXT = f"<= {RESIDUAL_RESOLUTION:.2g}"

_FILE_BACKENDS = ("agg", "pdf", "svg", "module://matplotlib_inline.backend_inline")


def use_file_backend() -> None:
    """Switch matplotlib to Agg unless the active backend writes files or draws inline."""
    import matplotlib

    if matplotlib.get_backend().lower() not in _FILE_BACKENDS:
        matplotlib.use("Agg")


def atlas_style() -> AbstractContextManager[None]:
    """A context in which new figures take mplhep's ATLAS style."""
    use_file_backend()
    import matplotlib.pyplot as plt
    import mplhep as mh

    return plt.style.context(mh.style.ATLAS)


def atlas_label(
    ax: Any, text: str = DEFAULT_LABEL, com: float = 13, lumi: float | None = None, **kw: Any
) -> None:
    """Place the ATLAS label; ``data=False`` prints "Simulation" before the rest of ``text``."""
    use_file_backend()
    import mplhep as mh

    label = text.removeprefix("Simulation").strip() if text.startswith("Simulation") else text
    mh.atlas.label(label, data=False, com=com, lumi=lumi, ax=ax, **kw)


def var_label(variable: str) -> str:
    """Axis label of a variable's values, e.g. ``$p_{T}$ [GeV]``."""
    unit = unit_label(variable)
    return f"${tex_label(variable)}$" + (f" [{unit}]" if unit else "")


def residual_axis_label(variable: str, kind: str | None = None) -> str:
    """Axis label of a variable's residual, e.g. ``(m_rec - m_orig)/m_orig``."""
    t = tex_label(variable)
    if (kind or residual_kind(variable)) == "absolute":
        unit = unit_label(variable)
        return rf"${t}^{{rec}} - {t}^{{orig}}$" + (f" [{unit}]" if unit else "")
    return rf"$({t}^{{rec}} - {t}^{{orig}}) / {t}^{{orig}}$"


def below_resolution(width: float | None) -> bool:
    """Whether a residual width is below the residual histograms' resolution (then only
    ``<= resolution`` is known)."""
    return width is not None and 0 <= width <= RESIDUAL_RESOLUTION


def stats_text(mean: float, rms: float, s68: float) -> str:
    """The mean / RMS / sigma68 box of a residual panel."""
    width = RESOLUTION_TEXT if below_resolution(s68) else f"{s68:.2e}"
    return f"mean  {mean:+.2e}\nRMS   {rms:.2e}\n$\\sigma_{{68}}$   {width}"


def colors(n: int) -> list[str]:
    """``n`` colours from the active style's cycle, repeated when ``n`` is larger."""
    use_file_backend()
    import matplotlib.pyplot as plt

    cycle: list[str] = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    return [cycle[i % len(cycle)] for i in range(n)]


def plain_log_ticks(axis: Axis, lo: float, hi: float) -> None:
    """Major ticks at 1-2-5 values inside (lo, hi) with plain labels, no minor labels
    (matplotlib labels minor ticks of a log axis spanning under two decades, which overlap)."""
    from matplotlib import ticker

    cands = np.array([m * 10.0**e for e in range(-3, 6) for m in (1, 2, 5)])
    ticks = cands[(cands > lo) & (cands < hi)]
    if ticks.size >= 2:
        axis.set_major_locator(ticker.FixedLocator(ticks.tolist()))
        axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        axis.set_minor_formatter(ticker.NullFormatter())


def save_figure(
    fig: Figure, path: str | os.PathLike[str], formats: Sequence[str] = ("png", "pdf")
) -> list[Path]:
    """Save ``fig`` as ``path`` with each suffix in ``formats``, then close it."""
    use_file_backend()
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        p = path.with_suffix("." + fmt)
        with atomic_output(p) as tmp:
            fig.savefig(tmp, dpi=90, format=fmt)
        out.append(p)
    plt.close(fig)
    return out


def save_single(fig: Figure, path: str | os.PathLike[str], dpi: int = 80) -> Path:
    """Save ``fig`` as ``path`` in the format its suffix names (PNG without one), then
    close it."""
    use_file_backend()
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
