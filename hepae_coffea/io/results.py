"""Results files that can be read without unpickling: histograms as plain JSON.

``hepae run -o X.coffea`` writes ``X.hists.json`` beside the (pickled) ``.coffea`` file.
It holds the same nested dicts of ``hist.Hist`` objects, counters and run information:
every histogram as its axes (type, edges or categories, name, label, flow) and its
storage's arrays including the flow bins, so histograms come back bit for bit
(``Mean`` storage keeps count, mean and sum of squared deviations). Reading it only
parses JSON: no code from the file is run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hist
import numpy as np

from ..errors import InputFileError

__all__ = ["FORMAT", "decode", "encode", "read_results", "safe_results_path", "write_results"]

FORMAT = "hepae-coffea-results-1"

_STORAGES = {
    "Double": hist.storage.Double,
    "Int64": hist.storage.Int64,
    "Weight": hist.storage.Weight,
    "Mean": hist.storage.Mean,
    "WeightedMean": hist.storage.WeightedMean,
}


def safe_results_path(path: str | os.PathLike[str]) -> Path:
    """The safe results file written beside a ``.coffea`` output (``X.hists.json``)."""
    path = Path(path)
    return path.with_name(path.stem + ".hists.json")


def _axis_to_dict(ax: Any) -> dict[str, Any]:
    traits = ax.traits
    meta = {str(k): v for k, v in ax.__dict__.items() if isinstance(v, str | int | float)}
    common = {
        "meta": meta,
        "underflow": bool(traits.underflow),
        "overflow": bool(traits.overflow),
        "growth": bool(traits.growth),
    }
    if isinstance(ax, hist.axis.Regular):
        if ax.transform is not None:
            raise TypeError(f"axis {ax.name!r}: transformed Regular axes are not supported")
        return {
            "type": "Regular",
            "bins": len(ax),
            "start": float(ax.edges[0]),
            "stop": float(ax.edges[-1]),
            "circular": bool(traits.circular),
            **common,
        }
    if isinstance(ax, hist.axis.Variable):
        return {
            "type": "Variable",
            "edges": [float(e) for e in ax.edges],
            "circular": bool(traits.circular),
            **common,
        }
    if isinstance(ax, hist.axis.Integer):
        return {"type": "Integer", "start": int(ax.edges[0]), "stop": int(ax.edges[-1]), **common}
    if isinstance(ax, hist.axis.StrCategory):
        return {"type": "StrCategory", "categories": [str(c) for c in ax], **common}
    if isinstance(ax, hist.axis.IntCategory):
        categories = np.asarray(list(ax), dtype=np.int64).tolist()
        return {"type": "IntCategory", "categories": categories, **common}
    if isinstance(ax, hist.axis.Boolean):
        return {"type": "Boolean", "meta": meta}
    raise TypeError(f"axis {ax.name!r}: type {type(ax).__name__} is not supported")


def _axis_from_dict(d: Mapping[str, Any]) -> Any:
    meta = dict(d["meta"])
    named = {"name": meta.pop("name", ""), "label": meta.pop("label", "")}
    ax = _make_axis(d, named)
    ax.__dict__.update(meta)
    return ax


def _make_axis(d: Mapping[str, Any], named: dict[str, Any]) -> Any:
    kind = d["type"]
    if kind == "Boolean":
        return hist.axis.Boolean(**named)
    flow = {"overflow": d["overflow"], "growth": d["growth"]}
    if kind == "Regular":
        return hist.axis.Regular(
            d["bins"],
            d["start"],
            d["stop"],
            underflow=d["underflow"],
            circular=d["circular"],
            **flow,
            **named,
        )
    if kind == "Variable":
        return hist.axis.Variable(
            d["edges"], underflow=d["underflow"], circular=d["circular"], **flow, **named
        )
    if kind == "Integer":
        return hist.axis.Integer(d["start"], d["stop"], underflow=d["underflow"], **flow, **named)
    if kind == "StrCategory":
        return hist.axis.StrCategory(d["categories"], **flow, **named)
    if kind == "IntCategory":
        return hist.axis.IntCategory(d["categories"], **flow, **named)
    raise ValueError(f"unknown axis type {kind!r}")


def _hist_to_dict(h: hist.Hist[Any]) -> dict[str, Any]:
    storage = type(h.storage_type()).__name__
    if storage not in _STORAGES:
        raise TypeError(f"histogram storage {storage} is not supported")
    view: Any = np.asarray(h.view(flow=True))
    if view.dtype.names:
        arrays = {f: view[f].ravel().tolist() for f in view.dtype.names}
    else:
        arrays = {"": view.ravel().tolist()}
    return {
        "axes": [_axis_to_dict(ax) for ax in h.axes],
        "storage": storage,
        "name": h.name,
        "label": h.label,
        "shape": list(view.shape),
        "arrays": arrays,
    }


def _hist_from_dict(d: Mapping[str, Any]) -> hist.Hist[Any]:
    storage = _STORAGES[d["storage"]]()
    axes = [_axis_from_dict(a) for a in d["axes"]]
    h: hist.Hist[Any] = hist.Hist(
        *axes,
        storage=storage,
        name=d.get("name"),
        label=d.get("label"),
    )
    view: Any = h.view(flow=True)
    shape = tuple(d["shape"])
    if tuple(view.shape) != shape:
        raise ValueError(f"histogram shape {shape} does not match its axes {view.shape}")
    for field, values in d["arrays"].items():
        arr = np.asarray(values, dtype=np.float64).reshape(shape)
        if field:
            view[field] = arr
        else:
            view[...] = arr
    return h


def encode(obj: Any) -> Any:
    """Plain-JSON form of nested dicts / lists of histograms, numbers and strings."""
    if isinstance(obj, hist.Hist):
        return {"__hist__": _hist_to_dict(obj)}
    if isinstance(obj, Mapping):
        return {"__dict__": [[encode(k), encode(v)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return [encode(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot store a {type(obj).__name__} in a results file")


def decode(obj: Any) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(obj, dict):
        if "__hist__" in obj:
            return _hist_from_dict(obj["__hist__"])
        if "__dict__" in obj:
            return {decode(k): decode(v) for k, v in obj["__dict__"]}
        raise ValueError("unexpected mapping in a results file")
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def write_results(payload: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``payload`` (nested dicts of histograms and plain data) to ``path`` as JSON
    (not atomically: callers write to a temporary path and rename)."""
    text = json.dumps({"format": FORMAT, "data": encode(payload)}, separators=(",", ":"))
    Path(path).write_text(text)


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a file written by :func:`write_results`; only JSON is parsed."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: results file not found")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputFileError(f"{path}: not a hepae-coffea results file ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputFileError(f"{path}: not a hepae-coffea results file (format {FORMAT})")
    try:
        data = decode(doc["data"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputFileError(f"{path}: damaged results file ({err})") from None
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: not a hepae-coffea results file")
    return data
