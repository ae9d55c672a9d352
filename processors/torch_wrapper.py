"""The model for coffea's dask-awkward route: a ``coffea.ml_tools.torch_wrapper`` subclass.

For analyses built on ``NanoEventsFactory(..., mode="dask")`` or
``coffea.dataset_tools.apply_to_fileset``::

    wrapper = JetAutoencoderWrapper("model.pt")             # or None: the shipped model
    rec = wrapper.reconstruct(events.Jet)                   # jagged, like events.Jet
    score = wrapper.reconstruct(events.Jet, output="score") # per-jet anomaly score

    # ATLAS PHYSLITE (MeV): PHYSLITESchema's events.Jets, converted to the model's GeV
    wrapper = JetAutoencoderWrapper(units="MeV")
    rec = wrapper.reconstruct(events.Jets)                  # in the model's units (GeV)

:func:`hepae_coffea.io.formats.detect_format` gives a file's schema, tree, collection and
units (``fmt.units``). Fields are found by their aliases (PHYSLITE's ``m`` is the mass;
Open Data's ``E``/``e`` gives the mass from pt, eta and E).

The model file is read once, when the wrapper is made (`hepae_coffea.model.handle.open_model`:
a path, the file's bytes or a handle); its bytes travel with the wrapper, and each worker
builds the TorchScript module once, from its per-worker cache, never pickling a live module.
The file therefore need not be readable on the workers.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np
import torch
from coffea.ml_tools.torch_wrapper import torch_wrapper

from hepae_coffea.model.cache import DEVICES, get_model, resolve_device
from hepae_coffea.model.handle import ModelSource, open_model
from hepae_coffea.variables.registry import (
    canonical_variable,
    energy_like,
    model_units,
    normalise_units,
    spellings,
    unit_scale,
)

__all__ = ["OUTPUTS", "JetAutoencoderWrapper"]

OUTPUTS = ("reconstructed", "latent", "score")


class JetAutoencoderWrapper(torch_wrapper):  # type: ignore[misc]  # coffea is untyped
    """Run a hepae-coffea model on (dask-)awkward jet collections.

    Parameters
    ----------
    model : path, bytes or ModelHandle, optional
        hepae-coffea TorchScript file; the shipped default when omitted.
    fields : mapping, optional
        ``{model variable: field of the jet collection}`` where names differ.
    output : {"reconstructed", "latent", "score"}
        What calling the wrapper returns per jet.
    units : {"GeV", "MeV"}, optional
        Energy unit of the jets given (GeV when omitted); energy-like fields are converted
        to the model's units before the model sees them. Reconstructed values come back in
        the model's units.
    device : {"auto", "cpu", "cuda"}
        Where the model runs on each worker (``auto``: cuda when the worker has a GPU).
    """

    def __init__(
        self,
        model: ModelSource = None,
        fields: Mapping[str, str] | None = None,
        output: str = "reconstructed",
        units: str | None = None,
        device: str = "auto",
    ) -> None:
        if device.split(":", 1)[0] not in DEVICES:
            raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
        self.device_name = device
        self.handle = open_model(model)
        self.metadata = self.handle.metadata
        self.variables = self.handle.variables
        self.user_fields = dict(fields or {})
        self.fields = {v: self.user_fields.get(v, v) for v in self.variables}
        self.units = normalise_units(units or "GeV", "units")
        self.factor = unit_scale(self.units) / unit_scale(model_units(self.metadata))
        if output not in OUTPUTS:
            raise ValueError(f"output {output!r} not in {OUTPUTS}")
        self.output = output
        width = int(self.metadata["latent_dim"]) if output == "latent" else len(self.variables)
        shape = (None,) if output == "score" else (None, width)
        # coffea's torch_jit names the model (in errors); the module comes from the handle
        super().__init__(self.handle.label, expected_output_shape=shape)

    def _create_device(self) -> torch.device:
        return torch.device(resolve_device(self.device_name))

    def _create_model(self) -> torch.jit.ScriptModule:
        # model files are device-neutral: the per-worker cache loads on the CPU, then moves
        device = str(self.device)
        return get_model(self.handle.data, self.handle.sha256, device)[0]

    def check_variables(self, requested: list[str]) -> None:
        """Fail unless the model's variables are ``requested`` (in order)."""
        self.handle.check_variables(requested)

    def _field(self, flat: ak.Array, variable: str) -> ak.Array:
        """A model variable's values from the flat jets, in the model's units."""
        have = set(flat.fields)
        names = (self.user_fields[variable],) if variable in self.user_fields else ()
        for name in (*names, *spellings(variable)):
            if name in have:
                x = ak.values_astype(flat[name], np.float64)
                return x * self.factor if energy_like(variable) and self.factor != 1.0 else x
        if canonical_variable(variable) == "mass":  # Open Data: E instead of the mass
            energy = next((n for n in spellings("E") if n in have), None)
            if energy is not None and {"pt", "eta"} <= have:
                p = ak.values_astype(flat["pt"], np.float64) * np.cosh(flat["eta"])
                e = ak.values_astype(flat[energy], np.float64)
                m2 = (e - p) * (e + p)
                return np.sign(m2) * np.sqrt(np.abs(m2)) * self.factor
        raise ValueError(
            f"{self.torch_jit}: the jets have no field for model variable {variable!r} "
            f"(tried {list(spellings(variable))}); pass fields={{{variable!r}: name}}"
        )

    def prepare_awkward(self, jets: ak.Array) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Flatten a jagged jet collection to one float32 (n_jets, n_variables) block in
        the model's units."""
        flat = ak.flatten(jets, axis=1)
        cols = [
            ak.values_astype(self._field(flat, v), np.float32)[:, np.newaxis]
            for v in self.variables
        ]
        return (ak.concatenate(cols, axis=1),), {}

    def validate_numpy_input(self, x: np.ndarray) -> None:
        """The block must be (n_jets, n_variables)."""
        if x.ndim != 2 or x.shape[1] != len(self.variables):
            raise ValueError(
                f"{self.torch_jit}: expected (n_jets, {len(self.variables)}) inputs for "
                f"{self.variables}, got shape {x.shape}"
            )

    def numpy_call(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.asarray(super().numpy_call(x))
        t = torch.from_numpy(np.require(x, np.float32, ["C", "W"])).to(self.device)
        with torch.no_grad():
            if self.output == "latent":
                out = self.model.encode(t)
            elif self.output == "score":
                out = self.model.score(t)
            else:
                out = self.model(t)
        return np.asarray(out.cpu().numpy())

    def reconstruct(self, jets: ak.Array, output: str | None = None) -> ak.Array:
        """Per-jet results mapped back onto the event structure of ``jets``."""
        wrapper = self
        if output is not None and output != self.output:
            wrapper = JetAutoencoderWrapper(
                self.handle, self.user_fields, output, self.units, self.device_name
            )
        flat = wrapper(jets)
        if isinstance(jets, ak.Array):
            return ak.unflatten(flat, ak.num(jets, axis=1))
        import dask_awkward as dak

        # The flat output has one row per jet of the same partitions as ``jets``, so the
        # counts are partition-compatible; dak.unflatten warns about that on every call.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Please ensure that", category=UserWarning)
            # dask_awkward re-exports these names without __all__ (mypy: not exported)
            return dak.unflatten(flat, dak.num(jets, axis=1))  # type: ignore[attr-defined]
