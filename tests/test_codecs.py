"""Codecs: precision specs, truncation, quantisation and entropy coding with error bounds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hepae_coffea.codecs import (
    CodecError,
    PrecisionError,
    bits_max_abs_error,
    bits_max_rel_error,
    circular_error,
    get_codec,
    parse_precision,
    smallest_int_dtype,
)
from hepae_coffea.codecs.precision import bits_for_abs_error, bits_for_rel_error
from hepae_coffea.codecs.quantize import Grid, make_grid
from hepae_coffea.codecs.truncate import round_mantissa

NANO_ERRORS = {"pt": 2.0**-11, "eta": 2.0**-11, "phi": 2.0**-12, "mass": 2.0**-11}
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b) / np.where(b == 0, 1.0, np.abs(b))


def jets(n_events=300, seed=0):
    """QCD-like jets as float32, with a few zero and negative masses."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 7, n_events)
    n = int(counts.sum())
    pt = (20 + rng.exponential(60, n)).astype(np.float32)
    cols = {
        "pt": pt,
        "eta": rng.normal(0, 1.6, n).astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
        "mass": (pt * rng.uniform(0.02, 0.3, n)).astype(np.float32),
    }
    cols["mass"][::17] = 0.0
    cols["mass"][5::23] *= -1
    return counts, cols


# ---------------------------------------------------------------------------- precision
def test_presets_and_tokens():
    p = parse_precision("nanoaod")
    assert [(v, p[v].kind, p[v].value) for v in ("pt", "eta", "phi", "mass")] == [
        ("pt", "bits", 10),
        ("eta", "bits", 12),
        ("phi", "bits", 12),
        ("mass", "bits", 10),
    ]
    assert parse_precision("atlas-high")["eta"].value == 7
    assert parse_precision("ATLAS-LOW")["mass"].value == 15
    p = parse_precision("pt=4.9e-4rel, eta=4.9e-4,phi=2.45e-4,mass=12bits")
    assert (p["pt"].kind, p["pt"].value) == ("rel", 4.9e-4)
    assert (p["eta"].kind, p["eta"].value) == ("abs", 4.9e-4)
    assert (p["mass"].kind, p["mass"].value) == ("bits", 12)
    assert parse_precision("eta=1")["eta"].kind == "abs"  # a bare number is an error
    assert parse_precision("pt=0.1rel").to_json() == {"pt": ["rel", 0.1]}


@pytest.mark.parametrize(
    ("spec", "token"),
    [
        ("nano", "nano"),
        ("pt=abc", "pt=abc"),
        ("pt=10bits,eta=24bits", "eta=24bits"),
        ("pt=-1e-3", "pt=-1e-3"),
        ("pt=0", "pt=0"),
        ("pt=1.5rel", "pt=1.5rel"),
        ("pt=1e-3,pt=2e-3", "pt=2e-3"),
        ("pt=1e-3,,eta=1", "''"),
        ("pt=10.5bits", "pt=10.5bits"),
    ],
)
def test_bad_tokens_are_named(spec, token):
    with pytest.raises(PrecisionError, match=token.replace("+", r"\+").replace(".", r"\.")):
        parse_precision(spec)


def test_missing_variable_is_named():
    with pytest.raises(PrecisionError, match="'mass'"):
        get_codec("quantize").encode({"mass": np.ones(2, np.float32)}, np.array([2]), "pt=1e-3")


def test_bits_and_errors_are_comparable():
    # hand-worked: 10 bits -> 2^-11 relative; 12 bits at |phi| <= pi ([2, 4)) -> 2^-12
    assert bits_max_rel_error(10) == 2.0**-11
    assert bits_max_rel_error(23) == 0.0
    assert bits_max_abs_error(12, math.pi) == 2.0**-12
    assert bits_max_abs_error(12, 4.7) == 2.0**-11  # |eta| up to 4.7: binade [4, 8)
    assert bits_max_abs_error(7, 0.9) == 2.0**-9
    assert bits_for_rel_error(2.0**-11) == 10
    assert bits_for_rel_error(2.0**-11 * 0.99) == 11
    assert bits_for_abs_error(2.0**-12, math.pi) == 12
    assert bits_for_abs_error(1e-3, 4.0) == 11  # ceil(2 - 1 + 9.97)
    p = parse_precision("nanoaod")
    assert p["phi"].max_abs_error(math.pi) == NANO_ERRORS["phi"]
    assert p["pt"].max_rel_error() == NANO_ERRORS["pt"]


