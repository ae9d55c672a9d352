"""Where an input file's jets are, and reading them.

`detect_source` turns the detected format (`hepae_coffea.io.formats.detect_format`) into
keyword arguments for `resolve_source`, which finds the tree, the jet branches, the units
and whether the tree can be rewritten branch for branch (``copy``) or only as a flat tree
(``flat``: ATLAS PHYSLITE's xAOD containers). `block_jets` reads one block's jets as model
inputs; `ChunkJets` holds the jets a processor has already read for a chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from ..errors import HepaeError, InputFileError, MissingBranchError
from ..io.jets import _find
from ..variables.registry import to_gev
from .choose import KINEMATICS
from .energy import ENERGY_KINEMATICS, mass_from_energy
from .root_copy import Unwritable, branch_specs

__all__ = [
    "PHYSLITE",
    "ChunkJets",
    "JetSource",
    "block_jets",
    "detect_source",
    "file_variables",
    "open_tree",
    "read_all_jets",
    "resolve_source",
]

Encode = Callable[[np.ndarray], np.ndarray]


@dataclass
class JetSource:
    """Where the jets are in an input file and in which units.

    ``branches`` maps each model variable to its branch (``{"pt": "Jet_pt", ...}``);
    ``layout`` is ``"copy"`` (the tree is rewritten branch for branch) or ``"flat"`` (only
    ``event_ids``, the jets and ``keep`` are written, for trees uproot cannot rewrite).
    ``mass_from_energy``: the jets have E instead of mass (ATLAS Open Data) and the model's
    mass is computed from E (``branches`` then holds ``E``, not ``mass``).
    """

    tree: str = "Events"
    collection: str = "Jet"
    branches: dict[str, str] = field(default_factory=dict)
    units: str = "GeV"
    layout: str = "copy"
    event_ids: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    mass_from_energy: bool = False

    @property
    def out_collection(self) -> str:
        """The jet collection's name in the compressed tree (``Jet`` for flat trees)."""
        return self.collection if self.layout == "copy" else "Jet"

    @property
    def out_tree(self) -> str:
        """The compressed tree's name (``Events`` for flat trees)."""
        return self.tree if self.layout == "copy" else "Events"


#: ATLAS DAOD_PHYSLITE: small-R jets of ``CollectionTree`` in MeV
PHYSLITE: dict[str, Any] = {
    "tree": "CollectionTree",
    "collection": "AnalysisJets",
    "branches": {
        "pt": "AnalysisJetsAuxDyn.pt",
        "eta": "AnalysisJetsAuxDyn.eta",
        "phi": "AnalysisJetsAuxDyn.phi",
        "mass": "AnalysisJetsAuxDyn.m",
    },
    "units": "MeV",
    "event_ids": [
        "EventInfoAuxDyn.runNumber",
        "EventInfoAuxDyn.eventNumber",
        "EventInfoAuxDyn.lumiBlock",
        "EventInfoAuxDyn.mcChannelNumber",
        "EventInfoAuxDyn.mcEventNumber",
    ],
}


def detect_source(
    path: str,
    variables: Sequence[str],
    *,
    fmt: str | None = None,
    units: str | None = None,
    collection: str | None = None,
    tree: str | None = None,
) -> tuple[dict[str, Any], str]:
    """`resolve_source` keyword arguments for ``path`` from `formats.detect_format`,
    and its one-line description.

    Jets with E instead of mass (ATLAS Open Data) give ``branches`` for pt, eta, phi and E
    and ``energy=True`` (see `energy_route`). Raises `InputFileError` for formats compress
    cannot write back (pickles, parquet) or jets without a branch for each of ``variables``.
    """
    from ..io.formats import detect_format

    found = detect_format(path, fmt=fmt, units=units, collection=collection, tree=tree)
    if found.tree is None:
        raise InputFileError(f"{path}: {found.title} files cannot be compressed (ROOT files only)")
    missing = [v for v in variables if v in KINEMATICS and v not in found.branches]
    if missing == ["mass"] and all(v in found.branches for v in ENERGY_KINEMATICS):
        kw_e: dict[str, Any] = {"units": found.units, "energy": True}
        kw_e["branches"] = {v: found.branches[v] for v in ENERGY_KINEMATICS}
        kw_e["tree"], kw_e["collection"] = found.tree, found.prefix.rstrip("_.")
        return kw_e, found.describe("GeV")
    if missing:
        raise InputFileError(
            f"{path}: {found.title} jets have {'/'.join(found.branches)} branches; compress "
            f"supports this format only with {'/'.join(KINEMATICS)} branches (no {missing})"
        )
    kw: dict[str, Any] = {"units": found.units}
    if all(v in found.branches for v in variables):
        kw["branches"] = {v: found.branches[v] for v in variables}
    # else: the model's other variables are found as <collection>_<variable>
    if found.name == "physlite":  # the flat layout with PHYSLITE's event identifiers
        kw["collection"] = found.prefix.split("AuxDyn")[0]
    else:
        kw["tree"], kw["collection"] = found.tree, found.prefix.rstrip("_.")
    return kw, found.describe("GeV")


