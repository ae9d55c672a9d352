"""Generate NanoAOD-style jet samples with Pythia 8 and FastJet.

Events are generated with Pythia 8 at 13 TeV using the bulk ``nextBatch``
interface, the visible final-state particles are clustered with the anti-kt
algorithm (R = 0.4) through FastJet's awkward interface, and per-jet quantities
are written batch by batch into a flat ``Events`` TTree with uproot.

Pythia 8 (``pythia8mc``) and FastJet (``fastjet``) are optional dependencies
(the ``generate`` extra); they are imported lazily, so this module can be
imported without them.

Written branches (NanoAOD naming):

``run`` (uint32, always 1), ``luminosityBlock`` (uint32, the seed),
``event`` (uint64, 1..N), ``genWeight`` and ``Generator_weight`` (float32, the
same Pythia event weight: 1 for unbiased samples, the inverse of the
phase-space bias for biased ones), ``nJet`` (int32), and jagged per jet:
``Jet_pt``, ``Jet_eta``, ``Jet_phi``, ``Jet_mass`` (float32),
``Jet_nConstituents``, ``Jet_nCharged`` (int32),
``Jet_chHEF``, ``Jet_neHEF``, ``Jet_chEmEF``, ``Jet_neEmEF``, ``Jet_muEF``,
``Jet_width``, ``Jet_ptD`` (float32).

Biased (flat-ish) spectra: Pythia's ``PhaseSpace:bias2Selection`` samples
2 -> 2 processes with an extra factor ``(pTHat / ref)^pow`` and gives each event
the compensating weight; histograms filled with ``genWeight`` reproduce the
unbiased spectrum. ``qcd_flat`` is such a sample (pTHatMin 15 GeV, pow 5.5), so
jets from 10 GeV to several TeV are all populated. pT-hat slices are obtained
with ``pthat_min``/``pthat_max``.

Every visible final-state particle falls into exactly one of the five
energy-fraction categories (charged hadron, neutral hadron, electron, photon,
muon), so the fractions of a jet sum to one up to float32 rounding.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

__all__ = ["BRANCHES", "PROCESSES", "GenerationSummary", "generate"]

logger = logging.getLogger(__name__)

#: Settings shared by every process (13 TeV pp, quiet, seeded).
COMMON_SETTINGS: list[str] = [
    "Beams:idA = 2212",
    "Beams:idB = 2212",
    "Beams:eCM = 13000.",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Random:setSeed = on",
]

#: Pythia settings per process.
PROCESSES: dict[str, list[str]] = {
    "qcd": [
        "HardQCD:all = on",
        "PhaseSpace:pTHatMin = 50.",
    ],
    "qcd_flat": [
        "HardQCD:all = on",
        "PhaseSpace:pTHatMin = 15.",
        "PhaseSpace:bias2Selection = on",
        "PhaseSpace:bias2SelectionPow = 5.5",
        "PhaseSpace:bias2SelectionRef = 15.",
    ],
    "wjets": [
        "WeakBosonAndParton:qqbar2Wg = on",
        "WeakBosonAndParton:qg2Wq = on",
        "PhaseSpace:pTHatMin = 30.",
        "PhaseSpace:bias2Selection = on",
        "PhaseSpace:bias2SelectionPow = 3.",
        "PhaseSpace:bias2SelectionRef = 30.",
    ],
    "zjets": [
        "WeakBosonAndParton:qqbar2gmZg = on",
        "WeakBosonAndParton:qg2gmZq = on",
        "WeakZ0:gmZmode = 2",
        "PhaseSpace:pTHatMin = 30.",
        "PhaseSpace:bias2Selection = on",
        "PhaseSpace:bias2SelectionPow = 3.",
        "PhaseSpace:bias2SelectionRef = 30.",
    ],
    "ttbar": [
        "Top:gg2ttbar = on",
        "Top:qqbar2ttbar = on",
    ],
    "zprime": [
        "NewGaugeBoson:ffbar2gmZZprime = on",
        "Zprime:gmZmode = 3",
        "32:m0 = 2000.",
        "32:onMode = off",
        "32:onIfAny = 1 2 3 4 5 6",
        # Without a window, PDFs enhance the low-mass Breit-Wigner tail (~5% of
        # events below 1.3 TeV, ~1% near 100 GeV); keep the resonance region.
        "32:mMin = 1000.",
        "32:mMax = 3000.",
    ],
}

#: Branches written to the ``Events`` tree, with their (per-entry) dtypes.
BRANCHES: dict[str, np.dtype] = {
    "run": np.dtype(np.uint32),
    "luminosityBlock": np.dtype(np.uint32),
    "event": np.dtype(np.uint64),
    "genWeight": np.dtype(np.float32),
    "Generator_weight": np.dtype(np.float32),
    "nJet": np.dtype(np.int32),
    "Jet_pt": np.dtype(np.float32),
    "Jet_eta": np.dtype(np.float32),
    "Jet_phi": np.dtype(np.float32),
    "Jet_mass": np.dtype(np.float32),
    "Jet_nConstituents": np.dtype(np.int32),
    "Jet_nCharged": np.dtype(np.int32),
    "Jet_chHEF": np.dtype(np.float32),
    "Jet_neHEF": np.dtype(np.float32),
    "Jet_chEmEF": np.dtype(np.float32),
    "Jet_neEmEF": np.dtype(np.float32),
    "Jet_muEF": np.dtype(np.float32),
    "Jet_width": np.dtype(np.float32),
    "Jet_ptD": np.dtype(np.float32),
}

_JET_FIELDS: list[str] = [name[len("Jet_") :] for name in BRANCHES if name.startswith("Jet_")]

SEED_MIN = 1
SEED_MAX = 900_000_000
JET_R = 0.4
DEFAULT_PTHAT_MIN = 50.0

_INSTALL_HINT = "hepae generate needs the 'generate' extra: pip install 'hepae-coffea[generate]'"

# Particle categories used for the energy fractions.
_CAT_CH_HADRON, _CAT_NE_HADRON, _CAT_ELECTRON, _CAT_PHOTON, _CAT_MUON = range(5)
_FRACTION_FIELDS = ("chHEF", "neHEF", "chEmEF", "neEmEF", "muEF")
_NEUTRINOS = frozenset({12, 14, 16})


@dataclass
class GenerationSummary:
    """Outcome of one :func:`generate` call.

    Attributes
    ----------
    path : str
        Output ROOT file.
    process : str
        Process name (a key of :data:`PROCESSES`).
    seed : int
        Pythia random seed (also stored as ``luminosityBlock``).
    n_events : int
        Number of events written.
    n_jets : int
        Total number of jets written.
    seconds : float
        Wall time of the whole call (initialisation included).
    events_per_second : float
        ``n_events / seconds``.
    timings : dict of str to float
        Wall time split into ``init`` (Pythia initialisation), ``shower``
        (``nextBatch``: hard process, showers, hadronisation, decays),
        ``extract`` (visible final-state selection), ``cluster`` (FastJet and
        jet observables) and ``write`` (uproot).
    """

    path: str
    process: str
    seed: int
    n_events: int
    n_jets: int
    seconds: float
    events_per_second: float
    timings: dict[str, float] = field(default_factory=dict)


def _import_backends() -> tuple[Any, Any]:
    """Import ``pythia8mc`` and ``fastjet``, with a helpful error if missing."""
    modules = []
    for name in ("pythia8mc", "fastjet"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError as exc:
            raise ImportError(f"{_INSTALL_HINT} (missing: {name})") from exc
    return modules[0], modules[1]


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _validate(
    process: str,
    n_events: int,
    seed: int,
    batch_size: int,
    jet_ptmin: float,
    jet_etamax: float | None = None,
) -> None:
    if process not in PROCESSES:
        raise ValueError(
            f"unknown process {process!r}; valid processes: {', '.join(sorted(PROCESSES))}"
        )
    if not (_is_int(seed) and SEED_MIN <= seed <= SEED_MAX):
        raise ValueError(
            f"seed must be an integer in [{SEED_MIN}, {SEED_MAX}] (Pythia's range), got {seed!r}"
        )
    if not (_is_int(n_events) and n_events >= 1):
        raise ValueError(f"n_events must be a positive integer, got {n_events!r}")
    if not (_is_int(batch_size) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not np.isfinite(jet_ptmin) or jet_ptmin < 0:
        raise ValueError(f"jet_ptmin must be a finite non-negative number, got {jet_ptmin!r}")
    if jet_etamax is not None and not (np.isfinite(jet_etamax) and jet_etamax > 0):
        raise ValueError(f"jet_etamax must be a finite positive number, got {jet_etamax!r}")


def _check_nonneg(name: str, value: float) -> float:
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
    return float(value)


def pythia_settings(
    process: str,
    seed: int,
    pthat_min: float | None = None,
    *,
    pthat_max: float | None = None,
    bias_pow: float | None = None,
    bias_ref: float | None = None,
) -> list[str]:
    """Full list of Pythia ``readString`` settings for a process.

    Parameters
    ----------
    process : str
        Key of :data:`PROCESSES`.
    seed : int
        Random seed, 1..900000000.
    pthat_min, pthat_max : float, optional
        Override ``PhaseSpace:pTHatMin`` / ``pTHatMax`` (a pT-hat slice; only
        affects 2 -> 2 processes, the s-channel Z' is 2 -> 1).
    bias_pow : float, optional
        Turns ``PhaseSpace:bias2Selection`` on with this power (0 turns it
        off); events then carry weights (``genWeight``).
    bias_ref : float, optional
        ``PhaseSpace:bias2SelectionRef`` in GeV (only changes the weights'
        normalisation).

    Returns
    -------
    list of str
    """
    settings = [*COMMON_SETTINGS, f"Random:seed = {int(seed)}", *PROCESSES[process]]
    if pthat_min is not None:
        settings.append(f"PhaseSpace:pTHatMin = {_check_nonneg('pthat_min', pthat_min)!r}")
    if pthat_max is not None:
        value = _check_nonneg("pthat_max", pthat_max)
        if pthat_min is not None and value <= pthat_min:
            raise ValueError(f"pthat_max ({pthat_max!r}) must exceed pthat_min ({pthat_min!r})")
        settings.append(f"PhaseSpace:pTHatMax = {value!r}")
    if bias_pow is not None:
        value = _check_nonneg("bias_pow", bias_pow)
        if value == 0:
            settings.append("PhaseSpace:bias2Selection = off")
        else:
            settings.append("PhaseSpace:bias2Selection = on")
            settings.append(f"PhaseSpace:bias2SelectionPow = {value!r}")
    if bias_ref is not None:
        value = _check_nonneg("bias_ref", bias_ref)
        if value == 0:
            raise ValueError("bias_ref must be positive")
        settings.append(f"PhaseSpace:bias2SelectionRef = {value!r}")
    return settings


def _event_weights(batch: ak.Array) -> np.ndarray:
    """Pythia's nominal event weight (first entry of ``info.weights``) per event."""
    weights = batch["info"]["weights"]
    if not np.all(ak.to_numpy(ak.num(weights, axis=1)) >= 1):
        raise RuntimeError("Pythia returned an event without a weight")
    out = np.asarray(ak.to_numpy(ak.firsts(weights)), dtype=np.float64)
    if not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise RuntimeError("Pythia returned a non-finite or non-positive event weight")
    return out


def _make_pythia(pythia8mc: Any, settings: list[str]) -> Any:
    pythia = pythia8mc.Pythia("", False)
    for line in settings:
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia rejected setting {line!r}")
    if not pythia.init():
        raise RuntimeError("Pythia initialisation failed (settings: " + "; ".join(settings) + ")")
    return pythia


class _ParticleTable:
    """Per-PDG-id lookups (visibility, charge, category), cached across batches.

    ``particleData`` is queried once per distinct id ever seen; per-particle
    values are obtained with ``np.unique`` + inverse indexing.
    """

    def __init__(self, particle_data: Any) -> None:
        self._pd = particle_data
        self._cache: dict[int, tuple[bool, int, int]] = {}

    def _lookup(self, pid: int) -> tuple[bool, int, int]:
        entry = self._cache.get(pid)
        if entry is None:
            apid = abs(pid)
            visible = bool(self._pd.isVisible(pid)) and apid not in _NEUTRINOS
            charge3 = round(3.0 * float(self._pd.charge(pid)))
            if apid == 11:
                cat = _CAT_ELECTRON
            elif apid == 13:
                cat = _CAT_MUON
            elif apid == 22:
                cat = _CAT_PHOTON
            elif charge3 != 0:
                cat = _CAT_CH_HADRON
            else:
                cat = _CAT_NE_HADRON
            entry = (visible, charge3, cat)
            self._cache[pid] = entry
        return entry

    def __call__(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(visible, charged, category)`` arrays aligned with ``ids``."""
        uniq, inverse = np.unique(ids, return_inverse=True)
        table = [self._lookup(int(pid)) for pid in uniq]  # one entry per distinct id
        visible = np.fromiter((t[0] for t in table), dtype=bool, count=len(table))
        charged = np.fromiter((t[1] != 0 for t in table), dtype=bool, count=len(table))
        category = np.fromiter((t[2] for t in table), dtype=np.int8, count=len(table))
        return visible[inverse], charged[inverse], category[inverse]


@dataclass
class _Particles:
    """Visible final-state particles of a batch as flat arrays + event offsets."""

    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    charged: np.ndarray
    category: np.ndarray
    offsets: np.ndarray  # int64, length n_events + 1

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1


def _flat(array: ak.Array, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(ak.to_numpy(ak.flatten(array, axis=1)), dtype=dtype)


def _extract_particles(batch: ak.Array, table: _ParticleTable) -> _Particles:
    """Select visible final-state particles (status > 0) from a ``nextBatch`` array."""
    prt = batch["prt"]
    counts = ak.to_numpy(ak.num(prt, axis=1)).astype(np.int64)
    status = _flat(prt["status"], np.int32)
    ids = _flat(prt["id"], np.int32)
    final = status > 0
    fs_ids = ids[final]
    visible, charged, category = table(fs_ids)
    keep = np.flatnonzero(final)[visible]
    event_of = np.repeat(np.arange(len(counts)), counts)[keep]
    kept_counts = np.bincount(event_of, minlength=len(counts))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(kept_counts, out=offsets[1:])
    mom = prt["p"]
    return _Particles(
        px=_flat(mom["px"], np.float64)[keep],
        py=_flat(mom["py"], np.float64)[keep],
        pz=_flat(mom["pz"], np.float64)[keep],
        e=_flat(mom["e"], np.float64)[keep],
        charged=charged[visible],
        category=category[visible],
        offsets=offsets,
    )


@dataclass
class _Clustered:
    """Jets of a batch in FastJet's order plus their constituents (flat indices)."""

    jet_px: np.ndarray
    jet_py: np.ndarray
    jet_pz: np.ndarray
    jet_e: np.ndarray
    jets_per_event: np.ndarray  # int64, n_events
    constituents: np.ndarray  # int64 indices into the flat _Particles arrays
    constituent_jet: np.ndarray  # int64 jet index (FastJet order) of each constituent
    constituents_per_jet: np.ndarray  # int64, n_jets


def _particles_to_awkward(particles: _Particles) -> ak.Array:
    content = ak.contents.RecordArray(
        [
            ak.contents.NumpyArray(particles.px),
            ak.contents.NumpyArray(particles.py),
            ak.contents.NumpyArray(particles.pz),
            ak.contents.NumpyArray(particles.e),
        ],
        ["px", "py", "pz", "E"],
    )
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(particles.offsets), content))


