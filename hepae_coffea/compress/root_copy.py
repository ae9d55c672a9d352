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

from ..errors import InputFileError

__all__ = [
    "COMPRESSIONS",
    "BranchSpec",
    "Unwritable",
    "branch_specs",
    "copy_object",
    "copy_others",
    "create_tree",
    "file_compression",
    "fill",
    "finish_tree",
    "iterate_specs",
    "other_objects",
    "output_compression",
    "register_streamers",
    "tree_keys",
]

log = logging.getLogger(__name__)

#: object classes (besides TTree) that uproot can write back as read
COPYABLE_CLASSES = ("TObjString",)
#: the output compressions uproot writes
COMPRESSIONS = ("zlib", "lzma", "lz4", "zstd")
#: the least level used when the input's algorithm is kept (the input's own if higher)
_AT_LEAST = {"ZLIB": 6, "LZMA": 9, "ZSTD": 5, "LZ4": 4}


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


def file_compression(f: Any) -> Any:
    """The compression (algorithm and level) a ROOT file was written with."""
    import uproot

    return uproot.compression.Compression.from_code(int(f.file.fCompress))


def branch_specs(tree: Any) -> list[BranchSpec]:
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


def create_tree(
    fout: Any, name: str, specs: Sequence[BranchSpec], title: str = "", capacity: int = 2
) -> Any:
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
        spec = by_name.get(datum.get("fName")) if datum.get("kind") != "record" else None
        if spec is None:
            continue
        want = np.dtype(spec.dtype).newbyteorder(">")
        if datum["kind"] == "counter" and want != datum["dtype"]:
            if want.kind not in "iu":
                raise Unwritable(f"counter {spec.name!r} has non-integer type {spec.dtype}")
            datum["dtype"] = want
        if spec.title is not None:
            datum["fTitle"] = spec.title
    # the metadata is written once by finish_tree(): no in-place patches, no relocations
    casc.write_updates = lambda sink: None
    casc._relocate = lambda file, sink: None
    return casc


def fill(fout: Any, casc: Any, specs: Sequence[BranchSpec], arrays: Mapping[str, Any]) -> None:
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


def register_streamers(fout: Any) -> None:
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


def finish_tree(fout: Any, casc: Any) -> None:
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
    data = uproot.compression.compress(bytes(raw), file.compression)
    casc._key = casc._directory.add_object(
        file.sink, "TTree", casc._name, casc._title, data, len(raw), big=True
    )
    register_streamers(fout)
    file.sink.flush()


def copy_object(fin: Any, fout: Any, key: str, classname: str) -> None:
    """Copy one non-tree object uproot can write (:data:`COPYABLE_CLASSES`)."""
    if classname not in COPYABLE_CLASSES:
        raise Unwritable(f"{key}: class {classname} cannot be written by uproot")
    fout[key] = str(fin[key])


def tree_keys(f: Any) -> list[tuple[str, str]]:
    """(name, classname) of the top-level objects of a file, last cycle only, in order."""
    seen: dict[str, str] = {}
    for k, c in f.classnames(recursive=False, cycle=False).items():
        seen.setdefault(k, c)
    return list(seen.items())


def iterate_specs(tree: Any, specs: Iterable[BranchSpec], step_size: str | int) -> Any:
    """Iterate a tree's branches named in ``specs`` in blocks of ``step_size``."""
    return tree.iterate([s.name for s in specs], step_size=step_size, library="ak")


def output_compression(name: str | None, level: int | None, f: Any = None) -> Any:
    """The output's uproot compression: the open input file ``f``'s own algorithm (at
    least at its usual level) unless ``name`` (one of `COMPRESSIONS`) is given; ZLIB
    without either."""
    import uproot

    classes = {"zlib": uproot.ZLIB, "lzma": uproot.LZMA, "lz4": uproot.LZ4, "zstd": uproot.ZSTD}
    if name is None:
        own = file_compression(f) if f is not None else None
        if own is None:
            return uproot.ZLIB(_AT_LEAST["ZLIB"]) if level is None else uproot.ZLIB(level)
        if level is None:  # the input's algorithm, at least at its usual level
            level = max(int(own.level), _AT_LEAST.get(type(own).__name__, 0))
        return type(own)(level)
    if name not in classes:
        raise ValueError(f"compression {name!r} not in {COMPRESSIONS}")
    return classes[name](5 if level is None else level)


def other_objects(
    f: Any, main_tree: str, reserved: Iterable[str] = ()
) -> tuple[list[str], list[dict[str, str]]]:
    """Names of the objects of ``f`` besides ``main_tree`` that can be copied, and those
    that cannot (name, class and why). Raises `InputFileError` when ``f`` already holds
    one of the ``reserved`` names (what compress adds)."""
    reserved = set(reserved)
    copied: list[str] = []
    skipped: list[dict[str, str]] = []
    for name, cls in tree_keys(f):
        if name == main_tree:
            continue
        if name in reserved:
            raise InputFileError(f"{f.file_path}: already holds {name!r} (a compressed file?)")
        if cls == "TTree":
            try:
                branch_specs(f[name])
                copied.append(name)
            except Unwritable as err:
                skipped.append({"name": name, "class": cls, "reason": str(err)})
        elif cls in COPYABLE_CLASSES:
            copied.append(name)
        else:
            skipped.append({"name": name, "class": cls, "reason": "uproot cannot write it"})
    return copied, skipped


def copy_others(fin: Any, fout: Any, names: Sequence[str]) -> None:
    """Copy the trees and objects ``names`` (from `other_objects`) of ``fin`` to ``fout``."""
    for name, cls in tree_keys(fin):
        if name not in names:
            continue
        if cls == "TTree":
            t = fin[name]
            specs = branch_specs(t)
            wt = create_tree(fout, name, specs, t.title, 2)
            for arrays in iterate_specs(t, specs, "100 MB"):
                fill(fout, wt, specs, {s.name: arrays[s.name] for s in specs})
            finish_tree(fout, wt)
        else:
            copy_object(fin, fout, name, cls)
