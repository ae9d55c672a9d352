"""Which kind of file is this? Detection of the jet file format without options.

:func:`detect_format` opens a file (ROOT, pandas pickle or parquet) and works out the
format, the tree, the jet collection, the branch holding each jet variable, the energy
units, the coffea schema to read it with and the event-identifier branches. Readers (the
training reader, the coffea processor, compress) ask it instead of assuming NanoAOD.

Formats, tried in this order:

=================  =====================  =========================================  =====
format             tree                   jets                                       units
=================  =====================  =========================================  =====
``physlite``       ``CollectionTree``     ``AnalysisJetsAuxDyn.{pt,eta,phi,m}``       MeV
``nanoaod``        ``Events``             ``Jet_{pt,eta,phi,mass}``                   GeV
``pfnano``         ``Events``             as NanoAOD, with ``PFCands_*``              GeV
``opendata2020``   ``mini``               ``jet_n``, ``jet_{pt,eta,phi,E}``           MeV
``opendata2025``   ``analysis``           ``jet_{pt,eta,phi,e}``                      GeV
``flat``           any                    ``<prefix>{pt,eta,phi,mass}`` or px/py/pz/E GeV
``pickle``         (pandas DataFrame)     columns ``pt, eta, phi, m`` (HEPAutoencoders) MeV
``parquet``        (awkward/arrow table)  fields as flat trees                        GeV
=================  =====================  =========================================  =====
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import InputFileError
from ..variables.registry import normalise_units, spellings
from .rootfile import open_root, tree_names

__all__ = [
    "FORMATS",
    "PARQUET_SUFFIXES",
    "PICKLE_SUFFIXES",
    "ROOT_SUFFIXES",
    "JetFormat",
    "detect_format",
    "resolve_branches",
    "tree_keys",
]

log = logging.getLogger(__name__)

ROOT_SUFFIXES = (".root",)
PICKLE_SUFFIXES = (".pkl", ".pickle")
PARQUET_SUFFIXES = (".parquet", ".parq")

#: Human names of the formats, also the accepted values of ``--format``.
FORMATS: dict[str, str] = {
    "physlite": "ATLAS PHYSLITE",
    "nanoaod": "CMS NanoAOD",
    "pfnano": "CMS PFNano",
    "opendata2020": "ATLAS Open Data 13 TeV (2020)",
    "opendata2025": "ATLAS Open Data 13 TeV (2025)",
    "flat": "flat tree",
    "pickle": "HEPAutoencoders pickle",
    "parquet": "parquet table",
}

_KINEMATIC = ("pt", "eta", "phi", "mass")
_NANO_EVENT_ID = ("run", "luminosityBlock", "event")
_PHYSLITE_EVENT_ID = ("EventInfoAuxDyn.runNumber", "EventInfoAuxDyn.eventNumber")
_OPENDATA_EVENT_ID = ("runNumber", "eventNumber")
_MAX_CANDIDATES = 5


@dataclass(frozen=True)
class JetFormat:
    """What a file is and where its jets are.

    Attributes
    ----------
    name : str
        Format key (see :data:`FORMATS`).
    tree : str or None
        Tree holding the events (None for pickles and parquet).
    collection : str
        Jet collection as coffea's NanoEvents names it (``Jet``, ``Jets``, ``LargeRJets``)
        or, for flat trees, the branch prefix without its separator (``jet``).
    prefix : str
        Prefix of the jet branches in the file (``Jet_``, ``AnalysisJetsAuxDyn.``).
    branches : dict
        ``{canonical variable: branch}`` for the variables found (pt, eta, phi and mass
        and/or E, px, py, pz).
    units : str
        Energy unit of the file's values (``GeV`` or ``MeV``).
    schema : str
        coffea schema to read it with: ``nanoaod``, ``physlite`` or ``base``.
    event_id : tuple of str
        Event-identifier branches present in the file.
    counter : str or None
        Branch holding the number of jets per event, when the file has one.
    units_overridden : bool
        True when ``units`` was given by the user, not taken from the format.
    """

    name: str
    tree: str | None
    collection: str
    prefix: str
    branches: Mapping[str, str]
    units: str
    schema: str
    event_id: tuple[str, ...] = ()
    counter: str | None = None
    units_overridden: bool = False
    source: str = field(default="", compare=False)

    @property
    def title(self) -> str:
        """Human name of the format (``ATLAS PHYSLITE``)."""
        return FORMATS.get(self.name, self.name)

    def field(self, variable: str) -> str:
        """Field name of ``variable`` within the collection (branch without the prefix)."""
        return self.branches[variable][len(self.prefix) :]

    def describe(self, to_units: str = "GeV") -> str:
        """One line saying what was chosen, e.g.
        ``format: ATLAS PHYSLITE (tree CollectionTree, jets AnalysisJets, MeV -> GeV)``."""
        where = [f"tree {self.tree}"] if self.tree else []
        jets = self.prefix.rstrip("_.") or "(no prefix)"
        if self.name == "physlite":
            jets = self.prefix.split("AuxDyn")[0]
        where.append(f"jets {jets}")
        units = self.units if self.units == to_units else f"{self.units} -> {to_units}"
        where.append(units + (" (--units)" if self.units_overridden else ""))
        return f"format: {self.title} ({', '.join(where)})"


# ---------------------------------------------------------------------------------------
# branch resolution


def resolve_branches(
    keys: Iterable[str], prefix: str, fmt: str | None = None, *, complete: bool = True
) -> dict[str, str] | None:
    """Find the jet four-vector branches ``prefix + name`` among ``keys``.

    Returns ``{canonical variable: branch}`` for every one of pt, eta, phi, mass, E, px,
    py, pz found, or None unless pt/eta/phi with mass or E, or px/py/pz/E, are present
    (with ``complete=False``: unless pt is; the model's variables are checked later, with
    an error naming the missing one).
    """
    avail = set(keys)
    found: dict[str, str] = {}
    for var in ("pt", "eta", "phi", "mass", "E", "px", "py", "pz"):
        for name in spellings(var, fmt):
            if prefix + name in avail:
                found[var] = prefix + name
                break
    polar = all(v in found for v in ("pt", "eta", "phi")) and ("mass" in found or "E" in found)
    cartesian = all(v in found for v in ("px", "py", "pz", "E"))
    if not complete:
        return found if "pt" in found else None
    return found if polar or cartesian else None


def _present(keys: Collection[str], names: Sequence[str]) -> tuple[str, ...]:
    return tuple(n for n in names if n in keys)


# ---------------------------------------------------------------------------------------
# ROOT probes: each returns a JetFormat or None


def _physlite(trees: Mapping[str, list[str]], collection: str | None) -> JetFormat | None:
    keys = trees.get("CollectionTree")
    if keys is None:
        return None
    coll = collection or "Jets"
    bare = coll.removeprefix("Analysis")
    prefix = f"Analysis{bare}AuxDyn."
    found = resolve_branches(keys, prefix, "physlite", complete=False)
    if found is None:
        return None
    return JetFormat(
        "physlite",
        "CollectionTree",
        bare,
        prefix,
        found,
        "MeV",
        "physlite",
        _present(keys, _PHYSLITE_EVENT_ID),
    )


def _nanoaod(trees: Mapping[str, list[str]], collection: str | None) -> JetFormat | None:
    keys = trees.get("Events")
    if keys is None:
        return None
    coll = collection or "Jet"
    found = resolve_branches(keys, coll + "_", "nanoaod", complete=False)
    if found is None:
        return None
    ids = _present(keys, _NANO_EVENT_ID)
    name = "pfnano" if any(k.startswith(("PFCands_", "JetPFCands_")) for k in keys) else "nanoaod"
    schema = "nanoaod" if len(ids) == len(_NANO_EVENT_ID) else "base"
    counter = "n" + coll if "n" + coll in keys else None
    return JetFormat(name, "Events", coll, coll + "_", found, "GeV", schema, ids, counter)


def _opendata(
    trees: Mapping[str, list[str]], collection: str | None, name: str
) -> JetFormat | None:
    tree, energy, units = (
        ("mini", "E", "MeV") if name == "opendata2020" else ("analysis", "e", "GeV")
    )
    keys = trees.get(tree)
    if keys is None:
        return None
    coll = collection or "jet"
    prefix = coll + "_"
    found = resolve_branches(keys, prefix, name)
    if found is None or found.get("E") != prefix + energy:
        return None
    counter = prefix.rstrip("_") + "_n"
    return JetFormat(
        name,
        tree,
        coll,
        prefix,
        found,
        units,
        "base",
        _present(keys, _OPENDATA_EVENT_ID),
        counter if counter in keys else None,
    )


def _flat(
    trees: Mapping[str, list[str]], collection: str | None, tree: str | None
) -> JetFormat | None:
    for t in [tree] if tree else list(trees):
        keys = trees.get(t)
        if keys is None:
            continue
        prefixes = [collection + "_"] if collection else _candidate_prefixes(keys)
        for prefix in prefixes:
            found = resolve_branches(keys, prefix, "flat")
            if found is not None:
                ids = _present(keys, _NANO_EVENT_ID) or _present(keys, _OPENDATA_EVENT_ID)
                return JetFormat("flat", t, prefix.rstrip("_."), prefix, found, "GeV", "base", ids)
    return None


def _candidate_prefixes(keys: Iterable[str]) -> list[str]:
    """Prefixes of branches that look like a jet collection's pt or px (``Jet_pt`` -> ``Jet_``)."""
    out: list[str] = []
    for k in keys:
        for end in ("pt", "pT", "Pt", "px"):
            if k.endswith(end) and len(k) > len(end) and k[-len(end) - 1] in "_.":
                out.append(k[: -len(end)])
    jets_first = sorted(set(out), key=lambda p: (0 if "jet" in p.lower() else 1, p))
    return jets_first