# ---------------------------------------------------------------------------- truncate
def test_round_mantissa_hand_worked():
    x = np.array([1.3, 1.7, 1.25, -1.25, 3.0, 0.0], np.float32)
    # 1 bit: representable 1.0, 1.5, 2.0, 3.0; ties (1.25) go away from zero
    assert round_mantissa(x, 1).tolist() == [1.5, 1.5, 1.5, -1.5, 3.0, 0.0]
    assert round_mantissa(np.array([np.inf, np.nan], np.float32), 3)[0] == np.inf


@SETTINGS
@given(
    x=hnp.arrays(
        np.float32,
        st.integers(1, 50),
        elements=st.floats(-(2.0**100), 2.0**100, width=32, allow_subnormal=False).filter(
            lambda v: v == 0 or abs(v) > 2.0**-100
        ),
    ),
    bits=st.integers(0, 23),
)
def test_truncation_relative_bound(x, bits):
    y = round_mantissa(x, bits)
    assert np.all(rel_err(y, x) <= bits_max_rel_error(bits))


def test_truncation_codec_phi_wrapped_and_abs_bits():
    phi = np.array([3.1415925, -3.1415925, 3.0, 0.1], np.float32)
    eta = np.array([4.0, -3.9, 0.5, 0.001], np.float32)
    enc = get_codec("truncate").encode(
        {"phi": phi, "eta": eta}, np.array([4]), "phi=2bits,eta=1e-3"
    )
    out = get_codec("truncate").decode(enc.branches, np.array([4]), enc.info)
    # 2 bits: 3.1415925 -> 3.0 (mantissa 1.5 * 2); 3.0 stays; both inside (-pi, pi]
    assert out["phi"][0] == 3.0
    assert np.all((out["phi"] > -math.pi) & (out["phi"] <= np.float32(math.pi)))
    assert enc.info["bits"]["eta"] == 11
    assert np.all(np.abs(out["eta"].astype(np.float64) - eta) <= 1e-3)
    # rounding up past pi wraps: 3.1415925 at 0 bits -> 4.0 -> 4 - 2 pi
    enc = get_codec("truncate").encode({"phi": phi[:1]}, np.array([1]), "phi=0bits")
    assert enc.branches["phi"][0] == np.float32(4.0 - 2 * math.pi)


# ---------------------------------------------------------------------------- quantize
def test_smallest_int_dtype():
    assert smallest_int_dtype(0, 255) == np.uint8
    assert smallest_int_dtype(-1, 127) == np.int8
    assert smallest_int_dtype(0, 256) == np.uint16
    assert smallest_int_dtype(-129, 0) == np.int16
    assert smallest_int_dtype(0, 70_000) == np.uint32
    assert smallest_int_dtype(-70_000, 0) == np.int32


