"""Reading jets from ROOT files, HEPAutoencoders-style pandas pickles and parquet files.

One entry point, :func:`iter_jets` (chunked, for files larger than memory) and its
concatenating wrapper :func:`read_jets`, is used everywhere jets are read for training
or evaluation. Jets are returned as a flat ``(n_jets, n_variables)`` float array.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from ..errors import InputFileError, MissingBranchError, NoJetsError
from ..variables.registry import canonical_variable, convert, normalise_units, spellings
from .formats import PARQUET_SUFFIXES, PICKLE_SUFFIXES, ROOT_SUFFIXES, JetFormat, detect_format
from .rootfile import open_root, tree_names

__all__ = [
    "DEFAULT_VARIABLES",
    "JetChunk",
    "JetData",
    "canonical_variable",  # re-exported from hepae_coffea.variables.registry
    "iter_jets",
    "pad_events",
    "read_jets",
]

log = logging.getLogger(__name__)

DEFAULT_VARIABLES: tuple[str, ...] = ("pt", "eta", "phi", "mass")

_DERIVABLE = frozenset({"pt", "eta", "phi", "mass", "E"})


@dataclass
class JetChunk:
    """Jets of one chunk of one file.

    Attributes
    ----------
    values : numpy.ndarray
        ``(n_jets, n_variables)`` float64, finite jets only, file order kept.
    counts : numpy.ndarray or None
        Jets per event (after dropping non-finite jets) for jagged inputs, else None.
    n_nonfinite : int
        Jets dropped because a requested variable was NaN or infinite.
    """

    values: np.ndarray
    counts: np.ndarray | None
    n_nonfinite: int
    source: str
    nonfinite_by_variable: np.ndarray | None = None
    units: str = "GeV"
    fmt: JetFormat | None = None


@dataclass
class JetData:
    """All jets read from a list of files."""

    values: np.ndarray
    variables: tuple[str, ...]
    n_events: int | None
    n_nonfinite: int
    nonfinite_by_variable: dict[str, int] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    counts: np.ndarray | None = None  # jets per event (jagged inputs), else None
    units: str = "GeV"  # energy unit of ``values`` (the files' own were converted)
    formats: tuple[JetFormat, ...] = ()

    @property
    def n_jets(self) -> int:
        return int(self.values.shape[0])

    def summary(self) -> dict[str, object]:
        """A small JSON-able description (for model metadata and logs)."""
        q = np.quantile(self.values, [0.0, 0.5, 1.0], axis=0) if self.n_jets else None
        return {
            "files": [os.path.basename(s) for s in self.sources],
            "n_jets": self.n_jets,
            "n_events": self.n_events,
            "n_nonfinite_dropped": self.n_nonfinite,
            "units": self.units,
            "formats": sorted({f.name for f in self.formats}),
            "ranges": {
                v: [float(q[0, i]), float(q[1, i]), float(q[2, i])]
                for i, v in enumerate(self.variables)
            }
            if q is not None
            else {},
        }


# ---------------------------------------------------------------------------------------
# column resolution (shared by all formats)


def _find(available: Sequence[str], prefix: str, var: str) -> str | None:
    avail = set(available)
    for n in spellings(var):
        if prefix + n in avail:
            return prefix + n
    return None


def _resolve_columns(
    available: Sequence[str], prefix: str, variables: Sequence[str], where: str
) -> tuple[dict[str, str], str]:
    """Map each requested variable to a column, and say how missing ones are derived:
    ``""`` (none missing), ``"cartesian"`` (from px/py/pz/E) or ``"polar"`` (the mass or E
    from pt/eta/phi with E or mass, as the ATLAS Open Data ntuples store E)."""
    mapping: dict[str, str] = {}
    missing: list[str] = []
    for var in variables:
        col = _find(available, prefix, var)
        if col is None:
            missing.append(var)
        else:
            mapping[var] = col
    if not missing:
        return mapping, ""
    derivable = all(canonical_variable(m) in _DERIVABLE for m in missing)
    cartesian = {c: _find(available, prefix, c) for c in ("px", "py", "pz", "E")}
    if derivable and all(cartesian.values()):
        for c, col in cartesian.items():
            mapping["__" + c] = col  # type: ignore[assignment]
        return mapping, "cartesian"
    for fourth in ("E", "mass"):
        polar = {c: _find(available, prefix, c) for c in ("pt", "eta", "phi", fourth)}
        if derivable and all(polar.values()) and fourth not in map(canonical_variable, missing):
            for c, col in polar.items():
                mapping["__" + c] = col  # type: ignore[assignment]
            return mapping, "polar"
    shown = sorted(a for a in available if a.startswith(prefix)) or sorted(available)
    raise MissingBranchError(
        f"{where}: no branch for jet variable(s) {missing} with prefix {prefix!r} "
        f"(tried aliases {[prefix + a for m in missing for a in spellings(m)]}); "
        f"available: {shown[:8]}{f' and {len(shown) - 8} more' if len(shown) > 8 else ''}"
    )


def polar_mass(pt: np.ndarray, eta: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Jet mass from pt, eta and E: sqrt(E^2 - (pt cosh eta)^2), negative (as ROOT's
    ``TLorentzVector::M``) when rounding makes E slightly smaller than |p|."""
    p = np.asarray(pt, np.float64) * np.cosh(np.asarray(eta, np.float64))
    e = np.asarray(energy, np.float64)
    m2 = (e - p) * (e + p)
    return np.sign(m2) * np.sqrt(np.abs(m2))


