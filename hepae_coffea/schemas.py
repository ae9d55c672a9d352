"""NanoEvents schemas for the package's NanoAOD-style jet files."""

from __future__ import annotations

from coffea.nanoevents import NanoAODSchema

__all__ = ["JetNanoAODSchema"]


class JetNanoAODSchema(NanoAODSchema):
    """``NanoAODSchema`` without warnings about absent cross-reference index branches.

    Files holding only event IDs and jets (as ``hepae generate`` writes) have no
    ``Jet_muonIdx1`` and similar branches; the plain schema warns once per chunk about each.
    Everything else is NanoAODSchema's behaviour.
    """

    warn_missing_crossrefs = False
