"""Batched Bradley-Terry: every weighting fitted together gives each one's own maximum."""

from __future__ import annotations

import numpy as np
import pytest

from arena import bt_fit


def gradient(wins: np.ndarray, theta: np.ndarray, l2: float) -> np.ndarray:
    p = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))
    return (wins - (wins + wins.T) * p).sum(axis=1) - 2 * l2 * theta


@pytest.mark.parametrize("l2", [bt_fit.BT_L2, 0.0])
def test_a_stack_of_win_matrices_fits_each_to_its_own_maximum(l2: float) -> None:
    rng = np.random.default_rng(0)
    wins = rng.poisson(5.0, size=(6, 8, 8)).astype(float)
    wins[:, np.arange(8), np.arange(8)] = 0.0
    stacked = bt_fit.fit_many(wins, l2)
    for one, theta in zip(wins, stacked, strict=True):
        np.testing.assert_allclose(gradient(one, theta, l2), 0.0, atol=1e-8)
        np.testing.assert_allclose(bt_fit.fit_bradley_terry(one, l2), theta, atol=1e-9)
    if l2 == 0.0:
        np.testing.assert_allclose(stacked.mean(axis=1), 0.0, atol=1e-9)  # the free shift stays at zero


def test_groups_that_never_met_still_fit_without_a_prior() -> None:
    wins = np.zeros((4, 4))
    wins[0, 1], wins[1, 0], wins[2, 3], wins[3, 2] = 3.0, 1.0, 1.0, 2.0  # {0, 1} and {2, 3} apart
    theta = bt_fit.fit_bradley_terry(wins, l2=0.0)
    assert theta[0] - theta[1] == pytest.approx(np.log(3.0), abs=1e-9)
    assert theta[3] - theta[2] == pytest.approx(np.log(2.0), abs=1e-9)
