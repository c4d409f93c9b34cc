"""Active scheduling: which pairs to judge next so that a budget buys the most ranking certainty,
and a stopping rule that stays valid however often it is looked at.

Design (after Chatbot Arena's active sampling, which draws pairs in proportion to the reduction in
confidence-interval width one more vote buys): the current Bradley-Terry fit, with `prior` virtual
ties per pair, gives every pair of models a probability of being in the wrong order (a normal
approximation with the fit's covariance). One more judgment of pair (a, b) shrinks the standard
error of every model difference through the Fisher information (a rank-one update). Pair (a, b)'s
weight is the sum over the adjacent pairs of the current ranking of their odds of being the wrong
way round times the relative shrinkage of their standard error: judgments go where they settle
the comparisons the exact ranking still hangs on, directly or through a common opponent. Batches
are drawn in proportion to the weights, mixed with a uniform share (`explore`) so that no pair is
starved while the fit is still wrong.

Stopping rule (`alpha`): for each pair of models, two test supermartingales (one per direction)
bet on the direct comparisons between them (scores 1, 0.5, 0): under "a does not score above 1/2
against b" the capital of the bet on a is a nonnegative supermartingale whatever the schedule,
so by Ville's inequality it ever reaches 1/level with probability at most `level`
(Waudby-Smith & Ramdas 2023, predictable plug-in bets). With level alpha / (2 x pairs), the chance
that any order is ever certified wrongly is at most alpha, at every look and under adaptive
sampling, provided each judgment of a pair is a fresh draw (a random prompt and slot order). The
run stops when every adjacent pair of the current ranking is certified. Only direct comparisons
count, so it is conservative: on close models it does not fire and the budget ends the run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import ndtr

from arena.bt_fit import fit_bradley_terry

LAMBDA_MAX = 1.0
"""Largest bet: the capital can lose at most half per judgment."""


def win_matrix(a: np.ndarray, b: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """wins[i, j]: how much i scored against j over all matches (in either slot)."""
    wins = np.bincount(a * k + b, weights=score, minlength=k * k)
    wins += np.bincount(b * k + a, weights=1 - score, minlength=k * k)
    return wins.reshape(k, k)


class Design:
    """The pair weights of the current fit; pairs are indexed as in `pairs` (i < j)."""

    def __init__(self, k: int, prior: float = 2.0, explore: float = 0.1) -> None:
        self.k, self.prior, self.explore = k, prior, explore
        self.pairs = np.array(list(itertools.combinations(range(k), 2)), dtype=np.int64).reshape(-1, 2)
        self.diffs = np.zeros((len(self.pairs), k))
        self.diffs[np.arange(len(self.pairs)), self.pairs[:, 0]] = 1.0
        self.diffs[np.arange(len(self.pairs)), self.pairs[:, 1]] = -1.0
        self._last: tuple[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    def fit(self, wins: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(strengths, their covariance, Fisher information of one judgment per pair); the last
        result is kept, as the ranking and the weights of one step read the same fit."""
        key = wins.tobytes()
        if self._last is None or self._last[0] != key:
            self._last = (key, self._fit(wins))
        return self._last[1]

    def _fit(self, wins: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        wins = wins + self.prior / 2 * (1 - np.eye(self.k))
        theta = fit_bradley_terry(wins)
        p = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))
        info = (wins + wins.T) * p * (1 - p)
        covariance = np.linalg.pinv(np.diag(info.sum(1)) - info)  # the null space is a common shift
        i, j = self.pairs.T
        return theta, covariance, p[i, j] * (1 - p[i, j])

    def swap_probabilities(self, theta: np.ndarray, covariance: np.ndarray) -> np.ndarray:
        """Per pair, the probability that its true order is the other one than the fit's."""
        variance = np.einsum("pk,kl,pl->p", self.diffs, covariance, self.diffs)
        return ndtr(-np.abs(self.diffs @ theta) / np.sqrt(np.maximum(variance, 1e-12)))

    def weights(self, wins: np.ndarray) -> np.ndarray:
        """Per pair, what one judgment of it buys: the relative shrinkage of the standard error of
        each adjacent comparison of the current ranking, weighted by that comparison's odds of
        being the wrong way round (the exact ranking is right when every adjacent one is)."""
        theta, covariance, info = self.fit(wins)
        cross = self.diffs @ covariance @ self.diffs.T  # cov of pair differences
        variance = np.maximum(np.diag(cross), 1e-12)
        reduction = info[None, :] * cross**2 / (1 + info * variance)[None, :]  # [compared, judged]
        shrink = 1 - np.sqrt(np.maximum(variance[:, None] - reduction, 1e-12) / variance[:, None])
        rank = np.empty(self.k, dtype=np.int64)
        rank[np.argsort(-theta, kind="stable")] = np.arange(self.k)
        adjacent = np.abs(rank[self.pairs[:, 0]] - rank[self.pairs[:, 1]]) == 1
        swap = self.swap_probabilities(theta, covariance)
        return (adjacent * swap / np.maximum(1 - swap, 1e-9)) @ shrink

    def probabilities(self, wins: np.ndarray, available: np.ndarray | None = None) -> np.ndarray:
        """How likely each pair is drawn next: the weights mixed with `explore` uniform, over the
        `available` pairs (all by default)."""
        available = np.ones(len(self.pairs), bool) if available is None else available
        weights = np.where(available, self.weights(wins), 0.0)
        uniform = available / max(available.sum(), 1)
        total = weights.sum()
        mix = (1 - self.explore) * weights / total + self.explore * uniform if total > 0 else uniform
        return mix / mix.sum()