_PROBES = {
    "physlite": lambda trees, coll, tree: _physlite(trees, coll),
    "nanoaod": lambda trees, coll, tree: _nanoaod(trees, coll),
    "pfnano": lambda trees, coll, tree: _nanoaod(trees, coll),
    "opendata2020": lambda trees, coll, tree: _opendata(trees, coll, "opendata2020"),
    "opendata2025": lambda trees, coll, tree: _opendata(trees, coll, "opendata2025"),
    "flat": _flat,
}

_LOOKED_FOR = (
    "ATLAS PHYSLITE (tree CollectionTree, AnalysisJetsAuxDyn.pt/eta/phi/m), "
    "CMS NanoAOD/PFNano (tree Events, Jet_pt/eta/phi/mass), "
    "ATLAS Open Data 2020 (tree mini, jet_pt/eta/phi/E), "
    "ATLAS Open Data 2025 (tree analysis, jet_pt/eta/phi/e), "
    "flat trees (<prefix>pt/eta/phi with mass or E, or px/py/pz/E)"
)


def _root_trees(path: str) -> dict[str, list[str]]:
    f = open_root(path)
    try:
        with f:
            return {n: list(f[n].keys()) for n in tree_names(f)}
    except Exception as err:  # noqa: BLE001  (uproot raises many types for corrupt files)
        raise InputFileError(f"{path}: cannot be read as a ROOT file ({err})") from None


