"""ONNX export of a model file: encoder, decoder and full pass, normalisation inside.

``export_onnx("model.onnx")`` writes three ONNX graphs (opset 20, float32, dynamic batch
axis ``n``) that take and return physical values, like the TorchScript model they come from:

``model.onnx``          full pass: ``jets`` -> ``latent``, ``reconstruction``, ``score``
``model.encoder.onnx``  ``jets`` -> ``latent`` (compression)
``model.decoder.onnx``  ``latent`` -> ``reconstruction`` (decompression)

Event-level models take ``jets`` ``(n, J, V)`` and a float ``mask`` ``(n, J)`` (1 for real
jets, 0 for padding) wherever the TorchScript model does, and their score is per jet
``(n, J)``. Each file carries the model's variables, units, latent size and the SHA-256 of
the source model as ONNX ``metadata_props`` (keys ``hepae.*``).

The graphs are exported from the eager model rebuilt with this package's code from the
model file's metadata and weights (``torch.onnx.export`` cannot trace a TorchScript module);
the rebuilt model must reproduce the TorchScript outputs before anything is exported, and
the written graphs are checked against the TorchScript model with ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..errors import InputFileError, ModelFileError
from ..io.atomic import atomic_output
from .export import LoadedModel, load_model
from .handle import ModelSource
from .networks import EventAutoencoder, JetAutoencoder, ModelConfig, _unpack, build_model
from .normalize import Normalizer, VariableTransform

__all__ = [
    "OPSET",
    "RTOL",
    "OnnxExport",
    "check_rebuilt",
    "deviation",
    "eager_model",
    "export_onnx",
    "onnx_paths",
    "probe_inputs",
]

log = logging.getLogger(__name__)

#: ONNX opset of the exported graphs (ONNX Runtime >= 1.16 runs it).
OPSET = 20
#: Relative tolerance of the checks against TorchScript ...
RTOL = 1e-5
#: ... with this absolute floor, in the variable's unit (GeV, rad, or none), for values near 0.
ATOL = 1e-5
#: Absolute floor for latents (the packed latents lie in [0, 1]).
LATENT_ATOL = 1e-6
#: Float32 precision of normalised (order-1) network values: the score's floor is
#: ``2 NORM_ATOL sqrt(score)``, an angle decoded as ``atan2(s, c)`` gets ``NORM_ATOL / hypot(s, c)``
#: on top of ATOL (an untrained network's small (c, s) pairs make the angle ill-conditioned).
NORM_ATOL = 2e-6


def onnx_paths(output: str | os.PathLike[str]) -> dict[str, Path]:
    """The three files of ``output`` (``X.onnx``): full pass, encoder and decoder."""
    out = Path(output)
    if out.suffix != ".onnx":
        raise ValueError(f"{out}: the ONNX output must end in .onnx")
    stem = out.with_suffix("")
    return {
        "full": out,
        "encoder": stem.with_name(stem.name + ".encoder.onnx"),
        "decoder": stem.with_name(stem.name + ".decoder.onnx"),
    }


# --- the eager model ---------------------------------------------------------------------


def _transforms(meta: Mapping[str, Any]) -> list[VariableTransform]:
    names = {f.name for f in fields(VariableTransform)}
    try:
        return [
            VariableTransform(**{k: v for k, v in t.items() if k in names})
            for t in meta["normalisation"]
        ]
    except (KeyError, TypeError) as err:
        raise ModelFileError(
            f"{meta.get('path', 'model')}: metadata lacks a usable normalisation ({err})"
        ) from None


def _config(meta: Mapping[str, Any]) -> ModelConfig:
    arch = meta.get("architecture", {})
    try:
        return ModelConfig(
            variables=[v["name"] for v in meta["variables"]],
            latent_dim=int(meta["latent_dim"]),
            hidden=[int(h) for h in arch["hidden"]],
            activation=arch["activation"],
            kind=meta["kind"],
            loss=meta.get("loss", "mse"),
            bottleneck=meta.get("bottleneck", "plain"),
            levels=int(meta.get("levels") or 1024),
            weights=dict(meta.get("loss_weights") or {}),
            level=meta.get("level", "jet"),
            event_jets=int(meta.get("event_jets") or 1),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(
            f"{meta.get('path', 'model')}: cannot rebuild the network from its metadata ({err})"
        ) from None


def _script_attr(module: Any, dotted: str) -> Any:
    """Attribute ``a.b.c`` of a TorchScript module, or None where it has none."""
    obj = module
    for part in dotted.split("."):
        try:
            obj = getattr(obj, part)
        except (AttributeError, RuntimeError):
            return None
    return obj


def eager_model(loaded: LoadedModel) -> JetAutoencoder | EventAutoencoder:
    """Rebuild ``loaded``'s network as an eager module with this package's classes.

    Architecture and transforms come from the metadata, every weight and buffer from the
    TorchScript module (also buffers that older files saved and newer code derives). Raises
    :class:`ModelFileError` where the two do not fit; :func:`export_onnx` also compares the
    outputs before exporting.
    """
    meta = loaded.metadata
    label = meta.get("path", "model")
    transforms = _transforms(meta)
    ur = meta.get("unit_range") or {}
    lo = np.asarray(ur.get("lo", []), dtype=np.float64)
    width = np.asarray(ur.get("width", []), dtype=np.float64)
    normalizer = Normalizer(transforms, (lo, lo + width) if lo.size else None)
    model = build_model(_config(meta), normalizer)
    state = loaded.module.state_dict()
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ModelFileError(f"{label}: TorchScript module lacks {missing}; cannot rebuild it")
    buffers = dict(model.named_buffers())
    for name in sorted(set(state) - set(own)):
        if name not in buffers or buffers[name].shape != state[name].shape:
            raise ModelFileError(f"{label}: unexpected entry {name!r} in the TorchScript module")
    with torch.no_grad():
        model.load_state_dict({k: state[k] for k in own}, strict=True)
        # non-persistent buffers: take the TorchScript module's where it has them
        for name, buf in buffers.items():
            value = state.get(name, _script_attr(loaded.module, name))
            if isinstance(value, torch.Tensor) and value.shape == buf.shape:
                buf.copy_(value)
    model.eval()
    return model


# --- inputs for the checks ---------------------------------------------------------------


def _jet_probe(meta: Mapping[str, Any], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` jets spread over each variable's training range, then edge rows."""
    ranges = (meta.get("training") or {}).get("data", {}).get("ranges", {})
    cols, edges = [], []
    for t in _transforms(meta):
        if t.kind == "log":
            lo_, hi_ = math.exp(t.center - 3 * t.scale), math.exp(t.center + 3 * t.scale)
        elif t.kind in ("angle", "periodic"):
            lo_, hi_ = -math.pi, math.pi
        elif t.kind == "onehot":
            lo_, hi_ = t.center, t.center + t.scale - 1
        else:
            lo_, hi_ = t.center - 3 * t.scale, t.center + 3 * t.scale
        if t.variable in ranges:
            lo_, hi_ = min(lo_, ranges[t.variable][0]), max(hi_, ranges[t.variable][-1])
        if t.nonneg:
            lo_ = max(lo_, 0.0)
        if t.kind == "log" and lo_ > 0:
            col = np.exp(rng.uniform(math.log(lo_), math.log(hi_), n))
        else:
            col = rng.uniform(lo_, hi_, n)
        if t.integer:
            col = np.round(col)
        cols.append(col)
        mid = round(0.5 * (lo_ + hi_)) if t.integer else 0.5 * (lo_ + hi_)
        edges.append([lo_, hi_, mid])
    x = np.stack(cols, axis=1)
    return np.concatenate([x, np.array(edges).T]).astype(np.float32)