class PairEvidence:
    """Anytime-valid evidence on which of two models scores above 1/2 against the other.

    `log_capital[0]` bets that the first model does, `[1]` that the second does; each bet's size is
    a predictable plug-in (the running mean and variance before the judgment), clipped to
    [0, LAMBDA_MAX], so the capital is a test supermartingale under its null."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.squares = 0.0
        self.log_capital = np.zeros(2)

    def add(self, score: float) -> None:
        """One direct comparison: the first model's score (1 win, 0.5 tie, 0 loss)."""
        mean = (self.total + 0.5) / (self.n + 1)  # shrunk to 1/2 so the first bets are small
        variance = max((self.squares + 0.25) / (self.n + 1) - mean**2, 0.0) + 0.01
        edge = mean - 0.5
        for side, (x, e) in enumerate(((score, edge), (1 - score, -edge))):
            bet = min(max(e / (variance + e * e), 0.0), LAMBDA_MAX)
            self.log_capital[side] += math.log1p(bet * (x - 0.5))
        self.n += 1
        self.total += score
        self.squares += score * score


class ListPool:
    """The candidate matches of a run, by pair, taken in a seeded random order; each at most once."""

    def __init__(self, candidates: Sequence[Any], index: dict[str, int], rng: np.random.Generator) -> None:
        self.matches: dict[tuple[int, int], list[Any]] = {}
        for match in candidates:
            i, j = index[match.model_1], index[match.model_2]
            self.matches.setdefault((min(i, j), max(i, j)), []).append(match)
        for matches in self.matches.values():
            rng.shuffle(matches)

    def left(self, pair: tuple[int, int]) -> int:
        return len(self.matches.get(pair, ()))

    def take(self, pair: tuple[int, int]) -> Any:
        return self.matches[pair].pop()


class ActiveScheduler:
    """Picks the next matches from a pool of candidates (see the module's docstring).

    After a warm-up (`warmup` matches per pair), each batch of `batch` pairs is drawn from
    :meth:`Design.probabilities` over the pairs with a candidate left. With `alpha` set, the run
    stops once every adjacent pair of the current ranking is certified (see :class:`PairEvidence`);
    `separated` says so. Without `alpha`, it runs until the pool or the caller's budget ends."""

    def __init__(
        self,
        models: Sequence[str],
        candidates: Sequence[Any],
        *,
        pool: Any | None = None,
        batch: int = 32,
        warmup: int = 2,
        prior: float = 2.0,
        explore: float = 0.1,
        alpha: float | None = 0.05,
        seed: int = 0,
    ) -> None:
        self.models = list(models)
        self.index = {m: i for i, m in enumerate(self.models)}
        self.design = Design(len(self.models), prior, explore)
        self.batch, self.warmup, self.alpha = batch, warmup, alpha
        self.rng = np.random.default_rng(seed)
        self.pool = pool if pool is not None else ListPool(candidates, self.index, self.rng)
        """Anything with `left(pair)` and `take(pair)`; pairs are (i, j) model indices, i < j."""
        self.pairs = [tuple(p) for p in self.design.pairs.tolist()]
        self.wins = np.zeros((len(self.models), len(self.models)))
        self.evidence = {pair: PairEvidence() for pair in self.pairs}
        self.separated = False

    def _pair(self, model_1: str, model_2: str) -> tuple[int, int]:
        i, j = self.index[model_1], self.index[model_2]
        return (i, j) if i < j else (j, i)

    def record(self, model_1: str, model_2: str, score: float | None) -> None:
        """A judged match: slot 1's score (1 win, 0 loss, 0.5 tie); None for unreadable ones."""
        if score is None:
            return
        i, j = self.index[model_1], self.index[model_2]
        self.wins[i, j] += score
        self.wins[j, i] += 1 - score
        self.evidence[self._pair(model_1, model_2)].add(score if i < j else 1 - score)

    def order(self) -> list[str]:
        """Models best first by the current fit."""
        theta = self.design.fit(self.wins)[0]
        return [self.models[i] for i in np.argsort(-theta, kind="stable")]

    def certified(self) -> bool:
        """Whether every adjacent pair of the current ranking is certified at level alpha."""
        if self.alpha is None:
            return False
        threshold = math.log(2 * len(self.evidence) / self.alpha)
        order = [self.index[m] for m in self.order()]
        for hi, lo in itertools.pairwise(order):
            side = 0 if hi < lo else 1
            if self.evidence[(min(hi, lo), max(hi, lo))].log_capital[side] < threshold:
                return False
        return True

    def next_batch(self) -> list[Any]:
        if self.separated:
            return []
        judged = self.wins + self.wins.T
        warm = [p for p in self.pairs if self.pool.left(p) and judged[p] < self.warmup]
        if warm:
            return [self.pool.take(p) for p in warm for _ in range(min(self.pool.left(p), self.warmup))]
        if self.certified():
            self.separated = True
            return []
        available = np.array([self.pool.left(p) > 0 for p in self.pairs])
        if not available.any():
            return []
        chances = self.design.probabilities(self.wins, available)
        batch = []
        for index in self.rng.choice(len(self.pairs), size=self.batch, p=chances):
            if self.pool.left(self.pairs[index]):
                batch.append(self.pool.take(self.pairs[index]))
        return batch
