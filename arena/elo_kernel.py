"""Elo over many random orderings: a compiled kernel (numba) and a pure-numpy fallback, same numbers.

The QLoRA paper's Elo is the mean of online Elo over thousands of random orders of the matches.
The kernel shuffles each ordering in place (forward Fisher-Yates) while it plays it, so a position
is played soon after the shuffle fixes it and nothing but one copy of the match codes per ordering
in play (`LANES` per thread) is ever held: memory does not grow with the number of orderings, and
orderings are split across cores (numba's ``prange``). The random draws come from a counter-based
generator (SplitMix64, one stream per ordering derived from the seed and the ordering's index), so an
ordering's matches do not depend on how many threads ran or which chunk it fell in, and the numpy
fallback, which advances all orderings of a chunk together one match position at a time,
reproduces the very same orders. The kernel plays them on strengths with an exact series for the
exponential (see `_play_kernel`); the fallback on ratings with numpy's `exp`: the two agree to about
1e-11 Elo points.

The swap position is ``i + (high 32 bits of the draw x (n - i)) >> 32`` (Lemire's multiply):
a bias below (n - i) / 2**32, under 1e-5 for the 40,000 matches of the OA release.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from typing import Any

import numpy as np

numba: Any = None
"""The numba module once `_compiled_kernel` has imported it (lazily: it takes half a second)."""

GAMMA = np.uint64(0x9E3779B97F4A7C15)
"""SplitMix64's increment (2**64 over the golden ratio)."""
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)

CHUNK_BYTES = 128 * 2**20
"""Shuffled match codes the numpy fallback holds at a time (its table is matches x orderings)."""

KERNEL_BLOCK = 1024
"""Orderings per kernel call: the progress bar moves between calls; memory is `LANES` copies of the
codes per thread whatever the block."""