def open_tree(f: Any, path: str, tree: str) -> Any:
    """Tree ``tree`` of the open file ``f`` (from ``path``), its branch list read.

    Raises `InputFileError` naming ``path`` when there is no such tree or it is unreadable.
    """
    try:
        if tree not in f:
            raise InputFileError(f"{path}: no tree {tree!r}; keys: {f.keys(cycle=False)}")
        t = f[tree]
        t.keys()
    except HepaeError:
        raise
    except Exception as err:  # noqa: BLE001
        raise InputFileError(f"{path}: cannot be read as a ROOT file ({err})") from None
    return t


def resolve_source(
    f: Any,
    path: str,
    variables: Sequence[str],
    *,
    tree: str | None = None,
    collection: str | None = None,
    branches: Mapping[str, str] | None = None,
    units: str | None = None,
    keep: Sequence[str] = (),
    mass_from_energy: bool = False,
) -> JetSource:
    """Work out the tree, jet branches, units and layout for ``variables`` (NanoAOD style
    ``<collection>_<variable>`` by default; ATLAS PHYSLITE when the file has its tree)."""
    if tree is None and "Events" not in f and PHYSLITE["tree"] in f:
        src = JetSource(
            tree=PHYSLITE["tree"],
            collection=PHYSLITE["collection"],
            branches=dict(PHYSLITE["branches"]),
            units=PHYSLITE["units"],
            event_ids=list(PHYSLITE["event_ids"]),
        )
    else:
        src = JetSource(tree=tree or "Events", collection=collection or "Jet")
    if collection is not None:
        src.collection = collection
    src.mass_from_energy = mass_from_energy
    t = open_tree(f, path, src.tree)
    keys = t.keys()
    if branches:
        src.branches = dict(branches)
    elif not src.branches:
        prefix = src.collection + "_"
        for v in variables:
            name = _find(keys, prefix, v)
            if name is None:
                raise MissingBranchError(
                    f"{path}: no branch for jet variable {v!r} of collection "
                    f"{src.collection!r}; available: {sorted(k for k in keys if k.startswith(prefix))}"
                )
            src.branches[v] = name
    missing = [b for b in src.branches.values() if b not in keys]
    if missing:
        raise MissingBranchError(f"{path}: tree {src.tree!r} has no branch {missing}")
    if units is not None:
        src.units = units
    src.keep = list(keep)
    absent = [k for k in src.keep if k not in keys]
    if absent:
        raise MissingBranchError(f"{path}: no branch {absent} to keep in tree {src.tree!r}")
    try:
        branch_specs(t)
        src.layout = "copy"
    except Unwritable:
        src.layout = "flat"
        src.event_ids = [b for b in src.event_ids if b in keys]
    return src


def file_variables(src: JetSource, variables: Sequence[str]) -> list[str]:
    """The file's variables behind ``variables`` (E for the mass of Open Data jets)."""
    if not src.mass_from_energy:
        return list(variables)
    return ["E" if v == "mass" else v for v in variables]


def jet_columns(src: JetSource, variables: Sequence[str]) -> list[str]:
    """The file's jet branches behind ``variables``, in their order."""
    return [src.branches[v] for v in file_variables(src, variables)]


def _refuse_nonfinite(x: np.ndarray, variables: Sequence[str], where: str) -> None:
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise HepaeError(
            f"{where}: {int(bad.sum())} jet(s) with non-finite {list(variables)} values; a lossy "
            f"latent cannot store them (drop or fix those jets first)"
        )


