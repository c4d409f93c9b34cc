"""Bradley-Terry maximum likelihood for many weightings of the same matches at once.

A bootstrap refits Bradley-Terry on each redrawn weighting of the match kinds. Fitting them one at
a time costs a Python loop of small linear-algebra calls per round and Newton step, which dominates
with a hundred models (and multi-threaded BLAS on tiny matrices only adds contention). Here all
rounds advance together: one batched win-matrix product and one batched solve per Newton step.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

BT_L2 = 1e-3
"""Weak Gaussian prior on log-strengths: keeps a model that won (or lost) every match finite."""

ELO_SCALE = 400.0 / math.log(10.0)
"""Natural-log strength to Elo points: P(i beats j) = 1 / (1 + 10 ** ((R_j - R_i) / 400))."""

ROUNDS_AT_ONCE = 32
"""Weightings fitted together: bounds the (rounds, models, models) work arrays."""


def fit_bradley_terry(wins: np.ndarray, l2: float = BT_L2, tol: float = 1e-10) -> np.ndarray:
    """Natural-log strengths maximising sum_ij wins[i, j] * log sigmoid(theta_i - theta_j) - l2 |theta|^2.

    Newton's method: the penalised log-likelihood is strictly concave, so it converges in a few
    steps from zero. With `l2=0` the mean strength is not identified and stays at zero."""
    return fit_many(wins[None], l2, tol)[0]


def fit_many(wins: np.ndarray, l2: float = BT_L2, tol: float = 1e-10) -> np.ndarray:
    """`fit_bradley_terry` for a stack of win matrices (rounds, models, models): (rounds, models).

    Each Newton step solves H step = gradient for every round in one batched call. With l2 > 0, H
    is positive definite; without a prior its null space is the common shift of all strengths, which
    a rank-one term removes so that steps keep the mean at zero (the least-norm step). Where that is
    still singular (models in separate groups that never met) it falls back to least squares.
    Callers fitting many rounds hold BLAS to one thread: on matrices this small its threads only
    wait on each other (a 100-model solve took 200x longer with them on a busy 2-core machine)."""
    played = wins + wins.transpose(0, 2, 1)
    rounds, m, _ = wins.shape
    theta = np.zeros((rounds, m))
    shift = 0.0 if l2 > 0 else 1.0 / m
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(theta[:, None, :] - theta[:, :, None]))  # P(i beats j)
        grad = (wins - played * p).sum(axis=2) - 2 * l2 * theta
        w = played * p * (1 - p)
        hessian = shift - w
        hessian[:, np.arange(m), np.arange(m)] += w.sum(axis=2) + 2 * l2
        try:
            step = np.linalg.solve(hessian, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            hessian -= shift
            step = np.stack(
                [np.linalg.lstsq(h, g, rcond=None)[0] for h, g in zip(hessian, grad, strict=True)]
            )
        theta += np.clip(step, -4.0, 4.0)  # clipped steps cannot overshoot far
        if np.abs(step).max() < tol:
            break
    return theta


def bt_elo_rounds(
    kinds: np.ndarray, counts: np.ndarray, n_models: int, anchor_index: int | None, bar: object = None
) -> np.ndarray:
    """Elo-scale Bradley-Terry ratings for each row of `counts` (how often each kind of match was
    played in that round): (rounds, models). Column c of `kinds` is kind c's (slot-1 model, slot-2
    model, 2 x slot-1 score). Ratings are shifted so that their mean, or `anchor_index`, is 1000."""
    half = kinds[2] / 2.0
    to_cells = sparse.csr_matrix(  # kind -> its share of wins in the (winner, loser) cells
        (np.concatenate([half, 1.0 - half]),
         (np.tile(np.arange(kinds.shape[1]), 2),
          np.concatenate([kinds[0] * n_models + kinds[1], kinds[1] * n_models + kinds[0]]))),
        shape=(kinds.shape[1], n_models * n_models),
    )  # fmt: skip
    out = np.empty((len(counts), n_models))
    with threadpool_limits(1, user_api="blas"):  # see `fit_many`
        for first in range(0, len(counts), ROUNDS_AT_ONCE):
            block = np.atleast_2d(counts[first : first + ROUNDS_AT_ONCE])
            wins = np.asarray((to_cells.T @ block.T).T).reshape(-1, n_models, n_models)
            theta = fit_many(wins) * ELO_SCALE
            ref = theta[:, [anchor_index]] if anchor_index is not None else theta.mean(axis=1, keepdims=True)
            out[first : first + len(block)] = theta - ref + 1000.0
            if bar is not None:
                bar.update(len(block))
    return out
