"""Strict, honest verdict parsing.

The verdict is read only where the template puts it: the last line (QLoRA three-class), the last
[[X]] label (MT-bench), the first-line score pair (relative), the last [[N]] rating (single). Before
reading, every stretch of the judge's output that copies one of the judged answers is masked, so an
answer that plants "[[A]]" or a fake last line "1" cannot decide its own match even when the judge
quotes it. Anything that does not read cleanly is `unparsed`, with the raw output kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from judges.templates import AB_LABEL, ANSWER_IS, RATING, SCORE_PAIR, THREECLASS

ECHO_MIN_CHARS = 12
"""A copied stretch this long (or a whole answer of at least MIN_WHOLE_ANSWER chars) is masked."""
MIN_WHOLE_ANSWER = 5
MASK = "\u2588"

_THREECLASS = re.compile(r"^[\s*_`#>]*(?:verdict\s*[:：]\s*)?([123])[\s.*_`]*$", re.IGNORECASE)
_NUMBER = r"(10(?:\.0+)?|[0-9](?:\.\d+)?)"
_SCORE_PAIR = re.compile(rf"^[\s*_`(\[]*{_NUMBER}\s*(?:,|\s|/)\s*{_NUMBER}[\s*_`)\].]*$")
_DIGIT = re.compile(r"(?<!\d)(?<!\d\.)[123](?!\d)(?!\.\d)")
_LABEL = re.compile(r"\[\[([ABC])\]\]")
_RATING = re.compile(r"\[\[" + _NUMBER + r"\]\]")

THREECLASS_VERDICT = {"1": "1", "2": "2", "3": "tie"}
LABEL_VERDICT = {"A": "1", "B": "2", "C": "tie"}


@dataclass(frozen=True)
class Parsed:
    """A read verdict: `verdict` for pairwise formats, `score1`/`score2` for scores (verdict derived)."""

    status: str
    verdict: str | None = None
    score1: float | None = None
    score2: float | None = None
    reason: str = ""


def unparsed(reason: str) -> Parsed:
    return Parsed(status="unparsed", reason=reason)


def mask_echoes(output: str, answers: Sequence[str]) -> str:
    """The output with every character inside a stretch copied from an answer replaced by MASK.

    A stretch counts as copied when an ECHO_MIN_CHARS-long window of it occurs in an answer, or it
    is a whole (short) answer; newlines are kept so line structure survives."""
    covered = bytearray(len(output))
    grams: set[str] = set()
    for answer in answers:
        grams.update(answer[i : i + ECHO_MIN_CHARS] for i in range(len(answer) - ECHO_MIN_CHARS + 1))
        if MIN_WHOLE_ANSWER <= len(answer.strip()) < ECHO_MIN_CHARS:
            for match in re.finditer(re.escape(answer.strip()), output):
                covered[match.start() : match.end()] = b"\x01" * (match.end() - match.start())
    for i in range(len(output) - ECHO_MIN_CHARS + 1):
        if output[i : i + ECHO_MIN_CHARS] in grams:
            covered[i : i + ECHO_MIN_CHARS] = b"\x01" * ECHO_MIN_CHARS
    return "".join(MASK if flag and ch != "\n" else ch for ch, flag in zip(output, covered, strict=True))


def parse(output: str, fmt: str, answers: Sequence[str] = ()) -> Parsed:
    """Read the verdict of one judge output in format `fmt`, ignoring text copied from `answers`."""
    text = mask_echoes(output, answers)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return unparsed("empty output")
    if fmt == THREECLASS:
        return _threeclass(lines[-1])
    if fmt == SCORE_PAIR:
        return _score_pair(lines[0])
    if fmt == ANSWER_IS:
        return _answer_is(lines[0])
    if fmt == AB_LABEL:
        labels = _LABEL.findall(text)
        if not labels:
            return unparsed("no [[A]]/[[B]]/[[C]] label outside the quoted answers")
        return Parsed(status="ok", verdict=LABEL_VERDICT[labels[-1]])
    if fmt == RATING:
        ratings = _RATING.findall(text)
        if not ratings:
            return unparsed("no [[N]] rating outside the quoted answer")
        return Parsed(status="ok", score1=float(ratings[-1]))
    raise ValueError(f"unknown output format {fmt!r}")


def _threeclass(last: str) -> Parsed:
    if MASK in last:
        return unparsed("the last line quotes an answer")
    match = _THREECLASS.match(last)
    if not match:
        return unparsed(f"last line {last[:60]!r} is not 1, 2 or 3")
    return Parsed(status="ok", verdict=THREECLASS_VERDICT[match.group(1)])


def _answer_is(first: str) -> Parsed:
    if MASK in first:
        return unparsed("the first line quotes an answer")
    digits = set(_DIGIT.findall(first))
    if len(digits) != 1:
        return unparsed(f"first line {first[:60]!r} does not name exactly one of 1, 2, 3")
    return Parsed(status="ok", verdict=THREECLASS_VERDICT[digits.pop()])


def _score_pair(first: str) -> Parsed:
    if MASK in first:
        return unparsed("the first line quotes an answer")
    match = _SCORE_PAIR.match(first)
    if not match:
        return unparsed(f"first line {first[:60]!r} is not two scores")
    return scored(float(match.group(1)), float(match.group(2)))


def scored(score1: float, score2: float) -> Parsed:
    """A score pair with its derived verdict: the higher score wins, equal scores tie."""
    verdict = "1" if score1 > score2 else "2" if score2 > score1 else "tie"
    return Parsed(status="ok", verdict=verdict, score1=score1, score2=score2)


REPAIR_PROMPTS = {
    THREECLASS: "Your reply must end with a line containing only 1, 2 or 3. Reply with that number only.",
    SCORE_PAIR: "Reply with only one line: the two scores (1-10) for Assistant 1 and Assistant 2, separated by a space.",
    AB_LABEL: 'Reply with only your final verdict: "[[A]]", "[[B]]" or "[[C]]".',
    ANSWER_IS: "Reply with one digit only: 1, 2 or 3.",
    RATING: 'Reply with only your rating in the format "[[N]]", N from 1 to 10.',
}
"""The one follow-up sent (with `--repair`) when a verdict cannot be read."""