def test_quantize_hand_worked():
    q = get_codec("quantize")
    # phi to 0.1: L = ceil(pi / 0.1) = 32 levels, step 2 pi / 32; 3.1 -> 16 steps = pi;
    # -3.1 -> -16 = 16 (mod 32) -> pi as well; 0.05 -> round(0.2546) = 0 -> 0
    phi = np.array([3.1, -3.1, 0.05, 0.2], np.float32)
    enc = q.encode({"phi": phi}, np.array([4]), "phi=0.1")
    assert enc.info["columns"]["phi"]["grid"]["levels"] == 32
    assert enc.branches["phi"].dtype == np.uint8
    assert enc.branches["phi"].tolist() == [16, 16, 0, 1]
    out = q.decode(enc.branches, np.array([4]), enc.info)["phi"]
    np.testing.assert_allclose(out, [math.pi, math.pi, 0.0, 2 * math.pi / 32], rtol=1e-7)
    # mass to 10 %: step 2 log(1.1 - 2^-22); 1 -> k=0 -> 1.0; 0 -> exactly 0; -1 -> -1.0;
    # 1.1 -> log(1.1)/step = 0.5000006 -> k=1 -> exp(step) = 1.21 (error 0.1 * 1.1)
    m = np.array([1.0, 0.0, -1.0, 1.1], np.float32)
    enc = q.encode({"mass": m}, np.array([4]), "mass=0.1rel")
    out = q.decode(enc.branches, np.array([4]), enc.info)["mass"]
    step = 2 * math.log1p(0.1 - 2.0**-22)
    np.testing.assert_allclose(out, [1.0, 0.0, -1.0, math.exp(step)], rtol=1e-7)
    assert out[1] == 0.0
    assert enc.info["columns"]["mass"]["zeros"] == 1
    assert enc.info["columns"]["mass"]["negatives"] == 1
    assert enc.branches["mass"].dtype == np.int8  # codes -1, 0, 1, 2


def check_bounds(out, cols, errs):
    for v, e in errs.items():
        if v == "phi":
            err = circular_error(out[v], cols[v])
        elif v in ("pt", "mass"):
            err = rel_err(out[v], cols[v])
        else:
            err = np.abs(out[v].astype(np.float64) - cols[v].astype(np.float64))
        assert out[v].dtype == np.float32
        assert np.all(err <= e), (v, float(err.max()), e)
    if "phi" in out:
        assert np.all((out["phi"] > -math.pi) & (out["phi"] <= np.float32(math.pi)))


finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def f32(v: float) -> float:
    return float(np.float32(v))


@SETTINGS
@given(
    data=st.data(),
    n=st.integers(1, 40),
    e_rel=st.floats(1e-6, 0.3),
    e_eta=st.floats(1e-5, 0.5),
    e_phi=st.floats(1e-5, 1.0),
)
def test_quantize_bound_property(data, n, e_rel, e_eta, e_phi):
    arr = lambda lo, hi: data.draw(
        hnp.arrays(np.float32, n, elements=st.floats(f32(lo), f32(hi), width=32))
    )
    cols = {
        "pt": arr(1e-3, 1e5),
        "eta": arr(-6, 6),
        "phi": arr(-7, 7),  # also outside (-pi, pi]: compared modulo 2 pi
        "mass": data.draw(
            hnp.arrays(
                np.float32,
                n,
                elements=st.one_of(st.just(0.0), st.floats(-50, f32(1e4), width=32), finite32),
            )
        ),
    }
    cols["mass"] = np.where(np.abs(cols["mass"]) < 1.2e-38, 0, cols["mass"]).astype(np.float32)
    spec = f"pt={e_rel!r}rel,eta={e_eta!r},phi={e_phi!r},mass={e_rel!r}rel"
    q = get_codec("quantize")
    enc = q.encode(cols, np.array([n]), spec)
    out = q.decode(enc.branches, np.array([n]), enc.info)
    check_bounds(out, cols, {"pt": e_rel, "eta": e_eta, "phi": e_phi, "mass": e_rel})
    for v, b in enc.branches.items():
        lo, hi = int(b.min()), int(b.max())
        assert b.dtype == smallest_int_dtype(lo, hi), v
    assert np.all(out["mass"][cols["mass"] == 0] == 0)
    assert np.all(np.sign(out["mass"]) == np.sign(cols["mass"]))


def test_quantize_nanoaod_bits_meet_truncation_bounds():
    counts, cols = jets()
    q = get_codec("quantize")
    enc = q.encode(cols, counts, "nanoaod")
    out = q.decode(enc.branches, counts, enc.info)
    check_bounds(out, cols, NANO_ERRORS)