def _cluster(particles: _Particles, fastjet: Any, jet_ptmin: float) -> _Clustered:
    """Anti-kt R=0.4 clustering; jets and constituent lists from the same ``min_pt``.

    ``inclusive_jets(min_pt)`` and ``constituent_index(min_pt)`` both walk
    FastJet's inclusive-jet list for each event in the same (unsorted) order,
    so the i-th constituent list belongs to the i-th jet; :func:`generate`
    re-checks this on every batch via the energy sum.
    """
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, JET_R)
    sequence = fastjet.ClusterSequence(_particles_to_awkward(particles), jetdef)
    jets = sequence.inclusive_jets(jet_ptmin)
    index = sequence.constituent_index(jet_ptmin)

    jets_per_event = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
    if not np.array_equal(jets_per_event, ak.to_numpy(ak.num(index, axis=1))):
        raise RuntimeError("FastJet returned different jet counts for jets and constituents")
    jet_index = ak.flatten(index, axis=1)
    constituents_per_jet = ak.to_numpy(ak.num(jet_index, axis=1)).astype(np.int64)
    local = np.asarray(ak.to_numpy(ak.flatten(jet_index, axis=1)), dtype=np.int64)

    n_events = particles.n_events
    n_jets = int(jets_per_event.sum())
    jet_event = np.repeat(np.arange(n_events), jets_per_event)
    constituent_jet = np.repeat(np.arange(n_jets), constituents_per_jet)
    constituents = particles.offsets[jet_event[constituent_jet]] + local

    def flat(name: str) -> np.ndarray:
        return np.asarray(ak.to_numpy(ak.flatten(jets[name], axis=1)), dtype=np.float64)

    return _Clustered(
        jet_px=flat("px"),
        jet_py=flat("py"),
        jet_pz=flat("pz"),
        jet_e=flat("E"),
        jets_per_event=jets_per_event,
        constituents=constituents,
        constituent_jet=constituent_jet,
        constituents_per_jet=constituents_per_jet,
    )