def probe_inputs(meta: Mapping[str, Any], n: int = 4096, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Float32 inputs for the checks: ``(jets,)``, or ``(jets, mask)`` for event models.

    Jets cover each variable's training range (log-uniform for log transforms), plus its
    ends and midpoint and, for angles, -pi, 0 and pi. Event models get 0..J real jets per
    event, padded with zeros.
    """
    rng = np.random.default_rng(seed)
    if meta.get("level", "jet") != "event":
        return (_jet_probe(meta, n, rng),)
    j = int(meta["event_jets"])
    jets = _jet_probe(meta, n * j, rng)[: n * j].reshape(n, j, -1)
    counts = rng.integers(0, j + 1, n)
    mask = (np.arange(j)[None, :] < counts[:, None]).astype(np.float32)
    return (jets * mask[:, :, None], mask)


# --- comparison --------------------------------------------------------------------------


def _angle_columns(meta: Mapping[str, Any]) -> np.ndarray:
    return np.array([t.kind in ("angle", "periodic") for t in _transforms(meta)])


def deviation(
    got: np.ndarray, want: np.ndarray, atol: float | np.ndarray, angles: np.ndarray | None = None
) -> np.ndarray:
    """``|got - want| / (RTOL |want| + atol)`` elementwise (<= 1 passes); angle columns
    (last axis) compared modulo 2 pi; equal non-finite values count as 0, others as inf."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    diff = got - want
    if angles is not None and angles.any():
        wrapped = np.remainder(diff + math.pi, 2 * math.pi) - math.pi
        diff = np.where(angles, wrapped, diff)
    with np.errstate(invalid="ignore"):
        dev = np.abs(diff) / (RTOL * np.abs(want) + atol)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    return np.where(same, 0.0, np.where(np.isfinite(dev), dev, np.inf))


def _coarse_ties(model: Any, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
    """Per row and latent: is the packed coarse channel within 4 float32 ulps of a
    rounding tie (where two float32 implementations may pick neighbouring levels)?"""
    if not model.packed:
        shape = (inputs[0].shape[0], model.latent_dim)
        return np.zeros(shape, dtype=bool)
    with torch.no_grad():
        if isinstance(model, EventAutoencoder):
            mean, _ = model._pre_latent(model.normalise_events(*inputs))
        else:
            mean, _ = model._pre_latent(model.normalizer(inputs[0]))
        v = (torch.sigmoid(mean[:, : model.latent_dim]) * (model.levels - 1)).numpy()
    ties: np.ndarray = np.abs(v - np.floor(v) - 0.5) <= 4 * np.spacing(np.float32(model.levels))
    return ties


def _recon_atol(model: Any, z: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Absolute floor per reconstructed value: ATOL, plus ``NORM_ATOL / hypot(c, s)`` for
    angle variables (the conditioning of ``atan2`` on the decoder's cos/sin outputs)."""
    norm = model.normalizer
    with torch.no_grad():
        zt = torch.from_numpy(z)
        if isinstance(model, EventAutoencoder):
            m = torch.from_numpy(mask)
            u = model._decode_norm(_unpack(zt, model.levels, model.packed), m)
            u = u.reshape(-1, norm.n_norm)
        else:
            u = model._decode_norm(model._unpack(zt))
        un = (u * norm.width + norm.lo).numpy().astype(np.float64)
    atol: np.ndarray = np.full((u.shape[0], norm.n_vars), ATOL)
    for k, j in enumerate(norm.angle_idx.tolist()):
        with np.errstate(divide="ignore"):
            atol[:, j] += NORM_ATOL / np.hypot(un[:, j], un[:, norm.n_vars + k])
    if isinstance(model, EventAutoencoder):
        atol = atol.reshape(z.shape[0], model.max_jets, norm.n_vars)
    return atol


@dataclass
class OnnxExport:
    """Result of :func:`export_onnx`: the files and the check against TorchScript.

    ``check`` holds, per graph and output, the largest :func:`deviation` (<= 1 passes);
    ``ties`` the number of probe rows whose coarse latent level sits on a rounding tie and
    differs between the runtimes (left out of the comparisons that follow the encoder);
    ``rows`` the number of probe rows.
    """

    paths: dict[str, Path]
    sha256: str
    check: dict[str, float] = field(default_factory=dict)
    ties: int = 0
    rows: int = 0


# --- export ------------------------------------------------------------------------------


def _nan_rows(z: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """NaN reconstructions for rows with a NaN latent, as in TorchScript (ONNX has no
    Atan2: its replacement returns finite angles for NaN inputs)."""
    bad = torch.isnan(z).any(dim=1).reshape((-1,) + (1,) * (recon.dim() - 1))
    return torch.where(bad, torch.full_like(recon, math.nan), recon)


class _Graph(torch.nn.Module):
    """One method of a jet-level model as ``forward`` (what ``torch.onnx.export`` traces)."""

    def __init__(self, model: Any, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def _call(self, *args: torch.Tensor) -> Any:
        # a jet model's public methods split and pad their rows (batch-independent
        # floats in torch); the graph takes the whole batch (its batch axis stays free)
        rows = isinstance(self.model, JetAutoencoder)
        out = getattr(self.model, f"_{self.method}_rows" if rows else self.method)(*args)
        if self.method == "decode":
            return _nan_rows(args[0], out)
        if self.method == "encode_decode_score":
            z, recon, score = out
            return z, _nan_rows(z, recon), score
        return out

    def forward(self, x: torch.Tensor) -> Any:
        return self._call(x)


class _EventGraph(_Graph):
    """One method of an event-level model (inputs and mask) as ``forward``."""

    # torch.export traces named tensor inputs, so the event graph's forward takes two
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Any:  # type: ignore[override]
        return self._call(x, mask)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence torch.onnx's progress lines and the warnings of its internals."""
    names = ("torch", "onnxscript", "onnx_ir")
    saved = {n: logging.getLogger(n).level for n in names}
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


def _export_graph(
    model: Any,
    method: str,
    inputs: tuple[torch.Tensor, ...],
    names: Sequence[str],
    outputs: Sequence[str],
) -> Any:
    """Export ``model.method`` to an ``onnx.ModelProto`` with a dynamic batch axis."""
    n = torch.export.Dim("n", min=1)
    with _quiet_exporter():
        program = torch.onnx.export(
            (_EventGraph if len(inputs) == 2 else _Graph)(model, method),
            inputs,
            None,
            dynamo=True,
            input_names=list(names),
            output_names=list(outputs),
            dynamic_shapes=tuple({0: n} for _ in inputs),
            opset_version=OPSET,
            optimize=True,
            verbose=False,
            report=False,
        )
    if program is None:  # only with an output path, which is not given here
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto


def _metadata_props(meta: Mapping[str, Any], sha256: str, graph: str) -> dict[str, str]:
    public = {k: v for k, v in meta.items() if k != "path"}
    props = {
        "hepae.graph": graph,
        "hepae.level": str(meta.get("level", "jet")),
        "hepae.variables": ",".join(v["name"] for v in meta["variables"]),
        "hepae.units": ",".join(v.get("unit", "") for v in meta["variables"]),
        "hepae.latent_dim": str(int(meta["latent_dim"])),
        "hepae.source_model": os.path.basename(str(meta.get("path", ""))),
        "hepae.source_sha256": sha256,
        "hepae.package_version": __version__,
        "hepae.metadata": json.dumps(public, sort_keys=True),
    }
    if meta.get("level") == "event":
        props["hepae.event_jets"] = str(int(meta["event_jets"]))
    if meta.get("latent_range") is not None:
        props["hepae.latent_range"] = ",".join(repr(float(v)) for v in meta["latent_range"])
    return props


_DOCS = {
    "full": "hepae-coffea full pass: physical jets -> (latent, reconstruction, score)",
    "encoder": "hepae-coffea encoder: physical jets -> latent",
    "decoder": "hepae-coffea decoder: latent -> physical jets",
}


def _describe(proto: Any, meta: Mapping[str, Any], sha256: str, graph: str) -> None:
    import onnx

    proto.producer_name = "hepae-coffea"
    proto.producer_version = __version__
    proto.doc_string = _DOCS[graph]
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, _metadata_props(meta, sha256, graph))


def _run_checks(
    protos: Mapping[str, Any],
    loaded: LoadedModel,
    model: torch.nn.Module,
    inputs: tuple[np.ndarray, ...],
) -> tuple[dict[str, float], int]:
    """Largest deviations of the ONNX graphs from TorchScript on ``inputs``; tie count."""
    import onnxruntime as ort

    meta = loaded.metadata
    angles = _angle_columns(meta)
    event = meta.get("level") == "event"
    t_in = tuple(torch.from_numpy(a) for a in inputs)
    with torch.no_grad():
        z_ts, r_ts, s_ts = (t.numpy() for t in loaded.module.encode_decode_score(*t_in))

    def run(graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(
            protos[graph].SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        result: list[np.ndarray] = sess.run(None, feeds)
        return result

    feeds = {"jets": inputs[0]}
    if event:
        feeds["mask"] = inputs[1]
    (z_enc,) = run("encoder", feeds)
    dec_feeds = {"latent": z_ts, **({"mask": inputs[1]} if event else {})}
    (r_dec,) = run("decoder", dec_feeds)
    z_full, r_full, s_full = run("full", feeds)
    out: dict[str, float] = {}
    dev_z = deviation(z_enc, z_ts, LATENT_ATOL)
    tie = (dev_z > 1) & _coarse_ties(model, t_in)
    rows_same = ~tie.any(axis=1)
    out["encoder.latent"] = float(np.max(np.where(tie, 0.0, dev_z), initial=0.0))
    atol = _recon_atol(model, z_ts, inputs[1] if event else None)
    out["decoder.reconstruction"] = float(deviation(r_dec, r_ts, atol, angles).max(initial=0))
    out["full.latent"] = float(deviation(z_full, z_enc, LATENT_ATOL).max(initial=0.0))
    # the rest of the full pass against TorchScript where both have the same latents
    same = rows_same & np.all(z_full == z_ts, axis=1)
    out["full.reconstruction"] = float(
        deviation(r_full[same], r_ts[same], atol[same], angles).max(initial=0.0)
    )
    score_atol = 2 * NORM_ATOL * np.sqrt(np.abs(s_ts[same]))
    out["full.score"] = float(deviation(s_full[same], s_ts[same], score_atol).max(initial=0.0))
    out["full.same_latent_fraction"] = float(same.mean())
    return out, int(tie.any(axis=1).sum())


def check_rebuilt(loaded: LoadedModel, model: Any, inputs: tuple[np.ndarray, ...]) -> None:
    """Refuse to export unless the rebuilt model reproduces the TorchScript outputs.

    The rebuilt network may multiply its matrices in another order than the file's code
    (this package's code may have changed since the file was written): its latents must
    match except where a coarse level sits on a rounding tie, and its reconstruction and
    score must match within tolerance on every row whose latents are the same."""
    t_in = tuple(torch.from_numpy(a) for a in inputs)
    with torch.no_grad():
        want = [t.numpy() for t in loaded.module.encode_decode_score(*t_in)]
        got = [t.numpy() for t in model.encode_decode_score(*t_in)]
    dev_z = deviation(got[0], want[0], ATOL)
    tie = (dev_z > 1) & _coarse_ties(model, t_in)
    same = np.all(got[0] == want[0], axis=1)
    angles = _angle_columns(loaded.metadata)
    worst = max(
        float(np.max(np.where(tie, 0.0, dev_z), initial=0.0)),
        float(deviation(got[1][same], want[1][same], ATOL, angles).max(initial=0.0)),
        float(deviation(got[2][same], want[2][same], ATOL).max(initial=0.0)),
    )
    if worst > 1:
        raise ModelFileError(
            f"{loaded.metadata.get('path', 'model')}: the network rebuilt from the metadata "
            f"does not reproduce the TorchScript model (deviation {worst:.3g} x tolerance)"
        )


def export_onnx(
    output: str | os.PathLike[str],
    model: ModelSource = None,
    *,
    overwrite: bool = False,
    check: bool = True,
) -> OnnxExport:
    """Write the full pass, encoder and decoder of ``model`` as ONNX (see module doc).

    Parameters
    ----------
    output : path
        Full-pass file, ``X.onnx``; ``X.encoder.onnx`` and ``X.decoder.onnx`` go beside it.
    model : path, bytes or ModelHandle, optional
        hepae-coffea model file (default: the shipped model).
    overwrite : bool
        Replace existing outputs (never the model file itself).
    check : bool
        Compare every graph with the TorchScript model in ONNX Runtime on probe jets
        (:func:`probe_inputs`) and raise :class:`ModelFileError` beyond tolerance.
    """
    try:
        import onnx
    except ImportError as err:
        raise ImportError(
            f"ONNX export needs the 'onnx' extra (pip install 'hepae-coffea[onnx]'): {err}"
        ) from None
    paths = onnx_paths(output)
    loaded = load_model(model)
    path = loaded.handle.path
    source = path.resolve() if path is not None else None
    for p in paths.values():
        if source is not None and (
            p.resolve() == source or (p.exists() and os.path.samefile(p, source))
        ):
            raise InputFileError(f"{p}: is the input model; refusing to overwrite it")
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p}: output exists (use --overwrite to replace it)")
    meta = loaded.metadata
    eager = eager_model(loaded)
    inputs = probe_inputs(meta)
    check_rebuilt(loaded, eager, inputs)
    example = tuple(torch.from_numpy(a[:8].copy()) for a in inputs)
    event = meta.get("level") == "event"
    names = ("jets", "mask") if event else ("jets",)
    with torch.no_grad():
        z = eager.encode(*example)
    dec_in = (z, example[1]) if event else (z,)
    dec_names = ("latent", "mask") if event else ("latent",)
    log.info("exporting %s to ONNX", meta["path"])
    protos = {
        "full": _export_graph(
            eager, "encode_decode_score", example, names, ("latent", "reconstruction", "score")
        ),
        "encoder": _export_graph(eager, "encode", example, names, ("latent",)),
        "decoder": _export_graph(eager, "decode", dec_in, dec_names, ("reconstruction",)),
    }
    for graph, proto in protos.items():
        _describe(proto, meta, loaded.sha256, graph)
        onnx.checker.check_model(proto)
    result = OnnxExport(paths, loaded.sha256, rows=len(inputs[0]))
    if check:
        result.check, result.ties = _run_checks(protos, loaded, eager, inputs)
        bad = {k: v for k, v in result.check.items() if not k.endswith("_fraction") and v > 1}
        if bad:
            raise ModelFileError(
                f"{meta['path']}: ONNX graphs differ from the TorchScript model beyond "
                f"tolerance: {bad}"
            )
    with contextlib.ExitStack() as stack:  # all three files or none
        tmps = {
            g: stack.enter_context(atomic_output(p, overwrite=overwrite)) for g, p in paths.items()
        }
        for graph, tmp in tmps.items():
            onnx.save_model(protos[graph], tmp)
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return result