def test_quantize_refuses_non_finite_and_bad_lengths():
    q = get_codec("quantize")
    with pytest.raises(CodecError, match=r"'pt' has 1 non-finite"):
        q.encode({"pt": np.array([1.0, np.nan], np.float32)}, np.array([2]), "pt=1e-3rel")
    with pytest.raises(CodecError, match=r"'pt' has shape \(2,\), expected \(3,\)"):
        q.encode({"pt": np.ones(2, np.float32)}, np.array([3]), "pt=1e-3rel")
    with pytest.raises(PrecisionError, match="finer than float32"):
        make_grid("pt", parse_precision("pt=1e-8rel")["pt"], np.ones(2))


# ---------------------------------------------------------------------------- entropy


@pytest.fixture(scope="module")
def entropy_model():
    from hepae_coffea.codecs.entropy import fit_model

    counts, cols = jets(1500, seed=1)
    return fit_model(cols, counts, name="test")


def test_entropy_exact_integers_and_bounds(entropy_model):
    from hepae_coffea.codecs import entropy

    counts, cols = jets(700, seed=2)
    counts[:3] = 0  # events without jets
    counts[3] = 1
    n = int(counts.sum())
    cols = {k: v[:n] for k, v in cols.items()}
    cols["pt"][7] = 60_000.0  # beyond the histogram: escape
    cols["eta"][8] = 7.5  # beyond the histogram: escape
    cols["mass"][9] = 1e-20  # tiny mass: escape of log(m / pt)
    enc = entropy.encode(cols, counts, "nanoaod", model=entropy_model, block_events=128)
    assert set(enc.branches) == {"codes"}
    assert enc.branches["codes"].dtype == np.uint32
    assert len(enc.info["block_words"]) == math.ceil(len(counts) / 128)
    assert enc.entry_sizes["codes"].sum() == len(enc.branches["codes"])
    info = json.loads(json.dumps(enc.info))  # plain JSON survives
    grids, ints = entropy.decode_integers(enc.branches, counts, info)
    # the quantiser's integers, computed independently of the coder
    for v in ("pt", "eta", "phi"):
        q, _ = grids[v].to_int(cols[v])
        np.testing.assert_array_equal(ints[v], q)
    km, sm = grids["mass"].to_int(cols["mass"])
    nz = sm != 0
    np.testing.assert_array_equal(ints["mass"][1], sm)
    np.testing.assert_array_equal(ints["mass"][0][nz], km[nz])
    out = entropy.decode(enc.branches, counts, info)
    check_bounds(out, cols, NANO_ERRORS)
    # fewer bytes than the quantiser's integers as 16 bits each (8 B/jet)
    assert enc.nbytes() < 7.5 * n


@SETTINGS
@given(seed=st.integers(0, 10_000), e=st.floats(1e-5, 0.05), block=st.integers(1, 50))
def test_entropy_roundtrip_property(entropy_model, seed, e, block):
    from hepae_coffea.codecs import entropy

    counts, cols = jets(40, seed=seed)
    spec = f"pt={e!r}rel,eta={e!r},phi={e!r},mass={e!r}rel"
    enc = entropy.encode(cols, counts, spec, model=entropy_model, block_events=block)
    out = entropy.decode(enc.branches, counts, enc.info)
    check_bounds(out, cols, {"pt": e, "eta": e, "phi": e, "mass": e})
    ref = get_codec("quantize").encode(cols, counts, spec)
    ref_out = get_codec("quantize").decode(ref.branches, counts, ref.info)
    for v in cols:  # the same grid as the quantiser, value for value
        np.testing.assert_array_equal(out[v], ref_out[v])