def _constituent_sums(particles: _Particles, clustered: _Clustered) -> np.ndarray:
    """Four-vector sums ``(px, py, pz, E)`` of each jet's constituents, shape (n_jets, 4)."""
    n_jets = len(clustered.jet_e)
    idx = clustered.constituents
    cj = clustered.constituent_jet
    return np.stack(
        [
            np.bincount(cj, weights=comp[idx], minlength=n_jets)
            for comp in (particles.px, particles.py, particles.pz, particles.e)
        ],
        axis=1,
    )


def _wrap_phi32(phi: np.ndarray) -> np.ndarray:
    """float32 azimuth in (-pi, pi] (after float32 rounding)."""
    out = phi.astype(np.float32)
    pi32 = np.float32(np.pi)
    out[out <= -pi32] = pi32
    out[out > pi32] = pi32
    return out


def _jet_observables(particles: _Particles, clustered: _Clustered) -> dict[str, np.ndarray]:
    """Per-jet observables in FastJet order (float64 / int64, not yet sorted)."""
    n_jets = len(clustered.jet_e)
    px, py, pz, e = clustered.jet_px, clustered.jet_py, clustered.jet_pz, clustered.jet_e
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.divide(pz, pt, out=np.zeros_like(pz), where=pt > 0))
    phi = np.arctan2(py, px)
    mass = np.sqrt(np.maximum(e * e - (px * px + py * py + pz * pz), 0.0))

    idx = clustered.constituents
    cj = clustered.constituent_jet
    c_px, c_py, c_pz, c_e = (
        particles.px[idx],
        particles.py[idx],
        particles.pz[idx],
        particles.e[idx],
    )
    c_pt = np.hypot(c_px, c_py)
    with np.errstate(divide="ignore", invalid="ignore"):
        c_eta = np.arcsinh(np.divide(c_pz, c_pt, out=np.zeros_like(c_pz), where=c_pt > 0))
    c_phi = np.arctan2(c_py, c_px)
    d_eta = c_eta - eta[cj]
    d_phi = np.remainder(c_phi - phi[cj] + np.pi, 2.0 * np.pi) - np.pi
    d_r = np.hypot(d_eta, d_phi)

    sum_e = np.bincount(cj, weights=c_e, minlength=n_jets)
    sum_pt = np.bincount(cj, weights=c_pt, minlength=n_jets)
    sum_pt2 = np.bincount(cj, weights=c_pt * c_pt, minlength=n_jets)
    sum_pt_dr = np.bincount(cj, weights=c_pt * d_r, minlength=n_jets)
    category = particles.category[idx]
    safe_e = np.where(sum_e > 0, sum_e, 1.0)
    safe_pt = np.where(sum_pt > 0, sum_pt, 1.0)

    out: dict[str, np.ndarray] = {
        "pt": pt,
        "eta": eta,
        "phi": phi,
        "mass": mass,
        "nConstituents": clustered.constituents_per_jet,
        "nCharged": np.bincount(
            cj, weights=particles.charged[idx].astype(np.float64), minlength=n_jets
        ).astype(np.int64),
    }
    for cat, name in enumerate(_FRACTION_FIELDS):
        weights = np.where(category == cat, c_e, 0.0)
        out[name] = np.bincount(cj, weights=weights, minlength=n_jets) / safe_e
    out["width"] = sum_pt_dr / safe_pt
    out["ptD"] = np.sqrt(sum_pt2) / safe_pt
    out["_constituent_e"] = sum_e
    return out


