"""Per-variable physics normalisation with exact inverses, as fixed torch buffers.

Each jet variable gets a transform, chosen from the training data unless overridden:

``log``       ``(log(x + offset) - center) / scale``; default for pt, mass and E.
``standard``  ``(x - center) / scale`` with the data's mean and standard deviation.
``scale:S``   ``x / S`` (e.g. ``scale:3`` for eta).
``angle``     two columns, ``cos x`` and ``sin x``, decoded with ``atan2``; default for phi.
``periodic``  ``x / pi`` as is; decoded values are wrapped into (-pi, pi].
``identity``  ``x`` unchanged.
``onehot``    for discrete variables (e.g. constituent counts): K one-hot columns for the
              values ``min .. min + K - 1`` of the training data (``onehot:K`` sets K),
              decoded as the most probable value (trained with a cross-entropy loss for the
              block under MSE). The encoder also sees the value scaled to [0, 1); values
              outside the range are encoded as the nearest end.

Centres and scales are fitted robustly (median and half the 16-84% quantile width, see
:func:`fit_transforms`): absurd jets (pt <= 0, 1e30, ...) are counted, reported and left
out instead of setting the scale. Masses may be zero or slightly negative (down to -1% of
the median mass, as reconstruction writes them): the log transform then has an offset.

Variables whose training values are all >= 0 are clamped at zero on the way out, so
decoded pt, mass and E are never negative; non-kinematic variables whose training values
all lie in [0, 1] (energy fractions, ptD) are also clamped at 1 (``unit``); integer-valued
variables (constituent counts) are rounded to whole numbers. For the BCE loss every normalised column is
further mapped onto [0, 1] with the training range (plus a margin).
"""

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..variables.registry import VARIABLES, canonical_variable, nonnegative_energy

__all__ = [
    "MAX_ROBUST_Z",
    "TRANSFORM_KINDS",
    "FitReport",
    "Normalizer",
    "VariableTransform",
    "choose_transforms",
    "fit_transforms",
    "robust_center_scale",
]

log = logging.getLogger(__name__)

TRANSFORM_KINDS = ("log", "standard", "scale", "angle", "periodic", "identity", "onehot")
#: largest one-hot block (values per discrete variable)
MAX_ONEHOT = 1024
_KINEMATIC = frozenset(VARIABLES)


@dataclass(frozen=True)
class VariableTransform:
    """The transform of one variable (all numbers in physical units)."""

    variable: str
    kind: str
    center: float = 0.0
    scale: float = 1.0
    offset: float = 0.0
    nonneg: bool = False
    integer: bool = False
    unit: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _parse_override(spec: str, variable: str) -> tuple[str, float | None]:
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in TRANSFORM_KINDS:
        raise ValueError(
            f"unknown transform {spec!r} for variable {variable!r}; choose from {TRANSFORM_KINDS}"
        )
    if arg:
        try:
            value = float(arg)
        except ValueError:
            raise ValueError(
                f"transform {spec!r} for {variable!r}: {arg!r} is not a number"
            ) from None
        if not value > 0:
            raise ValueError(f"transform {spec!r} for {variable!r}: scale must be > 0")
        return kind, value
    return kind, None


#: a jet is "absurd" when a variable lies more than this many robust widths from the median
MAX_ROBUST_Z = 20.0
#: log variables: values at or below this fraction of the median get an offset
_SMALL_FRACTION = 0.01


@dataclass
class FitReport:
    """Which training jets the normalisation fit left out, and why.

    Attributes
    ----------
    n_jets : int
        Jets offered to the fit.
    keep : numpy.ndarray
        Boolean mask of the jets used (and the jets a trainer should train on).
    by_variable : dict of str to int
        Jets flagged per variable (a jet can be flagged by several).
    rule : str
        The rule applied, in words.
    """

    n_jets: int
    keep: np.ndarray
    by_variable: dict[str, int]
    rule: str

    @property
    def n_absurd(self) -> int:
        return int(self.n_jets - int(self.keep.sum()))

    def to_dict(self) -> dict[str, object]:
        return {
            "n_jets": self.n_jets,
            "n_absurd": self.n_absurd,
            "by_variable": dict(self.by_variable),
            "rule": self.rule,
        }