def test_entropy_model_by_reference_and_checks(entropy_model):
    from hepae_coffea.codecs import entropy

    counts, cols = jets(100, seed=3)
    enc = entropy.encode(cols, counts, "nanoaod", model=entropy_model, embed_model=False)
    assert "model" not in enc.info
    with pytest.raises(CodecError, match="not embedded"):
        entropy.decode(enc.branches, counts, enc.info)
    model = entropy.EntropyModel.from_bytes(entropy_model.to_bytes())
    out = entropy.decode(enc.branches, counts, enc.info, model=model)
    check_bounds(out, cols, NANO_ERRORS)
    other = entropy.fit_model(*reversed(jets(200, seed=9)), name="other")
    with pytest.raises(CodecError, match="does not match"):
        entropy.decode(enc.branches, counts, enc.info, model=other)
    with pytest.raises(CodecError, match="not an entropy model"):
        entropy.EntropyModel.from_json({"format": "pickle"})
    with pytest.raises(PrecisionError, match="relative bound"):
        entropy.encode(cols, counts, "pt=0.1,eta=0.1,phi=0.1,mass=0.1rel", model=entropy_model)
    with pytest.raises(CodecError, match="missing: mass"):
        entropy.encode({k: cols[k] for k in ("pt", "eta", "phi")}, counts, "nanoaod")


def test_entropy_other_columns_quantised(entropy_model):
    from hepae_coffea.codecs import entropy

    counts, cols = jets(60, seed=4)
    n = int(counts.sum())
    cols["width"] = np.linspace(0, 0.4, n).astype(np.float32)
    cols["nConstituents"] = np.arange(n, dtype=np.int32)
    spec = "pt=10bits,eta=12bits,phi=12bits,mass=10bits,width=1e-3"
    enc = entropy.encode(cols, counts, spec, model=entropy_model)
    out = entropy.decode(enc.branches, counts, enc.info)
    assert np.max(np.abs(out["width"] - cols["width"])) <= 1e-3
    np.testing.assert_array_equal(out["nConstituents"], cols["nConstituents"])


# ---------------------------------------------------------------------------- AE + fixes
def test_bounded_ae_corrects_exactly_the_out_of_bound_values():
    from hepae_coffea.codecs import bounded_ae

    counts, cols = jets(200, seed=5)
    variables = ("pt", "eta", "phi", "mass")
    x = np.stack([cols[v] for v in variables], axis=1)

    def encoder(a):  # a lossy "AE": 3 mantissa bits of every value
        return round_mantissa(a, 3)

    def decoder(z):
        return np.asarray(z, np.float32)

    spec = "pt=0.01rel,eta=0.01,phi=0.01,mass=0.01rel"
    enc = bounded_ae.encode(
        cols, counts, spec, encoder=encoder, decoder=decoder, variables=variables
    )
    out = bounded_ae.decode(enc.branches, counts, json.loads(json.dumps(enc.info)), decoder=decoder)
    check_bounds(out, cols, {"pt": 0.01, "eta": 0.01, "phi": 0.01, "mass": 0.01})
    # which values 3 bits leave beyond 0.999 x the bound, computed here with plain numpy
    rec = round_mantissa(x, 3).astype(np.float64)
    orig = x.astype(np.float64)
    rel = np.abs(rec - orig) / np.where(orig != 0, np.abs(orig), 1) + np.where(
        orig == 0, np.abs(rec), 0
    )
    absd = np.abs(rec - orig)
    dphi = np.abs(rec[:, 2] - orig[:, 2]) % (2 * math.pi)
    dphi = np.minimum(dphi, 2 * math.pi - dphi)
    bad = np.stack(
        [rel[:, 0] > 0.00999, absd[:, 1] > 0.00999, dphi > 0.00999, rel[:, 3] > 0.00999], axis=1
    )
    for i, v in enumerate(variables):
        assert enc.info["corrections"][v]["corrected"] == int(bad[:, i].sum())
        assert len(enc.branches[f"fix_{v}"]) == int(bad[:, i].sum())
        np.testing.assert_array_equal(out[v][~bad[:, i]], rec[~bad[:, i], i].astype(np.float32))
    assert enc.info["fraction_jets_corrected"] == pytest.approx(np.mean(bad.any(axis=1)))
    assert 0 < enc.info["fraction_jets_corrected"] < 1
    assert enc.entry_sizes["fix_pt"].sum() == bad[:, 0].sum()


