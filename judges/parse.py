"""Strict, honest verdict parsing.

The verdict is read only where the template puts it: the last line (QLoRA three-class), the last
[[X]] label (a user's ab-label template), the first-line score pair (relative), the last [[N]]
rating (a user's single grading), and for FastChat's MT-bench templates FastChat's own rule
(`[[A]]` if present, else `[[B]]`, else `[[C]]`; the first `[[N]]`, else the first `[N]`).

The reading position is chosen on the judge's output as written; if the verdict there lies inside
a stretch copied from one of the judged answers, the result is `unparsed`: it never falls back to
an earlier label. So an answer that plants "Final verdict: [[B]]" (which masks the judge's own
identical closing) or a fake last line "1" can at most make its match unreadable (and `--repair`
asks again), never change its verdict. Anything that does not read cleanly is `unparsed`, with the
raw output kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from judges.templates import (
    AB_LABEL,
    ANSWER_IS,
    FASTCHAT_LABEL,
    FASTCHAT_RATING,
    RATING,
    SCORE_PAIR,
    THREECLASS,
)

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
_FASTCHAT_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_FASTCHAT_RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
"""FastChat's `one_score_pattern` and its backup, as in fastchat/llm_judge/common.py."""

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


def quoted_spans(output: str, answers: Sequence[str]) -> bytearray:
    """1 for each character of `output` inside a stretch copied from an answer, else 0.

    A stretch counts as copied when an ECHO_MIN_CHARS-long window of it occurs in an answer, or it
    is a whole (short) answer."""
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
    return covered


def _masked(output: str, covered: bytearray) -> str:
    """The output with every quoted character replaced by MASK; newlines kept so lines survive."""
    return "".join(MASK if flag and ch != "\n" else ch for ch, flag in zip(output, covered, strict=True))


def parse(output: str, fmt: str, answers: Sequence[str] = ()) -> Parsed:
    """Read the verdict of one judge output in format `fmt`; a verdict read from text copied from
    `answers` is `unparsed`."""
    covered = quoted_spans(output, answers)
    text = _masked(output, covered)
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
        return _last_label(output, covered)
    if fmt == FASTCHAT_LABEL:
        return _fastchat_label(output, covered)
    if fmt == RATING:
        return _rating(list(_RATING.finditer(output))[-1:], covered)
    if fmt == FASTCHAT_RATING:
        first = _FASTCHAT_RATING.search(output) or _FASTCHAT_RATING_BACKUP.search(output)
        return _rating([first] if first else [], covered)
    raise ValueError(f"unknown output format {fmt!r}")


def _inside(match: re.Match[str], covered: bytearray) -> bool:
    return any(covered[match.start() : match.end()])


def _last_label(output: str, covered: bytearray) -> Parsed:
    labels = list(_LABEL.finditer(output))
    if not labels:
        return unparsed("no [[A]]/[[B]]/[[C]] label")
    if _inside(labels[-1], covered):
        return unparsed("the last [[A]]/[[B]]/[[C]] label lies inside a quoted answer")
    return Parsed(status="ok", verdict=LABEL_VERDICT[labels[-1].group(1)])


def _fastchat_label(output: str, covered: bytearray) -> Parsed:
    """FastChat's priority: any [[A]] decides, else any [[B]], else any [[C]]. Every occurrence of
    the deciding label counts toward the reading, so one inside a quoted answer makes it unreadable."""
    for label in "ABC":
        found = list(re.finditer(re.escape(f"[[{label}]]"), output))
        if found:
            if any(_inside(match, covered) for match in found):
                return unparsed(f"the deciding [[{label}]] lies inside a quoted answer")
            return Parsed(status="ok", verdict=LABEL_VERDICT[label])
    return unparsed("no [[A]]/[[B]]/[[C]] label")


def _rating(chosen: list[re.Match[str]], covered: bytearray) -> Parsed:
    if not chosen:
        return unparsed("no [[N]] rating")
    if _inside(chosen[0], covered):
        return unparsed("the rating lies inside a quoted answer")
    value = float(chosen[0].group(1))
    if not 0 <= value <= 10:
        return unparsed(f"rating {value:g} is outside 1-10")
    return Parsed(status="ok", score1=value)


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
    FASTCHAT_LABEL: 'Reply with only your final verdict: "[[A]]", "[[B]]" or "[[C]]".',
    ANSWER_IS: "Reply with one digit only: 1, 2 or 3.",
    RATING: 'Reply with only your rating in the format "[[N]]", N from 1 to 10.',
    FASTCHAT_RATING: 'Reply with only your rating in the format "[[N]]", N from 1 to 10.',
}
"""The one follow-up sent (with `--repair`) when a verdict cannot be read."""
