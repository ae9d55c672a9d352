"""The entropy coder's building blocks against hand-worked values and costs.

Each coded stream is decoded again (exact integers) and its size compared with the
information content computed by hand from the model's probabilities: an escape costs its
symbol plus 32 raw bits, a value inside a histogram bin its symbol plus log2 of the bin's
width in grid steps.
"""

from __future__ import annotations

import math
import typing
from types import SimpleNamespace

import numpy as np
import pytest

from hepae_coffea.codecs.entropy import (
    EntropyModel,
    Histogram,
    _blocks,
    _Coder,
    _dphi_int,
    _mass_ref,
)


def _words_for(bits: float) -> tuple[int, int]:
    """Range of 32-bit words a range coder needs for ``bits`` of information."""
    return math.floor(bits / 32), math.ceil(bits / 32) + 2


def test_raw32_round_trip_costs_32_bits_each():
    vals = np.array([-(2**31), -(2**31) + 1, -1, 0, 1, 65535, 65536, 2**31 - 1] * 125)
    enc = _Coder(None, {})
    enc._raw32(vals, len(vals))
    words = enc.finish()
    lo, hi = _words_for(32.0 * len(vals))
    assert lo <= len(words) <= hi
    np.testing.assert_array_equal(_Coder(None, {}, words)._raw32(None, len(vals)), vals)


def test_uniform_round_trip_costs_log2_of_the_size():
    rng = np.random.default_rng(5)
    sizes = rng.choice([2, 3, 7, 256, 1000, 1 << 16], 3000)
    vals = rng.integers(0, sizes)
    vals[:6] = [1, 2, 6, 255, 999, (1 << 16) - 1]  # the largest symbol of each size
    sizes[:6] = [2, 3, 7, 256, 1000, 1 << 16]
    enc = _Coder(None, {})
    enc.uniform(vals, sizes, len(vals))
    words = enc.finish()
    lo, hi = _words_for(float(np.log2(sizes).sum()))
    assert lo <= len(words) <= hi
    back = _Coder(None, {}, words).uniform(None, sizes, len(vals))
    np.testing.assert_array_equal(back, vals)
    assert back.dtype == np.int64
    empty = _Coder(None, {})
    assert len(empty.uniform(np.zeros(0, np.int64), np.zeros(0, np.int64), 0)) == 0
    assert len(empty.finish()) == 0  # nothing coded: no words
    assert len(_Coder(None, {}, np.zeros(0, np.uint32)).uniform(None, [], 0)) == 0


# a stream whose bins are 0-1.5-3-4.5-6 (physical): with grid step 1 the integer edges are
# ceil(edge) = 0, 2, 3, 5, 6, bins of 2, 1, 2 and 1 values; weights per context, the last
# column the escape symbol
WEIGHTS = np.array([[1, 2, 3, 4, 6], [6, 1, 1, 1, 1]], np.int64)
MODEL = EntropyModel({"s": Histogram(0.0, 6.0, 4, WEIGHTS)}, {}, {})
INT_EDGES = np.array([0, 2, 3, 5, 6])


def _hand_bits(q: np.ndarray, ctx: np.ndarray) -> float:
    """Information content of coding ``q`` with ``MODEL``, written out without the coder."""
    p = WEIGHTS / WEIGHTS.sum(axis=1, keepdims=True)
    bits = 0.0
    for v, c in zip(q.tolist(), ctx.tolist(), strict=True):
        if 0 <= v < 6:  # inside: bin symbol + position inside the bin
            b = {0: 0, 1: 0, 2: 1, 3: 2, 4: 2, 5: 3}[v]
            width = [2, 1, 2, 1][b]
            bits += -math.log2(p[c, b]) + math.log2(width)
        else:  # escape symbol + 32 raw bits
            bits += -math.log2(p[c, 4]) + 32.0
    return bits


