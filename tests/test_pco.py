"""The pcodec codec: the quantiser's grid, every variable within its bound, bad payloads."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hepae_coffea.codecs import CODECS, CodecError, get_codec

pco = get_codec("pcodec")
#: NanoAOD's bits for the kinematics, 2**-11 for the fraction and the width
NANO = "pt=10bits,eta=12bits,phi=12bits,mass=10bits,chHEF=4.8828125e-4,width=4.8828125e-4rel"
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def columns(n_events: int, seed: int):
    """Kinematics plus fractions, shapes and integer counts, as in a NanoAOD jet table."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 6, n_events)
    n = int(counts.sum())
    pt = (15 + rng.exponential(50, n)).astype(np.float32)
    cols = {
        "pt": pt,
        "eta": rng.uniform(-4.7, 4.7, n).astype(np.float32),
        "phi": rng.uniform(-math.pi, math.pi, n).astype(np.float32),
        "mass": (pt * rng.uniform(0.0, 0.3, n)).astype(np.float32),
        "chHEF": rng.uniform(0, 1, n).astype(np.float32),
        "width": rng.exponential(0.05, n).astype(np.float32),
        "nConstituents": rng.integers(1, 80, n).astype(np.int32),
        "nCharged": rng.integers(0, 40, n).astype(np.uint8),
    }
    cols["mass"][::11] = 0.0
    cols["mass"][3::13] *= -1  # negative masses keep their sign
    return counts, cols


def max_error(var: str, kind: str, orig: np.ndarray, rec: np.ndarray) -> float:
    """Largest error, by hand: relative, absolute, or absolute on the circle for phi."""
    a, b = orig.astype(np.float64), rec.astype(np.float64)
    d = np.abs(b - a)
    if var == "phi":
        d = np.minimum(d % (2 * math.pi), 2 * math.pi - d % (2 * math.pi))
    if kind == "rel":
        d = d / np.where(a != 0, np.abs(a), 1.0)
    return float(d.max(initial=0.0))


def test_registered():
    assert "pcodec" in CODECS
    assert pco.NAME == "pcodec"


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    e=st.floats(1e-5, 0.05),
    block=st.integers(1, 40),
)
def test_every_variable_within_its_bound(seed, e, block):
    counts, cols = columns(60, seed)
    spec = f"pt={e!r}rel,eta={e!r},phi={e!r},mass={e!r}rel,chHEF={e!r},width={e!r}rel"
    enc = pco.encode(cols, counts, spec, block_events=block)
    info = json.loads(json.dumps(enc.info))  # plain JSON
    out = pco.decode(enc.branches, counts, info)
    assert set(out) == set(cols)
    kinds = {"pt": "rel", "eta": "abs", "phi": "abs", "mass": "rel", "chHEF": "abs"}
    kinds["width"] = "rel"
    for v, kind in kinds.items():
        assert out[v].dtype == np.float32
        assert max_error(v, kind, cols[v], out[v]) <= e, v
    assert np.all(np.sign(out["mass"]) == np.sign(cols["mass"]))
    assert np.all((out["phi"] > -math.pi) & (out["phi"] <= np.float32(math.pi)))
    for v in ("nConstituents", "nCharged"):  # integers: exact, same dtype
        assert out[v].dtype == cols[v].dtype
        np.testing.assert_array_equal(out[v], cols[v])


def test_same_values_as_quantize_and_smaller():
    counts, cols = columns(400, seed=1)
    enc = pco.encode(cols, counts, NANO)
    out = pco.decode(enc.branches, counts, enc.info)
    q = get_codec("quantize")
    ref = q.encode(cols, counts, NANO)
    ref_out = q.decode(ref.branches, counts, ref.info)
    for v in cols:  # the quantiser's grid, value for value
        np.testing.assert_array_equal(out[v], ref_out[v])
    assert enc.nbytes() < ref.nbytes()


def test_blocks_and_entry_sizes():
    counts, cols = columns(25, seed=2)
    counts[:4] = 0  # events without jets
    n = int(counts.sum())
    cols = {k: v[:n] for k, v in cols.items()}
    enc = pco.encode(cols, counts, NANO, block_events=10)
    assert set(enc.branches) == {"bytes"}
    b = enc.branches["bytes"]
    assert b.dtype == np.uint8
    sz = enc.entry_sizes["bytes"]
    assert len(sz) == len(counts)
    assert sz.sum() == len(b)
    # a block's chunks in its first event, nothing elsewhere
    assert np.count_nonzero(sz) == 3
    per_block = np.zeros(3, np.int64)
    for v in cols:
        per_block += enc.info["columns"][v]["block_bytes"]
    np.testing.assert_array_equal(sz[[0, 10, 20]], per_block)
    # the first chunk is the first column's, a pcodec standalone stream ("pco!")
    assert bytes(b[:4]) == b"pco!"
    out = pco.decode(enc.branches, counts, enc.info)
    np.testing.assert_array_equal(out["nConstituents"], cols["nConstituents"])