def _build_jets(
    particles: _Particles, fastjet: Any, jet_ptmin: float, jet_etamax: float | None = None
) -> tuple[ak.Array, np.ndarray]:
    """Cluster one batch; return the NanoAOD ``Jet`` record array and jets per event.

    Jets with ``|eta| > jet_etamax`` (when given) are dropped after clustering.
    """
    clustered = _cluster(particles, fastjet, jet_ptmin)
    obs = _jet_observables(particles, clustered)
    # Guard against a jet/constituent misalignment (E-scheme: jet E = sum of constituent E).
    constituent_e = obs.pop("_constituent_e")
    if not np.allclose(constituent_e, clustered.jet_e, rtol=1e-9, atol=1e-6):
        raise RuntimeError("FastJet jets and constituent lists are misaligned")

    jets_per_event = clustered.jets_per_event
    jet_event = np.repeat(np.arange(particles.n_events), jets_per_event)
    order = np.lexsort((-obs["pt"], jet_event))  # by event, then pt descending
    if jet_etamax is not None:
        order = order[np.abs(obs["eta"][order]) <= jet_etamax]
        jets_per_event = np.bincount(jet_event[order], minlength=particles.n_events).astype(
            np.int64
        )
    offsets = np.zeros(particles.n_events + 1, dtype=np.int64)
    np.cumsum(jets_per_event, out=offsets[1:])

    columns = []
    for name in _JET_FIELDS:
        values = obs[name][order]
        if name == "phi":
            columns.append(_wrap_phi32(values))
        else:
            columns.append(values.astype(BRANCHES[f"Jet_{name}"]))
    record = ak.contents.RecordArray([ak.contents.NumpyArray(c) for c in columns], _JET_FIELDS)
    jets = ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))
    return jets, jets_per_event