def polar_energy(pt: np.ndarray, eta: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Jet energy from pt, eta and mass: sqrt((pt cosh eta)^2 + m^2)."""
    p = np.asarray(pt, np.float64) * np.cosh(np.asarray(eta, np.float64))
    return np.hypot(p, np.asarray(mass, np.float64))


def _assemble(
    columns: dict[str, np.ndarray],
    mapping: dict[str, str],
    convert: str,
    variables: Sequence[str],
    keep_float32: bool = False,
) -> np.ndarray:
    """Stack the requested variables, deriving missing ones (see :func:`_resolve_columns`),
    as float64; with ``keep_float32``, as float32 where every column is float32 and
    nothing is derived (the same values: float32 -> float64 -> float32 is exact)."""
    derived: dict[str, np.ndarray] = {}
    if convert == "polar":
        pt, eta, phi = (columns[mapping["__" + c]] for c in ("pt", "eta", "phi"))
        derived = {"pt": pt, "eta": eta, "phi": phi}
        if "__E" in mapping:
            derived["E"] = columns[mapping["__E"]]
            derived["mass"] = polar_mass(pt, eta, derived["E"])
        else:
            derived["mass"] = columns[mapping["__mass"]]
            derived["E"] = polar_energy(pt, eta, derived["mass"])
    elif convert:
        import vector

        v: Any = vector.array(
            {
                "px": columns[mapping["__px"]],
                "py": columns[mapping["__py"]],
                "pz": columns[mapping["__pz"]],
                "E": columns[mapping["__E"]],
            }
        )
        derived = {"pt": v.pt, "eta": v.eta, "phi": v.phi, "mass": v.mass, "E": v.E}
    f32 = keep_float32 and not convert and all(c.dtype == np.float32 for c in columns.values())
    n = len(next(iter(columns.values()))) if columns else 0
    out = np.empty((n, len(variables)), dtype=np.float32 if f32 else np.float64)
    for i, var in enumerate(variables):
        if var in mapping:
            out[:, i] = columns[mapping[var]]
        else:
            out[:, i] = derived[canonical_variable(var)]
    return out


def _drop_nonfinite(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bad_per_var = ~np.isfinite(values)
    keep = ~bad_per_var.any(axis=1)
    return keep, bad_per_var.sum(axis=0)


def _chunk(
    values: np.ndarray,
    counts: np.ndarray | None,
    source: str,
    variables: Sequence[str],
    file_units: str,
    to_units: str,
    fmt: JetFormat | None = None,
) -> JetChunk:
    """Drop non-finite jets (counted) and convert energy-like columns to ``to_units``."""
    keep, bad = _drop_nonfinite(values)
    n_bad = int((~keep).sum())
    if n_bad and counts is not None:
        counts = ak.to_numpy(ak.sum(ak.unflatten(keep, counts), axis=1))
    out = convert(values[keep], variables, file_units, to_units)
    return JetChunk(out, counts, n_bad, source, bad, to_units, fmt)


# ---------------------------------------------------------------------------------------
# ROOT


def _open_tree(path: str, tree: str | None) -> Any:
    f = open_root(path)
    trees = tree_names(f)
    if tree is None:
        if "Events" in trees:
            tree = "Events"
        elif len(trees) == 1:
            tree = trees[0]
        else:
            raise InputFileError(f"{path}: cannot choose a tree, found {trees}; pass tree=...")
    if tree not in trees:
        raise InputFileError(f"{path}: no tree {tree!r}; trees in file: {trees}")
    return f[tree]


def _iter_root(
    path: str,
    variables: Sequence[str],
    prefix: str,
    tree: str | None,
    step_size: str | int,
    units: tuple[str, str],
    fmt: JetFormat | None,
) -> Iterator[JetChunk]:
    t = _open_tree(path, tree)
    mapping, derive = _resolve_columns(list(t.keys()), prefix, variables, f"{path}:{t.name}")
    branches = sorted(set(mapping.values()))
    try:
        for arrays in t.iterate(branches, step_size=step_size, library="ak"):
            jagged = arrays[branches[0]].ndim > 1
            counts = ak.to_numpy(ak.num(arrays[branches[0]])) if jagged else None
            cols = {
                b: ak.to_numpy(ak.flatten(arrays[b]) if jagged else arrays[b]).astype(np.float64)
                for b in branches
            }
            values = _assemble(cols, mapping, derive, variables)
            yield _chunk(values, counts, path, variables, *units, fmt)
    except (OSError, ValueError) as err:
        if isinstance(err, MissingBranchError):
            raise
        raise InputFileError(f"{path}: failed while reading {branches} ({err})") from None


# ---------------------------------------------------------------------------------------
# pickles and parquet


def _iter_table(
    path: str,
    variables: Sequence[str],
    prefix: str | None,
    units: tuple[str, str],
    fmt: JetFormat | None,
) -> Iterator[JetChunk]:
    suffix = Path(path).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        from .guards import read_trusted_pickle_frame

        df = read_trusted_pickle_frame(path)
        columns = [str(c) for c in df.columns]
        # HEPAutoencoders pickles have bare columns (pt, eta, phi, m); allow a prefix too
        use_prefix = prefix if prefix is not None else ""
        mapping, derive = _resolve_columns(columns, use_prefix, variables, path)
        cols = {c: df[c].to_numpy(dtype=np.float64) for c in set(mapping.values())}
        yield _chunk(
            _assemble(cols, mapping, derive, variables), None, path, variables, *units, fmt
        )
        return
    try:
        arr = ak.from_parquet(path)
    except Exception as err:  # noqa: BLE001  (readers raise many types for corrupt files)
        raise InputFileError(f"{path}: cannot be read as parquet ({err})") from None
    fields = list(arr.fields)
    use_prefix = prefix if prefix is not None else ""
    mapping, derive = _resolve_columns(fields, use_prefix, variables, path)
    names = sorted(set(mapping.values()))
    jagged = arr[names[0]].ndim > 1
    counts = ak.to_numpy(ak.num(arr[names[0]])) if jagged else None
    cols = {
        c: ak.to_numpy(ak.flatten(arr[c]) if jagged else arr[c]).astype(np.float64) for c in names
    }
    yield _chunk(_assemble(cols, mapping, derive, variables), counts, path, variables, *units, fmt)


def pad_events(
    values: np.ndarray, counts: np.ndarray, max_jets: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flat jets + jets per event -> (n_events, max_jets, n_vars) padded with zeros and a
    (n_events, max_jets) mask of real jets; jets beyond ``max_jets`` are left out."""
    counts = np.asarray(counts, dtype=np.int64)
    n_ev = len(counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if n_ev else np.zeros(0, np.int64)
    slot = np.arange(len(values)) - np.repeat(starts, counts)
    event = np.repeat(np.arange(n_ev), counts)
    keep = slot < max_jets
    out = np.zeros((n_ev, max_jets, values.shape[1]), dtype=values.dtype)
    out[event[keep], slot[keep]] = values[keep]
    mask = np.arange(max_jets)[None, :] < np.minimum(counts, max_jets)[:, None]
    return out, mask


# ---------------------------------------------------------------------------------------
# public entry points


def iter_jets(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    variables: Sequence[str] = DEFAULT_VARIABLES,
    *,
    prefix: str | None = None,
    tree: str | None = None,
    step_size: str | int = "100 MB",
    fmt: str | None = None,
    units: str | None = None,
    collection: str | None = None,
    to_units: str = "GeV",
) -> Iterator[JetChunk]:
    """Yield the jets of one or more files chunk by chunk, in ``to_units``.

    Parameters
    ----------
    paths : path or list of paths
        ROOT (``.root``), pandas pickle (``.pkl``) or parquet (``.parquet``) files.
    variables : sequence of str
        Jet variables in the order wanted, e.g. ``("pt", "eta", "phi", "mass")``. Aliases
        (``m``, ``pT``, ``energy``) are accepted; pt/eta/phi/mass/E are computed from
        px/py/pz/E branches, and the mass from pt/eta/E, when the file stores those instead.
    prefix : str, optional
        Branch prefix of the jet collection (``Jet_``). Without it (and without ``tree``)
        the format is detected (:func:`hepae_coffea.io.formats.detect_format`).
    tree : str, optional
        Tree name; by default the detected format's tree.
    step_size : str or int
        Chunk size for ``uproot.iterate`` (ROOT files larger than memory stream).
    fmt, collection : str, optional
        Force a format (``physlite``, ``nanoaod``, ...) or a jet collection.
    units : {"MeV", "GeV"}, optional
        Energy unit of the files, overriding the format's (GeV with an explicit ``prefix``).
    to_units : str
        Energy unit of the values yielded (the model's; GeV by default): energy-like
        columns are converted once, here.

    Yields
    ------
    JetChunk
        Finite jets of one chunk; jets with a NaN/inf value are dropped and counted.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    if not paths:
        raise InputFileError("no input files given")
    to_units = normalise_units(to_units, "to_units")
    for p in paths:
        path = os.fspath(p)
        if not os.path.exists(path):
            raise InputFileError(f"{path}: file not found")
        suffix = Path(path).suffix.lower()
        if suffix not in ROOT_SUFFIXES + PICKLE_SUFFIXES + PARQUET_SUFFIXES:
            raise InputFileError(
                f"{path}: unknown format {suffix!r}; expected one of "
                f"{ROOT_SUFFIXES + PICKLE_SUFFIXES + PARQUET_SUFFIXES}"
            )
        found: JetFormat | None = None
        if prefix is None:
            found = detect_format(path, fmt=fmt, units=units, collection=collection, tree=tree)
            use_prefix, use_tree = found.prefix, found.tree
            file_units = found.units
        else:
            use_prefix, use_tree = prefix, tree
            file_units = normalise_units(units or "GeV", "--units")
        if suffix in ROOT_SUFFIXES:
            yield from _iter_root(
                path, variables, use_prefix, use_tree, step_size, (file_units, to_units), found
            )
        else:
            yield from _iter_table(path, variables, use_prefix, (file_units, to_units), found)


def read_jets(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    variables: Sequence[str] = DEFAULT_VARIABLES,
    *,
    prefix: str | None = None,
    tree: str | None = None,
    max_jets: int | None = None,
    step_size: str | int = "100 MB",
    fmt: str | None = None,
    units: str | None = None,
    collection: str | None = None,
    to_units: str = "GeV",
) -> JetData:
    """Read all (finite) jets of the given files into one array, in ``to_units``.

    Same parameters as :func:`iter_jets`; ``max_jets`` stops after that many jets.
    Raises :class:`~hepae_coffea.errors.NoJetsError` when no finite jet is found.
    """
    variables = tuple(variables)
    parts: list[np.ndarray] = []
    count_parts: list[np.ndarray] = []
    n_events: int | None = 0
    n_bad = 0
    bad_by_var = np.zeros(len(variables), dtype=np.int64)
    sources: list[str] = []
    n = 0
    formats: list[JetFormat] = []
    chunks = iter_jets(
        paths,
        variables,
        prefix=prefix,
        tree=tree,
        step_size=step_size,
        fmt=fmt,
        units=units,
        collection=collection,
        to_units=to_units,
    )
    for chunk in chunks:
        if chunk.fmt is not None and chunk.fmt not in formats:
            formats.append(chunk.fmt)
        parts.append(chunk.values)
        n += len(chunk.values)
        n_bad += chunk.n_nonfinite
        if chunk.nonfinite_by_variable is not None:
            bad_by_var += chunk.nonfinite_by_variable
        if chunk.source not in sources:
            sources.append(chunk.source)
        if chunk.counts is None or n_events is None:
            n_events = None
        else:
            n_events += len(chunk.counts)
            count_parts.append(chunk.counts)
        if max_jets is not None and n >= max_jets:
            break
    values = np.concatenate(parts) if parts else np.empty((0, len(variables)))
    counts = np.concatenate(count_parts).astype(np.int64) if n_events is not None else None
    if max_jets is not None and len(values) > max_jets:
        if counts is not None:  # whole events only
            n_keep = int(np.searchsorted(np.cumsum(counts), max_jets, side="right"))
            counts = counts[:n_keep]
            n_events = n_keep
            max_jets = int(counts.sum())
        values = values[:max_jets]
    by_var = {v: int(b) for v, b in zip(variables, bad_by_var, strict=True) if b}
    if n_bad:
        log.warning(
            "dropped %d jet(s) with non-finite values from %s (per variable: %s)",
            n_bad,
            sources,
            by_var,
        )
    if len(values) == 0:
        raise NoJetsError(
            f"no finite jets in {[os.fspath(p) for p in paths] if not isinstance(paths, str | os.PathLike) else os.fspath(paths)}"
            f" (variables {list(variables)}; {n_bad} dropped as non-finite)"
        )
    return JetData(
        values,
        variables,
        n_events,
        n_bad,
        by_var,
        tuple(sources),
        counts,
        normalise_units(to_units),
        tuple(formats),
    )