def tree_keys(path: str, tree: str) -> list[str]:
    """Branch names of one tree (for checking a model's variables beyond the four-vector)."""
    return _root_trees(path).get(tree, [])


def _detect_root(path: str, fmt: str | None, collection: str | None, tree: str | None) -> JetFormat:
    trees = _root_trees(path)
    if tree is not None and tree not in trees:
        raise InputFileError(f"{path}: no tree {tree!r}; trees in file: {sorted(trees)}")
    trees_used = {tree: trees[tree]} if tree is not None else trees
    order = [fmt] if fmt else ["physlite", "nanoaod", "opendata2020", "opendata2025", "flat"]
    for name in order:
        if tree is not None and name != "flat":  # the format's layout in the tree named
            found = _probe_in_tree(name, trees_used, tree, collection)
        else:
            found = _PROBES[name](trees_used, collection, tree)
        if found is not None:
            if fmt == "pfnano" or (fmt == "nanoaod" and found.name == "pfnano"):
                found = replace(found, name=fmt)
            return replace(found, source=path)
    raise InputFileError(_failure(path, trees_used, fmt, collection))


def _probe_in_tree(
    name: str, trees: Mapping[str, list[str]], tree: str, collection: str | None
) -> JetFormat | None:
    """A format's probe run on a tree with another name (``--tree``)."""
    usual = {
        "physlite": "CollectionTree",
        "nanoaod": "Events",
        "pfnano": "Events",
        "opendata2020": "mini",
        "opendata2025": "analysis",
    }[name]
    found = _PROBES[name]({usual: trees[tree]}, collection, None)
    return replace(found, tree=tree) if found is not None else None