def block_jets(
    arrays: Any, src: JetSource, variables: Sequence[str], where: str
) -> tuple[Any, np.ndarray]:
    """One block's jets: (jets per event as an awkward array, (n, len(variables)) float32
    in the model's units), the mass computed from E for Open Data jets.

    Raises `InputFileError` when the jet branches disagree on the jet counts and
    `HepaeError` for non-finite values (a lossy latent cannot store them).
    """
    file_vars = file_variables(src, variables)
    cols = [src.branches[v] for v in file_vars]
    counts = ak.num(arrays[cols[0]], axis=1)
    for c in cols[1:]:
        if not ak.all(ak.num(arrays[c], axis=1) == counts):
            raise InputFileError(f"{where}: branch {c!r} has other jet counts than {cols[0]!r}")
    x = np.stack([ak.to_numpy(ak.flatten(arrays[c])).astype(np.float64) for c in cols], axis=1)
    _refuse_nonfinite(x, variables, where)
    x = to_gev(x, file_vars, src.units)
    if src.mass_from_energy:  # the model's mass from the file's E
        i, ipt, ieta = (list(variables).index(v) for v in ("mass", "pt", "eta"))
        x[:, i] = mass_from_energy(x[:, ipt], x[:, ieta], x[:, i])
    return counts, x.astype(np.float32)


def read_all_jets(
    trees: Sequence[Any],
    paths: Sequence[str],
    src: JetSource,
    variables: Sequence[str],
    step_size: str | int,
) -> tuple[np.ndarray, np.ndarray]:
    """All inputs' jet counts (int64) and (n, len(variables)) jets in model units."""
    counts, xs = [], []
    cols = jet_columns(src, variables)
    for p, t in zip(paths, trees, strict=True):
        try:
            for arrays in t.iterate(cols, step_size=step_size, library="ak"):
                c, x = block_jets(arrays, src, variables, p)
                counts.append(ak.to_numpy(c).astype(np.int64))
                xs.append(x)
        except HepaeError:
            raise
        except Exception as err:  # noqa: BLE001
            raise InputFileError(f"{p}: failed while reading ({err})") from None
    n = len(variables)
    return (
        np.concatenate(counts) if counts else np.zeros(0, np.int64),
        np.concatenate(xs) if xs else np.zeros((0, n), np.float32),
    )


@dataclass
class ChunkJets:
    """A chunk's jets as the processor already holds them, so the chunk writer neither
    reads the jet branches again nor encodes the same jets twice.

    Attributes
    ----------
    counts
        Jets per event (every jet of the chunk).
    values
        (n, len(variables)) jet values in the model's units (GeV), file order, all jets.
    variables
        The columns of ``values`` (the model's variables).
    latents
        The model's latents of ``values[kept]`` (float32, before any mantissa rounding).
    kept
        Which jets ``latents`` belong to (the processor's selected, in-domain jets).
    """

    counts: np.ndarray
    values: np.ndarray
    variables: list[str]
    latents: np.ndarray | None = None
    kept: np.ndarray | None = None

    def columns(self, variables: Sequence[str], where: str) -> np.ndarray:
        """``values`` for ``variables`` as float32, refusing non-finite jets (as compress)."""
        missing = [v for v in variables if v not in self.variables]
        if missing:
            raise HepaeError(f"{where}: the processor's jets have no {missing}")
        x = self.values[:, [self.variables.index(v) for v in variables]]
        _refuse_nonfinite(x, variables, where)
        return np.ascontiguousarray(x, np.float32)

    def encoder(self, encode: Encode) -> Encode:
        """An encoder that returns the stored latents for the chunk's own jets and runs
        ``encode`` only on the jets without them (or on any other input)."""
        own = self.columns(self.variables, "chunk")

        def call(x: np.ndarray) -> np.ndarray:
            if self.latents is None or self.kept is None or not np.array_equal(x, own):
                return encode(x)
            z = np.empty((len(x), self.latents.shape[1]), np.float32)
            z[self.kept] = self.latents
            rest = ~self.kept
            if rest.any():
                z[rest] = encode(np.ascontiguousarray(x[rest]))
            return z

        return call
