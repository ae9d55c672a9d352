"""The compressed tree's branches, and the original tree's rebuilt from them.

`plan_tree` lays out the compressed main tree: every branch of the input in its order,
with the replaced jet branches' place taken by the latent branches (or an array codec's
branches). `layout_record` is what decompress needs of that layout, stored in the
compression record; `restored_specs` rebuilds the original tree's branches from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputFileError
from .blocks import extra_branch, latent_names
from .root_copy import BranchSpec, branch_specs
from .source import JetSource, file_variables

__all__ = ["TreePlan", "layout_record", "plan_tree", "restored_specs"]


@dataclass
class TreePlan:
    """Specs of the compressed main tree and how to fill them."""

    specs: list[BranchSpec]  # the compressed tree
    jet_specs: list[BranchSpec]  # the replaced jet branches as restored
    positions: list[int]  # their positions in the restored tree
    added: list[str]  # latent (and extra-jet) branches of the compressed tree
    read: list[str]  # input branches to read
    counter: str  # the jets' counter


def _leaf_dtype(t: Any, name: str) -> str:
    interp = t[name].interpretation
    dt = getattr(getattr(interp, "content", interp), "to_dtype", np.dtype("float32"))
    return str(np.dtype(dt).newbyteorder("=").name)


def _flat_spec(t: Any, name: str) -> BranchSpec:
    """A kept or identifier branch of a flat output: scalar numbers or numeric vectors."""
    import uproot

    interp = t[name].interpretation
    if (
        not isinstance(interp, uproot.interpretation.numerical.AsDtype)
        or np.dtype(interp.to_dtype).shape
    ):
        raise InputFileError(
            f"branch {name!r} ({interp}) cannot be kept: only branches of one number per "
            f"event can be kept in a flat tree"
        )
    dtype = np.dtype(interp.to_dtype).newbyteorder("=").name
    return BranchSpec(name, dtype, None, t[name].title)


def _added_specs(
    names: Sequence[str],
    counter: str,
    out_coll: str,
    jet_specs: Sequence[BranchSpec],
    event_jets: int | None,
) -> list[BranchSpec]:
    """The latent branches (``names``) and, for an event-level model, the extra jets."""
    if event_jets is None:
        return [BranchSpec(n, "float32", counter, "latent") for n in names]
    lat = [BranchSpec(n, "float32", None, "latent (event)") for n in names]
    ec = f"n{out_coll}Extra"
    extra = [BranchSpec(ec, "int32", None, "jets beyond the compressed ones")] + [
        BranchSpec(extra_branch(out_coll, s.name), s.dtype, ec, s.title) for s in jet_specs
    ]
    return lat + extra


def plan_tree(
    t: Any,
    src: JetSource,
    variables: Sequence[str],
    k: int,
    event_jets: int | None,
    added: Sequence[BranchSpec] | None = None,
) -> TreePlan:
    """The compressed main tree for input tree ``t``.

    Parameters
    ----------
    t
        The input's uproot tree.
    src
        Where its jets are (`resolve_source`).
    variables
        The variables stored in place of the jet branches.
    k, event_jets
        Latents per jet (per event with ``event_jets``, an event-level model).
    added
        An array codec's branches, which then take the latents' place.
    """
    cols = [src.branches[v] for v in file_variables(src, variables)]
    colset = set(cols)
    out_coll = src.out_collection
    if src.layout == "copy":
        specs = branch_specs(t)
        jet_specs = [next(s for s in specs if s.name == c) for c in cols]
        counter = jet_specs[0].counter or "n" + src.collection
        read = [s.name for s in specs]
        index = {s.name: i for i, s in enumerate(specs)}
        positions = [index[c] for c in cols]  # in the order of jet_specs
        kept = [s for s in specs if s.name not in colset]
    else:  # flat: identifiers, kept branches, the jets' counter and latents
        kept = [_flat_spec(t, b) for b in [*src.event_ids, *src.keep]]
        counter = "nJet"
        kept.append(BranchSpec(counter, "uint32", None, "number of jets"))
        file_vars = file_variables(src, variables)
        jet_specs = [
            BranchSpec(f"Jet_{v}", _leaf_dtype(t, c), counter, f"jet {v} [{src.units}]")
            for v, c in zip(file_vars, cols, strict=True)
        ]
        read = [*src.event_ids, *src.keep, *cols]
        positions = list(range(len(kept), len(kept) + len(jet_specs)))
    first = min(positions)
    if added is not None:  # a codec's branches
        new = list(added)
    else:
        names = latent_names(out_coll, k, event_jets is not None)
        new = _added_specs(names, counter, out_coll, jet_specs, event_jets)
    out = kept[:first] + new + kept[first:]
    return TreePlan(out, jet_specs, positions, [s.name for s in new], read, counter)


def layout_record(
    src: JetSource, plan: TreePlan, out_tree: str, latent_bits: int | None
) -> dict[str, Any]:
    """What decompress needs to know of the source and the compressed tree's layout."""
    return {
        "source": {
            "tree": src.tree,
            "collection": src.collection,
            "branches": src.branches,
            "units": src.units,
            "layout": src.layout,
            "event_ids": src.event_ids,
            "keep": src.keep,
            **({"mass_from_energy": True} if src.mass_from_energy else {}),
        },
        "tree": out_tree,
        "latent_bits": latent_bits,
        "jet_specs": [s.to_dict() for s in plan.jet_specs],
        "jet_positions": plan.positions,
        "added": plan.added,
        "jet_branches": [s.name for s in plan.jet_specs],
        "counter": plan.counter,
    }


def restored_specs(compressed: Sequence[BranchSpec], info: Mapping[str, Any]) -> list[BranchSpec]:
    """The original tree's specs from the compressed tree's and the stored jet specs."""
    added = set(info["added"])
    out = [s for s in compressed if s.name not in added]
    for pos, d in sorted(zip(info["jet_positions"], info["jet_specs"], strict=True)):
        out.insert(pos, BranchSpec.from_dict(d))
    return out