def test_values_round_trip_with_escapes_and_costs():
    assert np.array_equal(_Coder(MODEL, {})._table("s", 1.0)[0], INT_EDGES)
    rng = np.random.default_rng(7)
    q = rng.integers(-2, 8, 4000)
    q[:8] = [-1, 0, 1, 2, 5, 6, -(2**31), 2**31 - 1]  # each edge, both ends, the extremes
    ctx = rng.integers(0, 2, len(q))
    enc = _Coder(MODEL, {})
    assert enc.values("s", 1.0, ctx, q) is q
    words = enc.finish()
    lo, hi = _words_for(_hand_bits(q, ctx))
    assert lo <= len(words) <= hi
    back = _Coder(MODEL, {}, words).values("s", 1.0, ctx, None)
    np.testing.assert_array_equal(back, q)


@pytest.mark.parametrize("q", [[0], [1], [4], [5], [-1], [6], [3, 3]])
def test_values_single_values_and_none(q):
    q = np.array(q, np.int64)
    ctx = np.ones(len(q), np.int64)
    enc = _Coder(MODEL, {})
    enc.values("s", 1.0, ctx, q)
    words = enc.finish()
    lo, hi = _words_for(_hand_bits(q, ctx))
    assert lo <= len(words) <= hi
    np.testing.assert_array_equal(_Coder(MODEL, {}, words).values("s", 1.0, ctx, None), q)
    none = _Coder(MODEL, {})
    assert len(none.values("s", 1.0, np.zeros(0, np.int64), np.zeros(0, np.int64))) == 0
    assert len(none.finish()) == 0


@pytest.mark.parametrize(
    ("levels", "qphi", "qfirst", "expect"),
    [
        # (-5, 5]: half a turn is +5, one step more -4
        (10, [0, 5, 6, 9, 1, 3, 2], [0, 0, 0, 0, 8, 8, 7], [0, 5, -4, -1, 3, 5, 5]),
        # odd count (-4.5, 4.5]: 4 and -4 are the largest turns
        (9, [0, 4, 5, 8, 0], [0, 0, 0, 0, 4], [0, 4, -4, -1, -4]),
    ],
)
def test_dphi_int_hand_worked(levels, qphi, qfirst, expect):
    got = _dphi_int(np.array(qphi), np.array(qfirst), levels)
    np.testing.assert_array_equal(got, expect)


def test_mass_ref_hand_worked():
    gpt, gm = SimpleNamespace(step=0.5), SimpleNamespace(step=1.0)
    # log pt 1.5, 2.5, -1.5, 10 on a mass grid twice as coarse: halves round to even
    got = _mass_ref(np.array([3, 5, -3, 20]), gpt, gm)
    np.testing.assert_array_equal(got, [2, 2, -2, 10])
    assert got.dtype == np.int64
    np.testing.assert_array_equal(_mass_ref(np.array([3]), gm, gpt), [6])


@pytest.mark.parametrize(
    ("counts", "block", "expect"),
    [
        ([2, 0, 3, 1, 4], 2, [(0, 2, 0, 2), (2, 4, 2, 6), (4, 5, 6, 10)]),
        ([2, 0, 3, 1, 4], 5, [(0, 5, 0, 10)]),
        ([2, 0, 3, 1, 4], 9, [(0, 5, 0, 10)]),
        ([2, 0, 3], 1, [(0, 1, 0, 2), (1, 2, 2, 2), (2, 3, 2, 5)]),
        ([], 3, []),
    ],
)
def test_blocks_hand_worked(counts, block, expect):
    assert list(_blocks(np.array(counts, np.int64), block)) == expect


@pytest.mark.parametrize(
    "func", [_Coder.values, _Coder.uniform, _Coder._raw32, _dphi_int, _mass_ref, _blocks]
)
def test_coder_annotations_resolve(func):
    # documentation and type tools evaluate the (postponed) annotations: they must resolve
    hints = typing.get_type_hints(func)
    for name in ("values", "q"):
        if name in hints:
            assert hints[name] == np.ndarray | None