def _failure(path: str, trees: Mapping[str, list[str]], fmt: str | None, coll: str | None) -> str:
    cands: list[str] = []
    for t, keys in trees.items():
        cands += [f"{t}:{p}*" for p in _candidate_prefixes(keys)]
    looked = (
        f"{FORMATS[fmt]} layout" + (f" with collection {coll!r}" if coll else "")
        if fmt
        else _LOOKED_FOR + (f", collection {coll!r}" if coll else "")
    )
    shown = ", ".join(cands[:_MAX_CANDIDATES]) + (
        f" and {len(cands) - _MAX_CANDIDATES} more" if len(cands) > _MAX_CANDIDATES else ""
    )
    return (
        f"{path}: no jets found; looked for {looked}; trees in file: {sorted(trees)}; "
        f"candidate collections: {shown or 'none'} (choose with --format, --tree, --collection)"
    )


# ---------------------------------------------------------------------------------------
# tables


def _table_columns(path: str, suffix: str) -> list[str]:
    if suffix in PICKLE_SUFFIXES:
        from .guards import read_trusted_pickle_frame

        df = read_trusted_pickle_frame(path)
        return [str(c) for c in df.columns]
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception as err:  # noqa: BLE001
        raise InputFileError(f"{path}: cannot be read as parquet ({err})") from None


def _detect_table(path: str, suffix: str, collection: str | None) -> JetFormat:
    columns = _table_columns(path, suffix)
    name = "pickle" if suffix in PICKLE_SUFFIXES else "parquet"
    prefixes = [collection + "_"] if collection else ["", *_candidate_prefixes(columns)]
    for prefix in prefixes:
        found = resolve_branches(columns, prefix, name)
        if found is not None:
            # the HEPAutoencoders study's pickles (bare pt, eta, phi, m) store MeV
            units = "MeV" if name == "pickle" else "GeV"
            return JetFormat(
                name, None, prefix.rstrip("_"), prefix, found, units, "base", (), None, False, path
            )
    cands = ", ".join(p + "*" for p in _candidate_prefixes(columns)[:_MAX_CANDIDATES])
    raise InputFileError(
        f"{path}: no jets found; looked for columns <prefix>pt/eta/phi with mass (m) or E, or "
        f"px/py/pz/E; candidate collections: {cands or 'none'}"
    )


# ---------------------------------------------------------------------------------------
# public entry point


def detect_format(
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    units: str | None = None,
    collection: str | None = None,
    tree: str | None = None,
) -> JetFormat:
    """Work out a jet file's format, tree, collection, branches and units.

    Parameters
    ----------
    path : path
        ROOT, pandas pickle or parquet file.
    fmt : str, optional
        Force one of :data:`FORMATS` (``--format``) instead of trying them in order.
    units : {"MeV", "GeV"}, optional
        The file's energy unit, overriding the format's (``--units``).
    collection : str, optional
        Jet collection: ``Jets`` or ``LargeRJets`` in PHYSLITE, ``Jet`` (or another
        prefix such as ``FatJet``) in NanoAOD, the branch prefix of flat trees.
    tree : str, optional
        Tree to read (default: the format's tree).

    Raises
    ------
    InputFileError
        Unreadable file, or no jets found: the message names what was looked for, the
        trees and at most a handful of candidate collections.
    """
    path = os.fspath(path)
    if fmt is not None and fmt not in FORMATS:
        raise InputFileError(f"{path}: unknown format {fmt!r}; expected one of {list(FORMATS)}")
    if "://" not in path and not os.path.exists(path):
        raise InputFileError(f"{path}: file not found")
    suffix = Path(path).suffix.lower()
    if fmt in ("pickle", "parquet") or suffix in PICKLE_SUFFIXES + PARQUET_SUFFIXES:
        if suffix not in PICKLE_SUFFIXES + PARQUET_SUFFIXES:
            raise InputFileError(f"{path}: --format {fmt} needs a .pkl or .parquet file")
        found = _detect_table(path, suffix, collection)
    else:
        found = _detect_root(path, fmt, collection, tree)
    if units is not None:
        found = replace(found, units=normalise_units(units, "--units"), units_overridden=True)
    log.info("%s: %s", path, found.describe())
    return found
