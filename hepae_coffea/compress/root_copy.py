"""Faithful copies of ROOT trees with uproot: names, types, order, counters and titles.

uproot's writer makes every counter of a jagged branch ``int32`` and groups records as it
likes; the functions here declare each branch individually, in the source's order, with the
source's counter (``nJet`` for ``Jet_pt``), the counter's own integer type (NanoAOD's are
``uint32``) and the branch titles (NanoAOD keeps its documentation there). What uproot cannot
write (branches of C++ objects, e.g. CMSSW's ``MetaData`` and ``ParameterSets`` trees) is
reported, never copied half.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BranchSpec",
    "Unwritable",
    "branch_specs",
    "copy_object",
    "create_tree",
    "file_compression",
    "fill",
    "finish_tree",
    "iterate_specs",
    "register_streamers",
    "tree_keys",
]

log = logging.getLogger(__name__)

#: object classes (besides TTree) that uproot can write back as read
COPYABLE_CLASSES = ("TObjString",)


class Unwritable(Exception):
    """A branch or object uproot cannot write (message says which and why)."""


@dataclass(frozen=True)
class BranchSpec:
    """How one branch is written: numpy dtype name (native order), counter, title."""

    name: str
    dtype: str
    counter: str | None = None
    title: str | None = None
    shape: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "counter": self.counter,
            "title": self.title,
            "shape": list(self.shape),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BranchSpec:
        return cls(d["name"], d["dtype"], d.get("counter"), d.get("title"), tuple(d["shape"]))


def file_compression(f) -> Any:
    """The compression (algorithm and level) a ROOT file was written with."""
    import uproot

    return uproot.compression.Compression.from_code(int(f.file.fCompress))


def branch_specs(tree) -> list[BranchSpec]:
    """Specs of every top-level branch of an uproot tree, in order.

    Raises :class:`Unwritable` naming the first branch uproot cannot write back.
    """
    import uproot

    out = []
    for b in tree.branches:
        if b.branches:
            raise Unwritable(f"branch {b.name!r} has sub-branches (an object container)")
        interp = b.interpretation
        counter = None
        if isinstance(interp, uproot.interpretation.jagged.AsJagged):
            if getattr(interp, "header_bytes", 0):
                raise Unwritable(f"branch {b.name!r} is a C++ vector (uproot writes no vectors)")
            lc = b.member("fLeaves")[0].member("fLeafCount")
            if lc is None:
                raise Unwritable(f"branch {b.name!r} is jagged without a counter leaf")
            counter = lc.member("fName")
            interp = interp.content
        if not isinstance(interp, uproot.interpretation.numerical.AsDtype) or isinstance(
            interp,
            uproot.interpretation.numerical.AsDouble32 | uproot.interpretation.numerical.AsFloat16,
        ):
            raise Unwritable(f"branch {b.name!r} holds {interp} (not a plain number type)")
        dt = np.dtype(interp.to_dtype)
        shape = tuple(int(x) for x in (dt.shape or ()))
        base = (dt.base if dt.shape else dt).newbyteorder("=")
        out.append(BranchSpec(b.name, base.name, counter, b.title, shape))
    return out


def _declared_type(spec: BranchSpec) -> Any:
    import awkward as ak

    dt = np.dtype(spec.dtype)
    if spec.counter is not None:
        if spec.shape:
            return None
        return ak.types.ListType(ak.types.NumpyType(ak.types.numpytype.dtype_to_primitive(dt)))
    return np.dtype((dt, spec.shape)) if spec.shape else dt


def create_tree(fout, name: str, specs: Sequence[BranchSpec], title: str = "", capacity: int = 2):
    """Start tree ``name`` in ``fout`` with exactly ``specs`` (order, types, counters, titles).

    Nothing of the tree's metadata is written until :func:`finish_tree`, which writes it
    once, compressed like the baskets (uproot itself writes it uncompressed, about 0.6 kB per
    branch, and rewrites it as it grows). ``capacity`` is the number of baskets per branch
    reserved at first; :func:`fill` writes one basket per branch per call. Returns the
    writer to pass to :func:`fill` and :func:`finish_tree`.
    """
    import uproot.writing._cascadetree as cascadetree

    counters = {s.name: s.counter for s in specs if s.counter is not None}
    types = {}
    for s in specs:
        t = _declared_type(s)
        if t is None:
            raise Unwritable(
                f"branch {s.name!r}: jagged arrays of shape {s.shape} are not writable"
            )
        types[s.name] = t
    directory = fout._cascading
    casc = cascadetree.Tree(
        directory,
        name,
        title,
        types,
        directory._freesegments,
        lambda b: counters.get(b, "n" + b),
        lambda outer, inner: inner if outer == "" else outer + "_" + inner,
        max(int(capacity), 2),
        10.0,
    )
    # uproot makes counters int32 and titles its own: restore the source's. This uses
    # uproot's private writer API (checked by the round-trip tests).
    by_name = {s.name: s for s in specs}
    for datum in casc._branch_data:
        s = by_name.get(datum.get("fName")) if datum.get("kind") != "record" else None
        if s is None:
            continue
        want = np.dtype(s.dtype).newbyteorder(">")
        if datum["kind"] == "counter" and want != datum["dtype"]:
            if want.kind not in "iu":
                raise Unwritable(f"counter {s.name!r} has non-integer type {s.dtype}")
            datum["dtype"] = want
        if s.title is not None:
            datum["fTitle"] = s.title
    # the metadata is written once by finish_tree(): no in-place patches, no relocations
    casc.write_updates = lambda sink: None
    casc._relocate = lambda file, sink: None
    return casc


def fill(fout, casc, specs: Sequence[BranchSpec], arrays: Mapping[str, Any]) -> None:
    """Append one block of entries (one basket per branch); ``arrays`` holds every branch
    of ``specs`` by name."""
    import awkward as ak

    data = {}
    for s in specs:
        a = arrays[s.name]
        if s.counter is None:
            a = ak.to_numpy(a) if isinstance(a, ak.Array) else np.asarray(a)
            data[s.name] = a.astype(np.dtype((np.dtype(s.dtype), s.shape)) if s.shape else s.dtype)
        else:
            data[s.name] = ak.values_astype(a, s.dtype)
    file = fout._file
    casc.extend(file, file.sink, data)


def register_streamers(fout) -> None:
    """Record the streamers of trees and strings in ``fout``. Call it before writing
    anything else: the streamer record then never has to move (which leaves a hole)."""
    import uproot
    import uproot.writing._cascade as cascade

    streamers, seen = [], set()
    for model in (
        uproot.models.TObjString.Model_TObjString,
        uproot.models.TLeaf.Model_TLeafB_v1,
        uproot.models.TLeaf.Model_TLeafS_v1,
        uproot.models.TLeaf.Model_TLeafI_v1,
        uproot.models.TLeaf.Model_TLeafL_v1,
        uproot.models.TLeaf.Model_TLeafF_v1,
        uproot.models.TLeaf.Model_TLeafD_v1,
        uproot.models.TLeaf.Model_TLeafC_v1,
        uproot.models.TLeaf.Model_TLeafO_v1,
        uproot.models.TBranch.Model_TBranch_v13,
        uproot.models.TTree.Model_TTree_v20,
    ):
        for rawstreamer in model.class_rawstreamers:
            if (rawstreamer[-2], rawstreamer[-1]) not in seen:
                seen.add((rawstreamer[-2], rawstreamer[-1]))
                streamers.append(cascade.RawStreamerInfo(*rawstreamer))
    fout._file._cascading.streamers.update_streamers(fout._file.sink, streamers)


def finish_tree(fout, casc) -> None:
    """Write a tree started by :func:`create_tree` (after its last :func:`fill`)."""
    import uproot

    file = fout._file
    raw = bytearray(b"".join(casc._build_out()))
    # _build_out writes every counter leaf's fMaximum as 0 (uproot patches it in place as
    # baskets are added, which create_tree switched off); ROOT then reads no jets at all
    # ("Leaf counter is greater than maximum"): write the largest count seen here.
    for datum in casc._branch_data:
        if datum.get("kind") == "counter":
            special = datum["tleaf_special_struct"]
            at = datum["basket_metadata_start"] - 25 - special.size  # fMinimum, fMaximum
            raw[at : at + special.size] = special.pack(0, datum["tleaf_maximum_value"])
    raw = bytes(raw)
    data = uproot.compression.compress(raw, file.compression)
    casc._key = casc._directory.add_object(
        file.sink, "TTree", casc._name, casc._title, data, len(raw), big=True
    )
    register_streamers(fout)
    file.sink.flush()


def copy_object(fin, fout, key: str, classname: str) -> None:
    """Copy one non-tree object uproot can write (:data:`COPYABLE_CLASSES`)."""
    if classname not in COPYABLE_CLASSES:
        raise Unwritable(f"{key}: class {classname} cannot be written by uproot")
    fout[key] = str(fin[key])


def tree_keys(f) -> list[tuple[str, str]]:
    """(name, classname) of the top-level objects of a file, last cycle only, in order."""
    seen = {}
    for k, c in f.classnames(recursive=False, cycle=False).items():
        seen.setdefault(k, c)
    return list(seen.items())


def iterate_specs(tree, specs: Iterable[BranchSpec], step_size: str | int):
    """Iterate a tree's branches named in ``specs`` in blocks of ``step_size``."""
    return tree.iterate([s.name for s in specs], step_size=step_size, library="ak")