def _tree_branch_types() -> dict[str, Any]:
    jet_type = ak.types.ListType(
        ak.types.RecordType(
            [ak.types.NumpyType(BRANCHES[f"Jet_{n}"].name) for n in _JET_FIELDS], _JET_FIELDS
        )
    )
    return {
        "run": BRANCHES["run"],
        "luminosityBlock": BRANCHES["luminosityBlock"],
        "event": BRANCHES["event"],
        "genWeight": BRANCHES["genWeight"],
        "Generator_weight": BRANCHES["Generator_weight"],
        "Jet": jet_type,
    }


def generate(
    process: str,
    n_events: int,
    seed: int,
    output: str | os.PathLike[str],
    *,
    pthat_min: float | None = None,
    pthat_max: float | None = None,
    bias_pow: float | None = None,
    bias_ref: float | None = None,
    jet_ptmin: float = 20.0,
    jet_etamax: float | None = None,
    batch_size: int = 500,
    progress: bool = True,
    overwrite: bool = False,
) -> GenerationSummary:
    """Generate events, cluster anti-kt R=0.4 jets and write a NanoAOD-style ROOT file.

    Parameters
    ----------
    process : str
        One of :data:`PROCESSES` (``"qcd"``, ``"qcd_flat"``, ``"wjets"``,
        ``"zjets"``, ``"ttbar"``, ``"zprime"``).
    n_events : int
        Number of events to write (events without jets are kept, ``nJet = 0``).
    seed : int
        Pythia random seed in 1..900000000; the same seed gives identical output.
    output : str or os.PathLike[str]
        Output ROOT file (tree ``Events``); written atomically.
    pthat_min : float, optional
        Overrides ``PhaseSpace:pTHatMin`` (default 50 GeV for ``qcd``).
    pthat_max : float, optional
        ``PhaseSpace:pTHatMax`` (with ``pthat_min``: a pT-hat slice).
    bias_pow, bias_ref : float, optional
        Phase-space bias ``(pTHat / bias_ref)^bias_pow`` (see
        :func:`pythia_settings`); the compensating weights are written to
        ``genWeight`` / ``Generator_weight``.
    jet_ptmin : float, default 20.0
        Minimum jet pT in GeV.
    jet_etamax : float, optional
        Maximum jet ``|eta|`` (no cut by default: FastJet clusters every
        visible particle, so jets reach ``|eta|`` of 6 and more).
    batch_size : int, default 500
        Events per ``nextBatch`` call and per written basket.
    progress : bool, default True
        Show a tqdm progress bar.
    overwrite : bool, default False
        Replace an existing ``output``.

    Returns
    -------
    GenerationSummary

    Raises
    ------
    ValueError
        Unknown process, seed out of range or other invalid argument.
    FileExistsError
        ``output`` exists and ``overwrite`` is False.
    ImportError
        ``pythia8mc`` or ``fastjet`` is not installed.
    """
    _validate(process, n_events, seed, batch_size, jet_ptmin, jet_etamax)
    settings = pythia_settings(
        process, seed, pthat_min, pthat_max=pthat_max, bias_pow=bias_pow, bias_ref=bias_ref
    )
    out_path = Path(output)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"output {str(out_path)!r} exists (pass overwrite=True to replace)")
    pythia8mc, fastjet = _import_backends()
    import uproot
    from tqdm.auto import tqdm

    n_events, seed, batch_size = int(n_events), int(seed), int(batch_size)
    timings = dict.fromkeys(("init", "shower", "extract", "cluster", "write"), 0.0)
    start = time.perf_counter()

    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Unique name in the same directory (so os.replace is atomic); created by uproot
    # with the usual umask-based permissions (mkstemp would force 0600).
    tmp_name = str(out_path.parent / f".{out_path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    n_done = 0
    n_jets = 0
    try:
        pythia = _make_pythia(pythia8mc, settings)
        table = _ParticleTable(pythia.particleData)
        timings["init"] = time.perf_counter() - start
        logger.info("generating %d %s events (seed %d) into %s", n_events, process, seed, out_path)
        with (
            uproot.recreate(tmp_name) as root_file,
            tqdm(
                total=n_events, unit="ev", desc=f"{process} seed {seed}", disable=not progress
            ) as bar,
        ):
            tree = root_file.mktree("Events", _tree_branch_types())
            while n_done < n_events:
                n = min(batch_size, n_events - n_done)
                t0 = time.perf_counter()
                # "skip"-like: failed events are retried, at most 10 * n attempts.
                batch = pythia.nextBatch(n, 10.0)
                t1 = time.perf_counter()
                if len(batch) != n:
                    raise RuntimeError(f"Pythia returned {len(batch)} events instead of {n}")
                weights = _event_weights(batch).astype(np.float32)
                particles = _extract_particles(batch, table)
                del batch
                t2 = time.perf_counter()
                jets, jets_per_event = _build_jets(particles, fastjet, jet_ptmin, jet_etamax)
                t3 = time.perf_counter()
                tree.extend(
                    {
                        "run": np.ones(n, dtype=np.uint32),
                        "luminosityBlock": np.full(n, seed, dtype=np.uint32),
                        "event": np.arange(n_done + 1, n_done + n + 1, dtype=np.uint64),
                        "genWeight": weights,
                        "Generator_weight": weights,
                        "Jet": jets,
                    }
                )
                t4 = time.perf_counter()
                timings["shower"] += t1 - t0
                timings["extract"] += t2 - t1
                timings["cluster"] += t3 - t2
                timings["write"] += t4 - t3
                n_done += n
                n_jets += int(jets_per_event.sum())
                bar.update(n)
        os.replace(tmp_name, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise

    seconds = time.perf_counter() - start
    summary = GenerationSummary(
        path=str(out_path),
        process=process,
        seed=seed,
        n_events=n_done,
        n_jets=n_jets,
        seconds=seconds,
        events_per_second=n_done / seconds if seconds > 0 else float("inf"),
        timings=timings,
    )
    logger.info(
        "wrote %s: %d events, %d jets (%.2f jets/event) in %.1f s (%.1f events/s; "
        "init %.1f s, shower %.1f s, extract %.1f s, cluster %.1f s, write %.1f s)",
        out_path,
        n_done,
        n_jets,
        n_jets / max(n_done, 1),
        seconds,
        summary.events_per_second,
        timings["init"],
        timings["shower"],
        timings["extract"],
        timings["cluster"],
        timings["write"],
    )
    return summary
