"""NanoEvents schemas for the package's NanoAOD-style jet files."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from coffea.nanoevents import NanoAODSchema

__all__ = ["SCHEMAS", "JetNanoAODSchema", "jet_branch_filter", "schema_class"]


class JetNanoAODSchema(NanoAODSchema):  # type: ignore[misc]  # coffea has no type hints
    """``NanoAODSchema`` without warnings about absent cross-reference index branches.

    Files holding only event IDs and jets (as ``hepae generate`` writes) have no
    ``Jet_muonIdx1`` and similar branches; the plain schema warns once per chunk about each.
    Everything else is NanoAODSchema's behaviour.
    """

    warn_missing_crossrefs = False


SCHEMAS = ("nanoaod", "physlite", "base")


def schema_class(name: str) -> type:
    """The NanoEvents schema class for a schema name (``nanoaod``, ``physlite``, ``base``)."""
    from coffea.nanoevents import BaseSchema, PHYSLITESchema

    classes: dict[str, type] = {
        "nanoaod": JetNanoAODSchema,
        "physlite": PHYSLITESchema,
        "base": BaseSchema,
    }
    if name not in classes:
        raise ValueError(f"schema {name!r} not in {SCHEMAS}")
    return classes[name]


def _keep_branch(branch: Any, prefixes: tuple[str, ...], names: frozenset[str]) -> bool:
    from coffea.util import _is_interpretable

    name = branch.name
    return (name in names or name.startswith(prefixes)) and bool(
        _is_interpretable(branch, emit_warning=False)
    )


def jet_branch_filter(schema: str, collection: str) -> Callable[[Any], bool] | None:
    """``filter_branch`` reading only a jet collection's branches (and the event IDs).

    Real files hold many other collections: PHYSLITE's xAOD containers, which uproot cannot
    read and coffea warns about on every chunk, and NanoAOD's hundreds of branches, some
    of which coffea's schema warns about. The processor needs the jets only. The filter
    is a picklable partial, so it travels to every executor. None for other schemas.
    """
    if schema == "physlite":
        return partial(
            _keep_branch, prefixes=(f"Analysis{collection}", "EventInfo"), names=frozenset()
        )
    if schema == "nanoaod":
        names = frozenset({"run", "luminosityBlock", "event", f"n{collection}"})
        return partial(_keep_branch, prefixes=(f"{collection}_",), names=names)
    return None