def robust_center_scale(t: np.ndarray) -> tuple[float, float]:
    """Median and half the 15.87-84.13% quantile distance (the sigma of a Gaussian).

    A handful of absurd values moves neither, unlike the mean and standard deviation.
    Returns scale 1.0 when the quantiles coincide (a constant column).
    """
    q16, med, q84 = np.quantile(t, [0.15865525, 0.5, 0.84134475])
    scale = 0.5 * float(q84 - q16)
    if not (np.isfinite(scale) and scale > 0):
        scale = 1.0
    return float(med), scale


def _domain_ok(x: np.ndarray, canon: str) -> np.ndarray:
    """Physical domain of the log-default variables: pt and E > 0; mass > -1% of its median
    (reconstruction writes zero and slightly negative masses)."""
    if canon in ("pt", "E"):
        return x > 0
    if canon == "mass":
        pos = x[x > 0]
        tol = _SMALL_FRACTION * float(np.median(pos)) if len(pos) else 0.0
        return x > -tol
    return np.ones(len(x), dtype=bool)


def _robust_z(x: np.ndarray, use_log: bool) -> np.ndarray:
    t = (
        np.log(np.maximum(x, 0.0) + max(_SMALL_FRACTION * float(np.median(x)), 1e-6))
        if use_log
        else x
    )
    center, scale = robust_center_scale(t)
    return np.abs(t - center) / scale