def test_bounded_ae_with_the_shipped_model():
    import torch

    from hepae_coffea.codecs import bounded_ae
    from hepae_coffea.model.export import load_model

    module = load_model().module
    variables = ("pt", "eta", "phi", "mass")

    def enc_fn(a):
        with torch.inference_mode():
            return module.encode(torch.from_numpy(np.ascontiguousarray(a))).numpy()

    def dec_fn(z):
        with torch.inference_mode():
            return module.decode(torch.from_numpy(np.ascontiguousarray(z))).numpy()

    counts, cols = jets(150, seed=6)
    cols["mass"] = np.abs(cols["mass"])
    enc = bounded_ae.encode(
        cols,
        counts,
        "nanoaod",
        encoder=enc_fn,
        decoder=dec_fn,
        variables=variables,
        latent_bits=16,
    )
    out = bounded_ae.decode(enc.branches, counts, enc.info, decoder=dec_fn)
    check_bounds(out, cols, NANO_ERRORS)
    assert enc.info["fraction_jets_corrected"] > 0.5  # the AE alone is far from NanoAOD bits


def test_grid_codes_and_values_by_hand():
    f32max = float(np.finfo(np.float32).max)
    # log grid, step log 2: k = round(log2 |x|), sign kept apart; 0 -> k 0, sign 0
    g = Grid("log", math.log(2.0))
    k, sign = g.to_int(np.array([4.0, 0.0, -0.5, 3.0, 1.0, 0.7]))
    assert k.tolist() == [2, 0, -1, 2, 0, -1]  # log2 3 = 1.58, log2 0.7 = -0.51
    assert sign.tolist() == [1, 0, -1, 1, 1, 1]
    assert k.dtype == np.int64
    assert sign.dtype == np.int8
    out = g.from_int(k, sign)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [4.0, 0.0, -0.5, 4.0, 1.0, 0.5], rtol=1e-7)
    with pytest.raises(CodecError, match="signs"):
        g.from_int(k)
    big = g.from_int(np.array([200, 200, 3]), np.array([1, -1, 1]))  # 2^200: beyond float32
    assert big.tolist() == [f32max, -f32max, 8.0]
    # linear grid, step 0.25: round(x / 0.25), halves to even
    g = Grid("linear", 0.25)
    k, sign = g.to_int(np.array([0.3, -0.3, 0.125, 1.0, 0.375]))
    assert sign is None
    assert k.tolist() == [1, -1, 0, 4, 2]
    np.testing.assert_array_equal(g.from_int(k), np.float32([0.25, -0.25, 0.0, 1.0, 0.5]))
    assert Grid("linear", 1e30).from_int(np.array([10**10, -(10**10)])).tolist() == [
        f32max,
        -f32max,
    ]
    # angle grid, 8 levels of pi / 4: codes mod 8, decoded into (-pi, pi]
    g = Grid("angle", math.pi / 4, levels=8)
    k, _ = g.to_int(np.array([math.pi, -math.pi, -math.pi / 4, 3 * math.pi / 4 + 0.1, 2 * math.pi]))
    assert k.tolist() == [4, 4, 7, 3, 0]
    out = g.from_int(np.array([4, 7, 3, 0, 12, -1, 5]))
    expected = np.float32(
        [math.pi, -math.pi / 4, 3 * math.pi / 4, 0.0, math.pi, -math.pi / 4, -3 * math.pi / 4]
    )
    np.testing.assert_array_equal(out, expected)
    # 5 levels of 2 pi / 5: code 2 -> 4 pi / 5, code 3 -> -4 pi / 5
    g = Grid("angle", 2 * math.pi / 5, levels=5)
    np.testing.assert_array_equal(
        g.from_int(np.array([2, 3, 4])),
        np.float32([4 * math.pi / 5, -4 * math.pi / 5, -2 * math.pi / 5]),
    )
