"""Judge prompt templates: the QLoRA release's, FastChat's MT-bench ones, and a user's own file.

The released templates are read at run time from the benchmark files (fetched by
:mod:`foundations.sources`, or a local mirror), never copied into the project. A template has an id,
an output format that says where the verdict is (:mod:`judges.parse`), variants chosen by the
prompt's category (QLoRA's Vicuna prompts have coding and math variants), the turn it judges
(FastChat's `*-multi-turn` templates show the whole two-turn conversation and judge turn 2), and
the judge settings of its source (:class:`Settings`). Its content hash is stored with every
judgment, so a changed template is never mistaken for the one that made a cached verdict; a
multi-turn template's text differs from its single-turn one, so the turn is part of that key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundations.paths import PROJECT_ROOT

THREECLASS = "last-line-123"
"""The last line is 1 (slot 1 better), 2 (slot 2 better) or 3 (equivalent)."""
SCORE_PAIR = "first-line-scores"
"""The first line holds two 1-10 scores, slot 1's then slot 2's."""
AB_LABEL = "ab-label"
"""The last [[A]], [[B]] or [[C]] (tie) label in the output."""
RATING = "rating"
"""Single-answer grading: the last [[N]] (1-10). Both answers are graded, one call each."""
ANSWER_IS = "answer-is-123"
"""For small judges that cannot keep to a bare digit: the first line names exactly one of 1, 2, 3
("2", "Answer 2.", "The answer is 2."); a line naming two of them is unreadable."""
FASTCHAT_LABEL = "fastchat-ab-label"
"""FastChat's pairwise rule: [[A]] if it appears anywhere, else [[B]], else [[C]] (tie)."""
FASTCHAT_RATING = "fastchat-rating"
"""FastChat's single-grading rule: the first [[N]], else the first [N]."""
FORMATS = (THREECLASS, SCORE_PAIR, AB_LABEL, RATING, ANSWER_IS, FASTCHAT_LABEL, FASTCHAT_RATING)
SINGLE_FORMATS = (RATING, FASTCHAT_RATING)
"""Formats that grade one answer per call (both answers are graded, one call each)."""

QLORA_PROMPTS = "qlora-eval/prompts"
QLORA_REVIEWERS = "qlora-eval/prompts/reviewer.jsonl"
FASTCHAT_PROMPTS = "fastchat/judge_prompts.jsonl"
FASTCHAT_TURN_FIELDS = {
    "{answer_a_1}": "{answer_1_1}", "{answer_a_2}": "{answer_1_2}",
    "{answer_b_1}": "{answer_2_1}", "{answer_b_2}": "{answer_2_2}",
    "{ref_answer_1}": "{reference_1}", "{ref_answer_2}": "{reference_2}",
}  # fmt: skip
"""FastChat's multi-turn placeholders in the project's {answer_SLOT_TURN} naming (pairwise)."""
FASTCHAT_SINGLE_TURN_FIELDS = {"{answer_1}": "{answer_1_1}", "{answer_2}": "{answer_1_2}"} | {
    k: v for k, v in FASTCHAT_TURN_FIELDS.items() if k.startswith("{ref")
}
"""Single grading's {answer_1}/{answer_2} are the graded answer's turns: it sits in slot 1."""


@dataclass(frozen=True)
class Variant:
    """One system prompt and user template; the user template takes {question}, {answer_1},
    {answer_2} (or {answer} for single grading) and {reference}."""

    system: str
    template: str
    needs_reference: bool = False
    name: str = ""
    """The source's name for it (FastChat's `pair-math-v1`), recorded with each judgment; not hashed."""


@dataclass(frozen=True)
class Settings:
    """How the template's source ran its judge, used unless the command line says otherwise.

    `question_form` is how the question is shown: "bare" (the text), or "qlora" (the QLoRA release's
    `### Human: ... ### Assistant:` form, which its OA benchmark used for every query)."""

    temperature: float = 0.0
    max_tokens: int = 1024
    question_form: str = "bare"
    origin: str = "project default"