def fit_transforms(
    values: np.ndarray,
    variables: Sequence[str],
    overrides: Mapping[str, str] | None = None,
    integers: Sequence[str] | None = None,
    *,
    max_z: float = MAX_ROBUST_Z,
) -> tuple[list[VariableTransform], FitReport]:
    """Fit each variable's transform robustly and flag absurd jets.

    Rule: a jet is absurd (left out of the fit, counted in the report) when a
    kinematic variable is outside its physical domain (pt, E <= 0; mass below
    -1% of the median mass), when phi is beyond 4 pi, or when another kinematic variable lies
    more than ``max_z`` robust widths (half the 16-84% quantile distance) from the
    median, in log space for pt, mass and E. Centres and scales then come from the
    median and the quantile width of the remaining jets.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n_jets, n_variables)`` training values in physical units.
    variables, overrides, integers
        As for :func:`choose_transforms`.
    max_z : float
        Robust-width threshold of the rule.

    Returns
    -------
    (list of VariableTransform, FitReport)
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(variables):
        raise ValueError(f"values must have shape (n_jets, {len(variables)}), got {values.shape}")
    keep = np.all(np.isfinite(values), axis=1)
    by_var: dict[str, int] = {}
    override_kinds = {k: v.partition(":")[0].strip().lower() for k, v in (overrides or {}).items()}
    for i, var in enumerate(variables):
        canon = canonical_variable(var)
        kind = override_kinds.get(var)
        if kind == "onehot":
            continue
        x = values[:, i]
        bad = ~np.isfinite(x)
        fin = x[np.isfinite(x)]
        if nonnegative_energy(canon) and kind in (None, "log"):
            bad |= ~_domain_ok(np.where(np.isfinite(x), x, 0.0), canon)
        if canon == "phi":
            bad |= np.abs(np.where(np.isfinite(x), x, 0.0)) > 4 * math.pi
        elif len(fin) and canon in _KINEMATIC:
            use_log = (
                nonnegative_energy(canon) and kind in (None, "log") and float(np.median(fin)) > 0
            )
            ok = ~bad
            z = np.zeros(len(x))
            if ok.any():
                z[ok] = _robust_z(x[ok], use_log)
            bad |= z > max_z
        n_bad = int((bad & np.isfinite(values).all(axis=1)).sum())
        if n_bad:
            by_var[var] = n_bad
        keep &= ~bad
    transforms = _fit(values[keep], variables, overrides, integers) if keep.any() else None
    if transforms is None:
        raise ValueError(f"no jet passes the normalisation rule ({ABSURD_RULE}); flagged: {by_var}")
    bad, by_var = flag_absurd(values, transforms, max_z=max_z)
    keep = ~bad
    rule = ABSURD_RULE.format(max_z=max_z)
    report = FitReport(len(values), keep, by_var, rule)
    if not keep.any():
        raise ValueError(f"no jet passes the normalisation rule ({rule}); flagged: {by_var}")
    if report.n_absurd:
        log.warning(
            "%d of %d training jets flagged as absurd and left out (%s): %s",
            report.n_absurd,
            report.n_jets,
            rule,
            by_var,
        )
    return transforms, report


ABSURD_RULE = (
    "non-finite; pt, E <= 0; mass below -1% of the median mass; |phi| > 4 pi; or a kinematic "
    "variable more than {max_z:g} widths from its fitted centre (log space for pt, mass, E)"
)


def flag_absurd(
    values: np.ndarray, transforms: Sequence[VariableTransform], *, max_z: float = MAX_ROBUST_Z
) -> tuple[np.ndarray, dict[str, int]]:
    """Jets outside the fitted domain (the rule of :data:`ABSURD_RULE`).

    Returns
    -------
    (numpy.ndarray, dict)
        Boolean mask of absurd jets and the number flagged per variable.
    """
    values = np.asarray(values, dtype=np.float64)
    bad = np.zeros(len(values), dtype=bool)
    by_var: dict[str, int] = {}
    for i, t in enumerate(transforms):
        x = values[:, i]
        canon = canonical_variable(t.variable)
        finite = np.isfinite(x)
        flag = ~finite
        xf = np.where(finite, x, 0.0)
        if t.kind == "log":
            if canon in ("pt", "E"):
                flag |= xf <= 0
            flag |= xf + t.offset <= 0.5 * t.offset  # mass: down to -offset/2 = -1% of median
            lx = np.log(np.maximum(xf + t.offset, 1e-300))
            flag |= np.abs(lx - t.center) > max_z * t.scale
        elif t.kind in ("angle", "periodic"):
            flag |= np.abs(xf) > 4 * math.pi
        elif t.kind == "standard" and canon in _KINEMATIC:
            flag |= np.abs(xf - t.center) > max_z * t.scale
        n = int(flag.sum())
        if n:
            by_var[t.variable] = n
        bad |= flag
    return bad, by_var


def choose_transforms(
    values: np.ndarray,
    variables: Sequence[str],
    overrides: Mapping[str, str] | None = None,
    integers: Sequence[str] | None = None,
) -> list[VariableTransform]:
    """Choose each variable's transform from training data (robustly).

    Parameters
    ----------
    values : numpy.ndarray
        ``(n_jets, n_variables)`` training values in physical units.
    variables : sequence of str
        Names of the columns.
    overrides : mapping, optional
        ``{variable: kind}`` with kinds from :data:`TRANSFORM_KINDS` (``scale:3`` allowed).
    integers : sequence of str, optional
        Variables decoded as integers (rounded). By default every variable other than the
        kinematics whose training values are all whole numbers (e.g. constituent counts).

    Notes
    -----
    Absurd jets (see :func:`fit_transforms`) are left out of the fit and logged.
    """
    return fit_transforms(values, variables, overrides, integers)[0]


def _fit(
    values: np.ndarray,
    variables: Sequence[str],
    overrides: Mapping[str, str] | None = None,
    integers: Sequence[str] | None = None,
) -> list[VariableTransform]:
    """Transforms fitted on jets already cleaned of absurd values (median, quantile width)."""
    overrides = dict(overrides or {})
    integer_vars = {str(v) for v in (integers or [])}
    unknown = set(overrides) - set(variables)
    if unknown:
        raise ValueError(
            f"transform given for unknown variable(s) {sorted(unknown)}; have {list(variables)}"
        )
    out = []
    for i, var in enumerate(variables):
        x = np.asarray(values[:, i], dtype=np.float64)
        canon = canonical_variable(var)
        med = float(np.median(x))
        # slightly negative masses (reconstruction rounding) still take the log
        loggable = bool(x.min() > 0) or (
            nonnegative_energy(canon) and med > 0 and bool(x.min() > -_SMALL_FRACTION * med)
        )
        nonneg = bool(x.min() >= 0) or (nonnegative_energy(canon) and loggable)
        if var in overrides:
            kind, arg = _parse_override(overrides[var], var)
        elif nonnegative_energy(canon) and loggable:
            kind, arg = "log", None
        elif canon == "phi":
            kind, arg = "angle", None
        else:
            kind, arg = "standard", None
        if kind == "log":
            if not (loggable or x.min() >= 0):
                raise ValueError(f"log transform for {var!r} needs values >= 0, min is {x.min()}")
            # an offset only where tiny values would blow up the logarithm (e.g. mass ~ 0);
            # twice the 1% tolerance, so slightly negative values stay inside the log's domain
            small = _SMALL_FRACTION * max(med, 0.0)
            offset = 0.0 if x.min() > small else max(2.0 * small, 1e-6)
            center, scale = robust_center_scale(np.log(x + offset))
            out.append(VariableTransform(var, "log", center, scale, offset, True))
        elif kind == "standard":
            if canon in _KINEMATIC:
                center, scale = robust_center_scale(x)
            else:  # fractions, counts: often a spike at 0, where quantile widths vanish
                center, scale = float(x.mean()), float(x.std() or 1.0)
            out.append(VariableTransform(var, "standard", center, scale, 0.0, nonneg))
        elif kind == "scale":
            scale = arg if arg is not None else float(np.abs(x).max() or 1.0)  # absurd jets removed
            out.append(VariableTransform(var, "scale", 0.0, scale, 0.0, nonneg))
        elif kind == "periodic":
            out.append(VariableTransform(var, "periodic", 0.0, math.pi, 0.0, False))
        elif kind == "angle":
            out.append(VariableTransform(var, "angle", 0.0, 1.0, 0.0, False))
        elif kind == "onehot":
            if not np.all(x == np.round(x)):
                bad = x[x != np.round(x)][0]
                raise ValueError(
                    f"onehot transform for {var!r} needs whole-number values, found {bad}"
                )
            lo = float(x.min())
            size = int(arg) if arg is not None else int(x.max() - lo) + 1
            if not 2 <= size <= MAX_ONEHOT:
                raise ValueError(
                    f"onehot transform for {var!r}: {size} values (min {lo:g}, max "
                    f"{x.max():g}); must be 2 to {MAX_ONEHOT}"
                )
            out.append(VariableTransform(var, "onehot", lo, float(size), 0.0, nonneg, True))
        else:
            out.append(VariableTransform(var, "identity", 0.0, 1.0, 0.0, nonneg))
        whole = canon not in _KINEMATIC and bool(np.all(x == np.round(x)))
        if var in integer_vars or (integers is None and whole):
            out[-1] = replace(out[-1], integer=True)
        elif canon not in _KINEMATIC and nonneg and x.max() <= 1.0 and kind != "angle":
            out[-1] = replace(out[-1], unit=True)  # a fraction: decoded within [0, 1]
    return out


def _wrap_angle(x: torch.Tensor) -> torch.Tensor:
    """Wrap into (-pi, pi]; values already inside are returned unchanged (bit for bit)."""
    two_pi = 2.0 * math.pi
    r = x - two_pi * torch.ceil((x - math.pi) / two_pi)
    # the rounding of the product can leave r just outside: fold it back (exact steps)
    r = torch.where(r > math.pi, r - two_pi, r)
    r = torch.where(r <= -math.pi, r + two_pi, r)
    return torch.where((x > -math.pi) & (x <= math.pi), x, r)


class Normalizer(nn.Module):
    """Physical values <-> normalised network space; TorchScript-compatible.

    The normalised layout has one column per variable (``cos`` for angle variables),
    followed by one ``sin`` column per angle variable, then the one-hot block of each
    ``onehot`` variable.
    """

    unit_mapped: bool
    onehot_var: list[int]  # TorchScript reads these annotations (no __future__ import here)
    onehot_start: list[int]
    onehot_size: list[int]
    logged: list[bool]  # per variable: its transform is log
    angled: list[bool]  # angle (a cos and a sin column)
    wrapped: list[bool]  # periodic (wrapped into (-pi, pi] on the way out)
    one_hot: list[bool]  # onehot
    floored: list[bool]  # per variable: clamped at zero on the way out
    capped: list[bool]  # clamped at one on the way out
    rounded: list[bool]  # rounded to whole numbers on the way out
    sin_column: list[int]  # angle variables: their sin column (else -1)
    if TYPE_CHECKING:  # buffers, declared for mypy only (TorchScript infers them)
        is_log: torch.Tensor
        is_periodic: torch.Tensor
        nonneg: torch.Tensor
        is_integer: torch.Tensor
        offset: torch.Tensor
        center: torch.Tensor
        scale: torch.Tensor
        angle_idx: torch.Tensor
        ceiling: torch.Tensor
        floor: torch.Tensor
        lo: torch.Tensor
        width: torch.Tensor

    def __init__(
        self,
        transforms: Sequence[VariableTransform],
        unit_range: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self.n_vars = len(transforms)
        angle = [i for i, t in enumerate(transforms) if t.kind == "angle"]
        self.n_angles = len(angle)
        self.n_norm = self.n_vars + self.n_angles
        self.onehot_var = [i for i, t in enumerate(transforms) if t.kind == "onehot"]
        self.onehot_size = [int(transforms[i].scale) for i in self.onehot_var]
        self.onehot_start = []
        for size in self.onehot_size:
            self.onehot_start.append(self.n_norm)
            self.n_norm += size
        f32 = torch.float32
        # is_log, is_periodic, nonneg and is_integer are part of the saved state (model files
        # and weights blobs carry them); the transforms below use the per-variable lists
        self.register_buffer("is_log", torch.tensor([t.kind == "log" for t in transforms]))
        self.register_buffer(
            "is_periodic", torch.tensor([t.kind == "periodic" for t in transforms])
        )
        self.register_buffer("nonneg", torch.tensor([t.nonneg for t in transforms]))
        self.register_buffer("is_integer", torch.tensor([t.integer for t in transforms]))
        self.register_buffer("offset", torch.tensor([t.offset for t in transforms], dtype=f32))
        self.register_buffer("center", torch.tensor([t.center for t in transforms], dtype=f32))
        self.register_buffer("scale", torch.tensor([t.scale for t in transforms], dtype=f32))
        self.register_buffer("angle_idx", torch.tensor(angle, dtype=torch.long))
        # per-variable switches of the column-by-column transforms (from the transforms)
        self.logged = [t.kind == "log" for t in transforms]
        self.angled = [t.kind == "angle" for t in transforms]
        self.wrapped = [t.kind == "periodic" for t in transforms]
        self.one_hot = [t.kind == "onehot" for t in transforms]
        self.floored = [t.nonneg for t in transforms]
        self.capped = [t.unit for t in transforms]
        self.rounded = [t.integer for t in transforms]
        self.sin_column = [-1] * self.n_vars
        for k, i in enumerate(angle):
            self.sin_column[i] = self.n_vars + k
        # the clamps of the way out (not saved: derived from the transforms above)
        self.register_buffer(
            "ceiling",
            torch.tensor([1.0 if t.unit else math.inf for t in transforms], dtype=f32),
            persistent=False,
        )
        self.register_buffer(
            "floor",
            torch.tensor([0.0 if t.nonneg else -math.inf for t in transforms], dtype=f32),
            persistent=False,
        )
        if unit_range is None:
            lo, hi = np.zeros(self.n_norm), np.ones(self.n_norm)
        else:
            lo, hi = unit_range
        self.register_buffer("lo", torch.tensor(np.asarray(lo), dtype=f32))
        self.register_buffer("width", torch.tensor(np.asarray(hi) - np.asarray(lo), dtype=f32))
        self._check_unit_range()

    def set_unit_range(self, normalised: torch.Tensor, margin: float = 0.1) -> None:
        """Map the normalised training values onto [margin', 1 - margin'] (for BCE);
        one-hot columns stay 0/1."""
        lo = normalised.min(dim=0).values
        hi = normalised.max(dim=0).values
        pad = (hi - lo).clamp(min=1e-6) * margin
        lo, width = lo - pad, hi - lo + 2 * pad
        for start, size in zip(self.onehot_start, self.onehot_size, strict=True):
            lo[start : start + size] = 0.0
            width[start : start + size] = 1.0
        self.lo.copy_(lo)
        self.width.copy_(width)
        self._check_unit_range()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Physical ``(n, n_vars)`` -> normalised ``(n, n_norm)``.

        Column by column: operations on a whole (n, n_vars) block would broadcast the
        per-variable numbers along rows of a handful of values, several times slower
        than the same arithmetic on each column."""
        cols: list[torch.Tensor] = []
        sins: list[torch.Tensor] = []
        for j in range(self.n_vars):
            c = x[:, j]
            if self.angled[j]:
                cols.append(torch.cos(c))
                sins.append(torch.sin(c))
                continue
            if self.logged[j]:
                c = torch.log(torch.clamp(c + self.offset[j : j + 1], min=1e-30))
            cols.append((c - self.center[j : j + 1]) / self.scale[j : j + 1])
        z = torch.stack(cols + sins).t()  # feature-major: each column contiguous
        if self.onehot_var:
            parts = [z]
            for i in range(len(self.onehot_var)):
                j, size = self.onehot_var[i], self.onehot_size[i]
                k = torch.clamp(torch.round(x[:, j] - self.center[j]), 0.0, float(size - 1))
                parts.append(nn.functional.one_hot(k.long(), size).to(z.dtype))
            z = torch.cat(parts, dim=1)
        if self.unit_mapped:
            z = (z - self.lo) / self.width
        return z

    def _check_unit_range(self) -> None:
        """Set ``unit_mapped``: whether the [0, 1] mapping (for BCE) is more than the
        identity. ``lo`` and ``width`` are 0 and 1 for MSE models, and mapping with them
        would only copy the values. A plain attribute (not a test on the buffers in
        ``forward``), so that ``torch.export`` sees a fixed graph."""
        self.unit_mapped = bool(torch.any(self.lo != 0.0)) or bool(torch.any(self.width != 1.0))

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._check_unit_range()  # a checkpoint's lo and width decide

    @torch.jit.export
    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised ``(n, n_norm)`` -> physical ``(n, n_vars)`` (column by column)."""
        if self.unit_mapped:
            z = z * self.width + self.lo
        out: list[torch.Tensor] = []
        for j in range(self.n_vars):
            if self.angled[j]:
                v = _wrap_angle(torch.atan2(z[:, self.sin_column[j]], z[:, j]))
            elif self.one_hot[j]:
                i = self.onehot_var.index(j)
                start = self.onehot_start[i]
                best = torch.argmax(z[:, start : start + self.onehot_size[i]], dim=1)
                v = best.to(z.dtype) + self.center[j : j + 1]
            else:
                v = z[:, j] * self.scale[j : j + 1] + self.center[j : j + 1]
                if self.logged[j]:
                    v = torch.exp(v) - self.offset[j : j + 1]
                elif self.wrapped[j]:
                    v = _wrap_angle(v)
            if self.floored[j]:
                v = torch.maximum(v, self.floor[j : j + 1])  # no negative pt, mass or E
            if self.capped[j]:
                v = torch.minimum(v, self.ceiling[j : j + 1])  # fractions stay <= 1
            if self.rounded[j]:
                v = torch.round(v)
            out.append(v)
        return torch.stack(out, dim=1)

    @torch.jit.export
    def column_owner(self) -> torch.Tensor:
        """Index of the variable each normalised column belongs to."""
        own = torch.arange(self.n_vars, device=self.angle_idx.device)
        parts = [own, self.angle_idx]
        for i in range(len(self.onehot_var)):
            parts.append(torch.full_like(own[:1], self.onehot_var[i]).repeat(self.onehot_size[i]))
        return torch.cat(parts)

    @torch.jit.export
    def column_error(self, u: torch.Tensor, recon: torch.Tensor, bce: bool) -> torch.Tensor:
        """Reconstruction error per normalised column: squared error (or binary cross
        entropy for ``bce``); under MSE each one-hot block instead holds the cross entropy
        of its softmax (nonzero only in the true value's column)."""
        if bce:
            t = torch.clamp(u, 0.0, 1.0)
            r = torch.clamp(recon, 1e-7, 1.0 - 1e-7)
            return -(t * torch.log(r) + (1.0 - t) * torch.log(1.0 - r))
        err = (recon - u) ** 2
        if self.onehot_var:
            err = err.clone()
            for i in range(len(self.onehot_var)):
                a, b = self.onehot_start[i], self.onehot_start[i] + self.onehot_size[i]
                err[:, a:b] = -u[:, a:b] * torch.log_softmax(recon[:, a:b], dim=1)
        return err

    @torch.jit.export
    def column_weight(self, variable_weight: torch.Tensor) -> torch.Tensor:
        """Loss weight per normalised column from per-variable weights, normalised so the
        weights of the terms sum to 1: a one-hot block counts once (its cross entropy),
        and the scaled value a one-hot variable also feeds the encoder is not a target."""
        w = variable_weight[self.column_owner()].clone()
        terms = w.sum()
        for i in range(len(self.onehot_var)):
            j = self.onehot_var[i]
            w[j] = 0.0
            terms = terms - variable_weight[j] * self.onehot_size[i]
        return w / terms