def test_no_jets():
    counts = np.zeros(3, np.int64)
    cols = {v: np.zeros(0, np.float32) for v in ("pt", "eta", "phi", "mass")}
    enc = pco.encode(cols, counts, NANO)
    out = pco.decode(enc.branches, counts, enc.info)
    assert all(len(out[v]) == 0 for v in cols)


def test_bad_input_and_payloads():
    counts, cols = columns(30, seed=3)
    bad = dict(cols, pt=cols["pt"].copy())
    bad["pt"][2] = np.inf
    with pytest.raises(CodecError, match=r"'pt' has 1 non-finite"):
        pco.encode(bad, counts, NANO)
    with pytest.raises(CodecError, match="block_events must be positive"):
        pco.encode(cols, counts, NANO, block_events=0)
    enc = pco.encode(cols, counts, NANO)
    with pytest.raises(CodecError, match="not 'pcodec'"):
        pco.decode(enc.branches, counts, dict(enc.info, codec="quantize"))
    corrupt = {"bytes": np.zeros_like(enc.branches["bytes"])}
    with pytest.raises(CodecError, match="'pt': corrupt chunk"):
        pco.decode(corrupt, counts, enc.info)
    short = {"bytes": enc.branches["bytes"][:-3]}
    with pytest.raises(CodecError, match=r"has \d+ bytes, its blocks say \d+"):
        pco.decode(short, counts, enc.info)
    with pytest.raises(CodecError, match="lacks the branch 'bytes'"):
        pco.decode({}, counts, enc.info)
    with pytest.raises(CodecError, match="the jet counts give 2"):
        pco.decode(enc.branches, np.concatenate([counts, counts]), dict(enc.info, block_events=30))
    more = counts.copy()
    more[0] += 1  # one jet more than was coded
    with pytest.raises(CodecError, match="expected"):
        pco.decode(enc.branches, more, enc.info)


def test_eight_bit_codes_are_range_checked():
    counts = np.array([3])
    wide = pco.encode_integers({"k": np.array([1, 300, 2], np.int16)}, counts)
    info = json.loads(json.dumps(wide.info))
    info["columns"]["k"]["dtype"] = "int8"  # a payload claiming 8-bit codes
    info["columns"]["k"]["coded"] = "int16"
    with pytest.raises(CodecError, match="outside int8's range"):
        pco.decode_integers(wide.branches, counts, info)
    ok = pco.encode_integers({"k": np.array([1, 255, 0], np.uint8)}, counts)
    assert ok.info["columns"]["k"]["coded"] == "uint16"
    out = pco.decode_integers(ok.branches, counts, ok.info)
    assert out["k"].dtype == np.uint8
    assert out["k"].tolist() == [1, 255, 0]
    with pytest.raises(CodecError, match="not integers"):
        pco.encode_integers({"k": np.ones(3, np.float32)}, counts)


def test_entropy_codes_the_other_columns_with_pcodec():
    pytest.importorskip("constriction")
    from hepae_coffea.codecs import entropy

    counts, cols = columns(200, seed=6)
    cols["mass"] = np.abs(cols["mass"])
    enc = entropy.encode(cols, counts, NANO)
    assert set(enc.branches) == {"codes", "p_bytes"}
    assert enc.entry_sizes["p_bytes"].sum() == len(enc.branches["p_bytes"])
    out = entropy.decode(enc.branches, counts, json.loads(json.dumps(enc.info)))
    others = {v: cols[v] for v in ("chHEF", "width", "nConstituents", "nCharged")}
    ref = pco.encode(others, counts, NANO, block_events=enc.info["block_events"])
    np.testing.assert_array_equal(enc.branches["p_bytes"], ref.branches["bytes"])
    ref_out = pco.decode(ref.branches, counts, ref.info)
    for v in others:
        np.testing.assert_array_equal(out[v], ref_out[v])
    assert max_error("width", "rel", cols["width"], out["width"]) <= 2.0**-11