def mix64(z: Any) -> Any:
    """SplitMix64's finaliser: a well-mixed 64-bit output from a counter (uint64 scalar or array)."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


def ordering_streams(seed: int, first: int, count: int) -> np.ndarray:
    """The generator state of orderings first..first+count-1 under `seed`: one uint64 each."""
    key = mix64(np.array([seed & (2**64 - 1)], dtype=np.uint64))
    index = np.arange(first, first + count, dtype=np.uint64)
    return mix64(key + mix64(index + GAMMA))


def elo_orderings(
    a: np.ndarray,
    b: np.ndarray,
    score: np.ndarray,
    n_models: int,
    k: float,
    orderings: int,
    seed: int,
    initial: float,
    progress: bool = False,
    compiled: bool | None = None,
) -> np.ndarray:
    """Final online-Elo ratings of each of `orderings` seeded random orders: shape (orderings, models).

    `compiled=None` uses the numba kernel when numba is installed and K is in its reach (up to
    694), else the numpy fallback; True/False force one (True raises without numba or beyond that
    K). Both give the same numbers."""
    from tqdm.auto import tqdm

    largest_step = abs(k) * math.log(10.0) / 400.0
    if compiled is None:
        in_reach = squarings_for(largest_step) <= MAX_SQUARINGS
        compiled = in_reach and importlib.util.find_spec("numba") is not None
    kernel = _compiled_kernel() if compiled else None
    reduction = exp_reduction(largest_step) if compiled else (1.0, 0)
    kinds, codes = match_codes(a, b, score)
    # unsigned for the kernel: it then skips Python's negative-index wraparound on every lookup
    slot_a, slot_b = kinds[:2].astype(np.uint32 if compiled else np.intp)
    n = len(codes)
    block = KERNEL_BLOCK if compiled else max(1, min(orderings, CHUNK_BYTES // (codes.itemsize * max(n, 1))))
    out = np.empty((orderings, n_models))
    with tqdm(total=orderings, unit="ordering", desc="elo", disable=not progress) as bar:
        for first in range(0, orderings, block):
            size = min(block, orderings - first)
            if compiled:
                padded = -(-size // LANES) * LANES  # whole groups of lanes; the extra ones are dropped
                rows = np.empty((padded, n_models))
                streams = ordering_streams(seed, first, padded)
                kernel(
                    codes,
                    slot_a,
                    slot_b,
                    kinds[2] / 2.0,
                    streams,
                    SERIES,
                    float(k),
                    *reduction,
                    float(initial),
                    rows,
                )
                out[first : first + size] = rows[:size]
            else:
                table = shuffled(codes, ordering_streams(seed, first, size))
                out[first : first + size] = play_table(
                    table, slot_a, slot_b, kinds[2] * (k / 2.0), n_models, k, initial
                )
            bar.update(size)
    return out


def match_codes(a: np.ndarray, b: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each match as a one-byte code (two bytes past 255 kinds) of its kind, plus the kinds: a
    (3, kinds) array of slot-1 model, slot-2 model and twice slot 1's score, in lexicographic order.

    A kind is the integer (a x models + b) x 3 + 2 x score; with up to a few thousand models the
    codes come from counting those integers (no sort of the matches), beyond from `np.unique`."""
    models = int(max(a.max(initial=0), b.max(initial=0))) + 1
    key = (a.astype(np.int64) * models + b) * 3 + np.rint(2 * score).astype(np.int64)
    if 3 * models * models <= 2**25:
        present = np.bincount(key, minlength=3 * models * models) > 0
        kind_keys = np.flatnonzero(present)
        codes = (np.cumsum(present) - 1)[key]
    else:
        kind_keys, codes = np.unique(key, return_inverse=True)
    pair, twice_score = np.divmod(kind_keys, 3)
    kinds = np.stack([pair // models, pair % models, twice_score]).astype(a.dtype)
    return kinds, codes.ravel().astype(np.uint8 if kinds.shape[1] <= 256 else np.uint16)


def shuffled(values: np.ndarray, streams: np.ndarray) -> np.ndarray:
    """A (len(values) x len(streams)) table whose column c is `values` shuffled by stream c: the
    order in which the kernel plays them. Row i is position i after Fisher-Yates step i."""
    n, columns = len(values), np.arange(len(streams))
    table = np.repeat(values[:, None], len(streams), axis=1)
    state = streams.copy()
    for i in range(n - 1):
        state += GAMMA
        draw = mix64(state)
        j = i + ((draw >> _S32) * np.uint64(n - i) >> _S32).astype(np.intp)
        here = table[i].copy()
        table[i] = table[j, columns]
        table[j, columns] = here
    return table


def play_table(
    table: np.ndarray,
    slot_a: np.ndarray,
    slot_b: np.ndarray,
    k_score: np.ndarray,
    n_models: int,
    k: float,
    initial: float,
) -> np.ndarray:
    """Final Elo of every ordering (column) of a table of match codes: shape (orderings, models).

    All orderings advance together, so the Python loop runs once per match position and each step
    is a dozen numpy operations across orderings. Code c is a match of `slot_a[c]` against
    `slot_b[c]` worth `k_score[c]` (k times slot 1's score) to slot 1."""
    size = table.shape[1]
    ratings = np.full(size * n_models, float(initial))
    offset = np.arange(size, dtype=np.intp) * n_models
    ia, ib = np.empty(size, np.intp), np.empty(size, np.intp)
    expected, delta = np.empty(size), np.empty(size)
    scale = math.log(10.0) / 400.0
    for code in table:
        np.take(slot_a, code, out=ia)
        ia += offset
        np.take(slot_b, code, out=ib)
        ib += offset
        ra, rb = ratings[ia], ratings[ib]
        np.subtract(rb, ra, out=expected)
        expected *= scale
        np.exp(expected, out=expected)
        expected += 1.0
        np.divide(k, expected, out=expected)  # k times slot 1's expected score
        np.take(k_score, code, out=delta)
        delta -= expected
        ratings[ia] = ra + delta
        ratings[ib] = rb - delta
    return ratings.reshape(size, n_models)


LANES = 16
"""Orderings one thread plays side by side. An ordering's steps form a chain (each waits on the
ratings the previous one wrote), so a thread keeps many independent chains in flight, and their
arithmetic runs in the CPU's vector units, `LANES` orderings per pass."""

SHUFFLE_AHEAD = 64
"""Match positions each lane shuffles before the lanes play them: the shuffle does not depend on
the ratings, so it runs as a tight loop of its own, and the positions it fixes are still in the
L1 cache when they are played."""

EXP_SERIES_MAX = 0.25
"""|x| up to which `_exp_pair`'s series is exact to double precision (the first omitted term,
x**13 / 13!, is below 3e-18). Larger steps (K above 43) are shrunk by a power of two first and
the result squared back (see `exp_reduction`)."""

MAX_SQUARINGS = 4
"""Squarings `_exp_pair` can undo: steps up to 16 x `EXP_SERIES_MAX`, that is K up to 694."""


SERIES = np.array([1.0 / math.factorial(n) for n in (2, 4, 6, 8, 10, 12, 3, 5, 7, 9, 11)])
"""`_exp_pair`'s coefficients 1/n!, even powers then odd, as reciprocals (the compiled code multiplies by
them: a division by a constant stays a division, which costs as much as the rest of the series) and
in an array the kernel is handed (constants of its own are each loaded from a 64-bit address)."""


def squarings_for(largest: float) -> int:
    """How many halvings bring every |x| up to `largest` into the series' range (the kernel reaches
    K only where this is at most `MAX_SQUARINGS`)."""
    return max(0, math.ceil(math.log2(largest / EXP_SERIES_MAX))) if largest > 0 else 0


def exp_reduction(largest: float) -> tuple[float, int]:
    """The factor (a power of two, so multiplying by it is exact) that brings every |x| up to
    `largest` into the series' range, and how many squarings undo it."""
    squarings = squarings_for(largest)
    if squarings > MAX_SQUARINGS:
        raise ValueError(
            f"Elo steps up to {largest:.2f} need {squarings} squarings, the kernel undoes {MAX_SQUARINGS}: "
            "use a smaller K or the numpy fallback (compiled=False)"
        )
    return 0.5**squarings, squarings


def _exp_pair(x: float, c: np.ndarray, shrink: float, squarings: int) -> tuple[float, float]:
    """exp(x) and exp(-x) from the even and odd halves of the Taylor series of x x `shrink` (see
    `exp_reduction`; coefficients `c`: `SERIES`), squared back `squarings` times: a dozen multiply-adds
    instead of two library calls, and no branch, so the lanes' loop is vectorised."""
    y = x * shrink
    y2 = y * y
    even = 1.0 + y2 * (c[0] + y2 * (c[1] + y2 * (c[2] + y2 * (c[3] + y2 * (c[4] + y2 * c[5])))))
    odd = y * (1.0 + y2 * (c[6] + y2 * (c[7] + y2 * (c[8] + y2 * (c[9] + y2 * c[10])))))
    up, down = even + odd, even - odd
    for step in range(MAX_SQUARINGS):  # a constant trip count: unrolled into selects when compiled
        if step < squarings:
            up, down = up * up, down * down
    return up, down


def _play_kernel(
    codes: np.ndarray,
    slot_a: np.ndarray,
    slot_b: np.ndarray,
    score: np.ndarray,
    streams: np.ndarray,
    series: np.ndarray,
    k: float,
    shrink: float,
    squarings: int,
    initial: float,
    out: np.ndarray,
) -> None:
    """Shuffle-and-play each ordering in place (numba compiles this; see the module docstring).

    The same orders as `shuffled`, played as `play_table` does but on strengths q = 10**((rating -
    initial) / 400): slot 1's expected score is q_a / (q_a + q_b) and an update multiplies q_a and
    divides q_b by 10**(delta / 400), so a step costs one division and `_exp_pair`.

    Threads take groups of `LANES` orderings (len(streams) is a multiple). A group advances in
    blocks of `SHUFFLE_AHEAD` positions: each lane first fixes the block's positions by Fisher-Yates
    (the matches, not yet the ratings), then all lanes play the block a position at a time in
    three passes: look the two strengths up (scalar loads), compute the new pair (a loop of pure
    arithmetic over the lanes, which the compiler turns into vector instructions), write them back."""
    n, n_models = codes.shape[0], out.shape[1]
    k_scale = k * math.log(10.0) / 400.0
    for group in numba.prange(streams.shape[0] // LANES):
        first = group * LANES
        work = np.empty((LANES, n), codes.dtype)
        for lane in range(LANES):
            work[lane] = codes
        played = np.empty((SHUFFLE_AHEAD, LANES), codes.dtype)
        strength = np.ones(LANES * n_models)
        where_a, where_b = np.empty(LANES, np.uint32), np.empty(LANES, np.uint32)
        qa, qb, s = np.empty(LANES), np.empty(LANES), np.empty(LANES)
        state = streams[first : first + LANES].copy()
        for start in range(0, n, SHUFFLE_AHEAD):
            block = min(SHUFFLE_AHEAD, n - start)
            for lane in range(LANES):
                row, draw = work[lane], state[lane]
                for step in range(block):
                    i = np.uint64(start + step)
                    draw += GAMMA
                    j = i + (((_mix64_jit(draw) >> _S32) * (np.uint64(n) - i)) >> _S32)
                    played[step, lane] = row[j]
                    row[j] = row[i]
                state[lane] = draw
            for step in range(block):
                for lane in range(LANES):
                    code = played[step, lane]
                    base = np.uint32(lane * n_models)
                    where_a[lane], where_b[lane] = base + slot_a[code], base + slot_b[code]
                    qa[lane], qb[lane], s[lane] = (
                        strength[where_a[lane]],
                        strength[where_b[lane]],
                        score[code],
                    )
                for lane in range(LANES):
                    step_size = k_scale * (s[lane] - qa[lane] / (qa[lane] + qb[lane]))
                    up, down = _exp_pair_jit(step_size, series, shrink, squarings)
                    qa[lane], qb[lane] = qa[lane] * up, qb[lane] * down
                for lane in range(LANES):
                    strength[where_a[lane]], strength[where_b[lane]] = qa[lane], qb[lane]
        for lane in range(LANES):
            for model in range(n_models):
                out[first + lane, model] = initial + 400.0 * math.log10(strength[lane * n_models + model])


_KERNELS: dict[str, Callable[..., Any]] = {}
_mix64_jit: Callable[[Any], Any] = mix64  # replaced by their compiled versions in `_compiled_kernel`
_exp_pair_jit: Callable[..., tuple[float, float]] = _exp_pair


def _compiled_kernel() -> Callable[..., None]:
    """`_play_kernel` compiled by numba (on first use; numba caches the machine code on disk)."""
    global numba
    if "play" not in _KERNELS:
        try:
            import numba
        except ImportError as error:
            raise RuntimeError("the compiled Elo kernel needs numba: pip install numba") from error
        global _mix64_jit, _exp_pair_jit  # the kernel finds its helpers as module globals
        _mix64_jit = numba.njit(cache=True)(mix64)
        # error_model="numpy": no zero-division check (and its branch) around every division
        exact = {"cache": True, "fastmath": {"contract"}, "error_model": "numpy"}
        _exp_pair_jit = numba.njit(inline="always", **exact)(_exp_pair)
        _KERNELS["play"] = numba.njit(parallel=True, nogil=True, **exact)(_play_kernel)
    return _KERNELS["play"]
