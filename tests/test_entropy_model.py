"""The entropy codec's model as stored data: compact levels, exact round trip, bad input."""

from __future__ import annotations

import base64
import json
import lzma

import numpy as np
import pytest

from hepae_coffea.codecs import CodecError
from hepae_coffea.codecs import entropy as E


def _jets(n_events: int, seed: int):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 6, n_events)
    n = int(counts.sum())
    pt = (25 + rng.exponential(50, n)).astype(np.float32)
    cols = {
        "pt": pt,
        "eta": rng.normal(0, 1.5, n).astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
        "mass": (pt * rng.uniform(0.05, 0.25, n)).astype(np.float32),
    }
    return counts, cols


@pytest.fixture(scope="module")
def model():
    counts, cols = _jets(800, seed=4)
    return E.fit_model(cols, counts, name="levels")


def test_levels_by_hand():
    # level L means weight round(2 ** (L / 2)): 1, 1, 2, 3, 4, 6, 8, 11, 16, ...
    assert E.LEVEL_WEIGHTS[:9].tolist() == [1, 1, 2, 3, 4, 6, 8, 11, 16]
    assert E.LEVEL_WEIGHTS[32] == 65536
    h = E.Histogram(0.0, 1.0, 3, np.array([[4, 16, 2, 1], [65536, 11, 6, 3]]))
    np.testing.assert_array_equal(h.levels(), [[4, 8, 2, 0], [32, 7, 5, 3]])
    d = h.to_json()
    assert "weights" not in d
    assert d["contexts"] == 2
    # the stored bytes: int8 differences along each row, raw LZMA2, base64
    raw = lzma.decompress(
        base64.b64decode(d["levels"]), format=lzma.FORMAT_RAW, filters=E._LZMA_FILTERS
    )
    assert np.frombuffer(raw, np.int8).tolist() == [4, 4, -6, -2, 32, -25, -2, -2]
    back = E.Histogram.from_json("s", json.loads(json.dumps(d)))
    np.testing.assert_array_equal(back.weights, h.weights)


def test_off_grid_weights_stay_lists():
    h = E.Histogram(0.0, 1.0, 2, np.array([[5, 7, 1]]))  # 5 and 7 are no level's weight
    assert h.levels() is None
    d = h.to_json()
    assert d["weights"] == [[5, 7, 1]]
    assert "levels" not in d
    np.testing.assert_array_equal(E.Histogram.from_json("s", d).weights, h.weights)


def test_fitted_model_is_on_the_grid_and_round_trips(model):
    for h in model.streams.values():
        lv = h.levels()
        assert lv is not None
        assert lv.min() >= E.MIN_FIT_LEVEL
    b = model.to_bytes()
    back = E.EntropyModel.from_bytes(b)
    assert back.to_bytes() == b
    for k, h in model.streams.items():
        np.testing.assert_array_equal(back.streams[k].weights, h.weights)
    # a third (or less) of the same weights written as JSON lists
    lists = json.loads(b)
    for k, h in model.streams.items():
        lists["streams"][k] = {"lo": h.lo, "hi": h.hi, "bins": h.bins}
        lists["streams"][k]["weights"] = h.weights.tolist()
    assert len(b) * 3 < len(json.dumps(lists, separators=(",", ":")))


def test_version1_models_still_decode(model):
    counts, cols = _jets(60, seed=5)
    d = model.to_json()
    d["version"] = 1
    d["streams"] = {
        k: {"lo": h.lo, "hi": h.hi, "bins": h.bins, "weights": h.weights.tolist()}
        for k, h in model.streams.items()
    }
    old = E.EntropyModel.from_json(d)
    enc = E.encode(cols, counts, "nanoaod", model=old)
    out = E.decode(enc.branches, counts, json.loads(json.dumps(enc.info)))
    new = E.encode(cols, counts, "nanoaod", model=model)
    np.testing.assert_array_equal(enc.branches["codes"], new.branches["codes"])
    ref = E.decode(new.branches, counts, new.info)
    for v in cols:
        np.testing.assert_array_equal(out[v], ref[v])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"levels": "not base64!"}, "do not decode"),
        ({"levels": base64.b64encode(b"\x07garbage").decode()}, "levels"),
        ({"levels": base64.b64encode(b"\x00").decode()}, "hold 0 bytes"),
        ({"contexts": 0}, "bad shape"),
        ({"contexts": 3}, "expected"),
    ],
)
def test_bad_levels_raise(model, change, match):
    d = model.streams["eta"].to_json()
    d.update(change)
    with pytest.raises(CodecError, match=match):
        E.Histogram.from_json("eta", d)


def test_levels_out_of_range_raise():
    bad = np.array([[41, 0, 0]], np.int8)  # level 41 > MAX_LEVEL
    packed = lzma.compress(bad.tobytes(), format=lzma.FORMAT_RAW, filters=E._LZMA_FILTERS)
    d = {"lo": 0, "hi": 1, "bins": 2, "contexts": 1, "levels": base64.b64encode(packed).decode()}
    with pytest.raises(CodecError, match=r"outside \[0, 40\]"):
        E.Histogram.from_json("x", d)
    neg = np.array([[2, -3, 0]], np.int8)
    packed = lzma.compress(neg.tobytes(), format=lzma.FORMAT_RAW, filters=E._LZMA_FILTERS)
    d["levels"] = base64.b64encode(packed).decode()
    with pytest.raises(CodecError, match="outside"):
        E.Histogram.from_json("x", d)
