"""The Elo kernel: the numba kernel, the numpy fallback and the plain Python loop give the same numbers."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from arena import elo_kernel
from arena.elo import elo_python


def matches(n: int = 700, models: int = 5, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random matches among `models` models: slot 1, slot 2 and slot 1's score (1, 0.5 or 0)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, models, n)
    b = (a + rng.integers(1, models, n)) % models
    return a, b, rng.choice([0.0, 0.5, 1.0], n)


def test_the_fallback_plays_its_shuffled_orders_like_the_plain_python_loop() -> None:
    a, b, score = matches()
    kinds, codes = elo_kernel.match_codes(a, b, score)
    table = elo_kernel.shuffled(codes, elo_kernel.ordering_streams(seed=5, first=0, count=4))
    fast = elo_kernel.elo_orderings(a, b, score, 5, 24.0, 4, seed=5, initial=1200.0, compiled=False)
    for column in range(4):
        order = table[:, column]
        slow = elo_python(kinds[0][order], kinds[1][order], kinds[2][order] / 2, 5, 24.0, 1200.0)
        np.testing.assert_allclose(fast[column], slow, rtol=0, atol=1e-9)
    assert sorted(table[:, 0].tolist()) == sorted(codes.tolist())  # a permutation, nothing lost


@pytest.mark.parametrize("k", [32.0, 100.0])  # K=100 takes steps past the series' range
def test_the_compiled_kernel_gives_the_fallbacks_numbers(monkeypatch: pytest.MonkeyPatch, k: float) -> None:
    pytest.importorskip("numba")
    monkeypatch.setattr(elo_kernel, "KERNEL_BLOCK", 16)  # several blocks, the last one not whole lanes
    a, b, score = matches()
    compiled = elo_kernel.elo_orderings(a, b, score, 5, k, 37, seed=9, initial=1000.0, compiled=True)
    fallback = elo_kernel.elo_orderings(a, b, score, 5, k, 37, seed=9, initial=1000.0, compiled=False)
    np.testing.assert_allclose(compiled, fallback, rtol=0, atol=1e-9)
    assert np.ptp(compiled[:, 0]) > 1.0  # orderings differ


def test_an_ordering_does_not_depend_on_the_chunk_it_falls_in(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, score = matches(n=300)
    whole = elo_kernel.elo_orderings(a, b, score, 5, 32.0, 12, seed=1, initial=1000.0, compiled=False)
    monkeypatch.setattr(elo_kernel, "CHUNK_BYTES", 5 * 300)  # five orderings per chunk
    chunked = elo_kernel.elo_orderings(a, b, score, 5, 32.0, 12, seed=1, initial=1000.0, compiled=False)
    np.testing.assert_array_equal(whole, chunked)
    other_seed = elo_kernel.elo_orderings(a, b, score, 5, 32.0, 12, seed=2, initial=1000.0, compiled=False)
    assert not np.array_equal(whole, other_seed)


def test_shuffles_are_uniform_over_permutations() -> None:
    table = elo_kernel.shuffled(np.arange(3), elo_kernel.ordering_streams(seed=0, first=0, count=6000))
    counts = Counter(map(tuple, table.T.tolist()))
    assert len(counts) == 6
    assert all(870 < c < 1130 for c in counts.values()), counts  # 1,000 each, sd 29


def test_the_exponential_pair_is_exact_to_double_precision() -> None:
    for x in np.linspace(-0.25, 0.25, 2001):  # the series' own range: no squaring
        up, down = elo_kernel._exp_pair(float(x), elo_kernel.SERIES, 1.0, 0)
        assert up == pytest.approx(math.exp(x), rel=4e-16, abs=0)
        assert down == pytest.approx(math.exp(-x), rel=4e-16, abs=0)


@pytest.mark.parametrize("largest", [0.3, 0.6, 1.9, 3.9])
def test_larger_steps_are_shrunk_and_squared_back(largest: float) -> None:
    shrink, squarings = elo_kernel.exp_reduction(largest)
    assert largest * shrink <= elo_kernel.EXP_SERIES_MAX < 2 * largest * shrink
    for x in np.linspace(-largest, largest, 501):
        up, down = elo_kernel._exp_pair(float(x), elo_kernel.SERIES, shrink, squarings)
        assert up == pytest.approx(math.exp(x), rel=2**squarings * 4e-16, abs=0)
        assert down == pytest.approx(math.exp(-x), rel=2**squarings * 4e-16, abs=0)


def test_a_k_beyond_the_kernels_reach_is_refused_with_what_to_do() -> None:
    pytest.importorskip("numba")
    a, b, score = matches(n=50)
    with pytest.raises(ValueError, match="smaller K or the numpy fallback"):
        elo_kernel.elo_orderings(a, b, score, 5, 1000.0, 16, seed=0, initial=1000.0, compiled=True)
    slow = elo_kernel.elo_orderings(a, b, score, 5, 1000.0, 16, seed=0, initial=1000.0, compiled=False)
    chosen = elo_kernel.elo_orderings(a, b, score, 5, 1000.0, 16, seed=0, initial=1000.0)  # falls back
    np.testing.assert_array_equal(chosen, slow)