FASTCHAT_SETTINGS = Settings(
    temperature=0.0, max_tokens=2048, origin="FastChat llm_judge common.py (temperature 0, max_tokens 2048)"
)
"""FastChat's judge calls: `chat_completion_openai(model, conv, temperature=0, max_tokens=2048)`."""


@dataclass(frozen=True)
class Template:
    id: str
    output: str
    variants: dict[str, Variant]
    """By prompt category; "general" is the fallback and must exist."""
    source: str = ""
    turn: int = 1
    """The conversation turn judged: 2 for a template that shows both turns and judges the second."""
    settings: Settings = Settings()

    @property
    def hash(self) -> str:
        """sha256 of what is sent to the judge and how it is read: the id, format and variants."""
        content = {
            "id": self.id,
            "output": self.output,
            "variants": {
                k: {"system": v.system, "template": v.template, "needs_reference": v.needs_reference}
                for k, v in sorted(self.variants.items())
            },
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    def variant(self, category: str | None, has_reference: bool = False) -> Variant:
        """The variant for a category; one that needs a reference answer only when there is one."""
        chosen = self.variants.get(category or "general", self.variants["general"])
        if chosen.needs_reference and not has_reference:
            return self.variants["general"]
        return chosen

    @property
    def single(self) -> bool:
        return self.output in SINGLE_FORMATS

    def messages(
        self,
        question: str,
        answer_1: str,
        answer_2: str | None = None,
        *,
        category: str | None = None,
        reference: str | None = None,
        earlier: Sequence[Turn] = (),
    ) -> list[dict[str, str]]:
        """The chat messages for one judge call (answer_2 None: single grading of answer_1).

        `earlier` holds the conversation's previous turns, for templates that judge a later turn:
        their fields are {question_T}, {answer_SLOT_T} and {reference_T}, T counting from 1."""
        if len(earlier) != self.turn - 1:
            raise ValueError(
                f"template {self.id} judges turn {self.turn}: give {self.turn - 1} earlier turn(s)"
            )
        current = Turn(question, answer_1, answer_2 or "", reference)
        turns = [*earlier, current]
        chosen = self.variant(category, all(t.reference is not None for t in turns))  # = Case.has_references
        fields = {"question": question, "reference": reference or "", "answer": answer_1}
        fields.update(answer_1=answer_1, answer_2=answer_2 or "")
        for number, turn in enumerate(turns, start=1):
            fields |= {f"question_{number}": turn.question, f"reference_{number}": turn.reference or "",
                       f"answer_1_{number}": turn.answer_1, f"answer_2_{number}": turn.answer_2}  # fmt: skip
        user = chosen.template.format_map(fields)
        return [{"role": "system", "content": chosen.system}, {"role": "user", "content": user}]


@dataclass(frozen=True)
class Turn:
    """One earlier turn of a judged conversation: the question and each slot's answer."""

    question: str
    answer_1: str
    answer_2: str = ""
    reference: str | None = None


def benchmark_file(relpath: str) -> Path:
    """A released file by its path in the release: the verified copy `guanaco data fetch` cached, else
    the local mirror's."""
    from foundations.sources import MIRROR_ENV, find_mirror, resolve_file

    try:
        return resolve_file(relpath)
    except (FileNotFoundError, KeyError):
        pass
    mirror = find_mirror(fallback=PROJECT_ROOT.parent / "shared" / "data")  # a checkout's ../shared
    if mirror is None or not (mirror / relpath).is_file():
        raise FileNotFoundError(
            f"judge template source {relpath} not found: run `guanaco data fetch` or set "
            f"{MIRROR_ENV} to a local mirror laid out like ../shared/data"
        )
    return mirror / relpath


def _jsonl(path: Path) -> list[dict[str, Any]]:
    from foundations.sources import read_jsonl

    return [record for _line, record in read_jsonl(path)]


def _qlora_variant(row: dict[str, Any]) -> Variant:
    """QLoRA's templates put the instructions in a {prompt} slot filled from `defaults`."""
    instructions = row["defaults"]["prompt"].replace("{", "{{").replace("}", "}}")
    template = row["prompt_template"].replace("{prompt}", instructions)
    return Variant(system=row["system_prompt"], template=template, name=row["category"])


def qlora_settings(question_form: str) -> Settings:
    """The QLoRA review script's settings, read from its reviewer file (`metadata`: temperature 0.2,
    max_tokens 1024 in the release); every reviewer there must agree."""
    path = benchmark_file(QLORA_REVIEWERS)
    found = {(float(r["metadata"]["temperature"]), int(r["metadata"]["max_tokens"])) for r in _jsonl(path)}
    if len(found) != 1:
        raise ValueError(f"{path}: reviewers disagree on temperature/max_tokens: {sorted(found)}")
    temperature, max_tokens = found.pop()
    return Settings(temperature, max_tokens, question_form, origin=f"QLoRA eval {QLORA_REVIEWERS}")


def qlora_template(template_id: str, filename: str, question_form: str = "bare") -> Template:
    path = benchmark_file(f"{QLORA_PROMPTS}/{filename}")
    variants = {row["category"]: _qlora_variant(row) for row in _jsonl(path)}
    output = SCORE_PAIR if "relative" in filename else THREECLASS
    return Template(id=template_id, output=output, variants=variants, source=str(path),
                    settings=qlora_settings(question_form))  # fmt: skip


def mt_bench_template(template_id: str, general: str, reference: str, output: str) -> Template:
    """FastChat's MT-bench judge: the reference-guided variant for math, reasoning and coding.

    A `*-multi-turn` pair of names loads the turn-2 template, its placeholders renamed to the
    project's {question_T}/{answer_SLOT_T}/{reference_T}."""
    path = benchmark_file(FASTCHAT_PROMPTS)
    rows = {row["name"]: row for row in _jsonl(path)}
    multi_turn = general.endswith("-multi-turn")
    single_turn = {"{answer_a}": "{answer_1}", "{answer_b}": "{answer_2}", "{ref_answer_1}": "{reference}"}
    multi = FASTCHAT_SINGLE_TURN_FIELDS if output == FASTCHAT_RATING else FASTCHAT_TURN_FIELDS
    renames = multi if multi_turn else single_turn

    def variant(name: str) -> Variant:
        if name not in rows:
            raise ValueError(f"{path}: no judge prompt named {name!r}")
        row = rows[name]
        template = row["prompt_template"]
        for old, new in renames.items():
            template = template.replace(old, new)
        return Variant(
            system=row["system_prompt"],
            template=template,
            needs_reference="{ref_answer_1}" in row["prompt_template"],
            name=name,
        )

    with_reference = variant(reference)
    variants = {"general": variant(general)} | {c: with_reference for c in ("math", "reasoning", "coding")}
    return Template(id=template_id, output=output, variants=variants, source=str(path),
                    turn=2 if multi_turn else 1, settings=FASTCHAT_SETTINGS)  # fmt: skip


def _mt_bench(kind: str, turn: int) -> Template:
    """FastChat's pair-v2/pair-math-v1 or single-v1/single-math-v1, for turn 1 or (multi-turn) 2."""
    general, reference, output = {
        "pair": ("pair-v2", "pair-math-v1", FASTCHAT_LABEL),
        "single": ("single-v1", "single-math-v1", FASTCHAT_RATING),
    }[kind]
    suffix = "-multi-turn" if turn == 2 else ""
    return mt_bench_template(f"mt-bench-{general}{suffix}", general + suffix, reference + suffix, output)


BUILTIN = {
    "qlora-vicuna": lambda: qlora_template("qlora-vicuna-threeclass", "vicuna_prompt_threeclass.jsonl"),
    "qlora-oa": lambda: qlora_template("qlora-oa-threeclass", "oa_prompt_threeclass.jsonl", "qlora"),
    "relative": lambda: qlora_template("qlora-vicuna-relative", "vicuna_prompt_relative.jsonl"),
    "mt-bench-pair": lambda: _mt_bench("pair", 1),
    "mt-bench-single": lambda: _mt_bench("single", 1),
    "mt-bench-pair-multi-turn": lambda: _mt_bench("pair", 2),
    "mt-bench-single-multi-turn": lambda: _mt_bench("single", 2),
}
"""Names accepted by `--template`, mapped to the template they load."""

ALIASES = {
    "qlora-vicuna-threeclass": "qlora-vicuna",
    "qlora-oa-threeclass": "qlora-oa",
    "qlora-vicuna-relative": "relative",
    "mt-bench-pair-v2": "mt-bench-pair",
    "mt-bench-single-v1": "mt-bench-single",
    "mt-bench-pair-v2-multi-turn": "mt-bench-pair-multi-turn",
    "mt-bench-single-v1-multi-turn": "mt-bench-single-multi-turn",
}

DEFAULT_BY_BENCHMARK = {"vicuna": "qlora-vicuna", "oa": "qlora-oa", "mt-bench": "mt-bench-pair"}


def load_template(name: str) -> Template:
    """A built-in template by name or id, or a user's YAML/JSON template file."""
    name = ALIASES.get(name, name)
    if name in BUILTIN:
        return BUILTIN[name]()
    path = Path(name)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        return user_template(path)
    raise ValueError(f"unknown judge template {name!r}: use one of {', '.join(BUILTIN)} or a YAML/JSON file")


def templates_for_turns(name: str, turns: str = "all") -> list[Template]:
    """The templates that judge `turns` ("all", "1" or "2") with template `name`: a built-in MT-bench
    template has a turn-2 (multi-turn) counterpart; any other judges turn 1 only (or its own turn)."""
    canonical = ALIASES.get(name, name)
    base = canonical.removesuffix("-multi-turn")
    multi = f"{base}-multi-turn"
    if multi not in BUILTIN:
        template = load_template(name)
        if turns not in ("all", str(template.turn)):
            raise ValueError(f"template {template.id} judges turn {template.turn} only, not --turns {turns}")
        return [template]
    if canonical != base and turns == "all":
        return [load_template(multi)]  # a multi-turn template named explicitly: its own turn
    wanted = {"all": (base, multi), "1": (base,), "2": (multi,)}[turns]
    return [load_template(n) for n in wanted]


def user_template(path: Path) -> Template:
    """A template file: `system`, `template` (with {question}, {answer_1}, {answer_2}, optionally
    {reference}), `output` (one of FORMATS), optional `id` (default: the file name) and optional
    `variants` mapping a category to its own `system`/`template`."""
    import yaml

    if not path.is_file():
        raise ValueError(f"{path}: template file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ValueError(f"{path}:{where} not valid YAML/JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with system, template and output")
    for key in ("system", "template", "output"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"{path}: field {key!r} is missing or not text")
    if data["output"] not in FORMATS:
        raise ValueError(f"{path}: field 'output' is {data['output']!r}; use one of {', '.join(FORMATS)}")
    variants = {"general": _user_variant(path, "template", data)}
    for category, spec in (data.get("variants") or {}).items():
        variants[str(category)] = _user_variant(path, f"variants.{category}", {**data, **spec})
    return Template(
        id=str(data.get("id") or path.stem), output=data["output"], variants=variants, source=str(path)
    )


def _user_variant(path: Path, where: str, spec: dict[str, Any]) -> Variant:
    template = spec["template"]
    single = spec["output"] in SINGLE_FORMATS
    needed = ("{question}", "{answer}") if single else ("{question}", "{answer_1}", "{answer_2}")
    missing = [slot for slot in needed if slot not in template]
    if missing:
        raise ValueError(f"{path}: field {where!r} lacks {', '.join(missing)}")
    try:
        template.format_map({"question": "", "answer": "", "answer_1": "", "answer_2": "", "reference": ""})
    except (KeyError, ValueError, IndexError) as err:
        raise ValueError(
            f"{path}: field {where!r} has a bad placeholder ({err}); write literal braces as {{{{ }}}}"
        ) from err
    return Variant(system=str(spec["system"]), template=template, needs_reference="{reference}" in template)
