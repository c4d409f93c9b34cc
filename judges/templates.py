"""Judge prompt templates: the QLoRA release's, FastChat's MT-bench ones, and a user's own file.

The released templates are read at run time from the benchmark files (fetched by
:mod:`arena.benchmarks`, or a local mirror), never copied into the project. A template has an id,
an output format that says where the verdict is (:mod:`judges.parse`), and variants chosen by the
prompt's category (QLoRA's Vicuna prompts have coding and math variants). Its content hash is
stored with every judgment, so a changed template is never mistaken for the one that made a
cached verdict.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena.paths import PROJECT_ROOT

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
FORMATS = (THREECLASS, SCORE_PAIR, AB_LABEL, RATING, ANSWER_IS)

QLORA_PROMPTS = "qlora-eval/prompts"
FASTCHAT_PROMPTS = "fastchat/judge_prompts.jsonl"
MIRROR_ENVS = ("GUANACO_DATA_MIRROR", "GUANACO_SHARED_DATA")


@dataclass(frozen=True)
class Variant:
    """One system prompt and user template; the user template takes {question}, {answer_1},
    {answer_2} (or {answer} for single grading) and {reference}."""

    system: str
    template: str
    needs_reference: bool = False


@dataclass(frozen=True)
class Template:
    id: str
    output: str
    variants: dict[str, Variant]
    """By prompt category; "general" is the fallback and must exist."""
    source: str = ""

    @property
    def hash(self) -> str:
        """sha256 of what is sent to the judge and how it is read: the id, format and variants."""
        content = {
            "id": self.id,
            "output": self.output,
            "variants": {k: vars(v) for k, v in sorted(self.variants.items())},
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    def variant(self, category: str | None, has_reference: bool = False) -> Variant:
        """The variant for a category; one that needs a reference answer only when there is one."""
        chosen = self.variants.get(category or "general", self.variants["general"])
        if chosen.needs_reference and not has_reference:
            return self.variants["general"]
        return chosen

    def messages(
        self,
        question: str,
        answer_1: str,
        answer_2: str | None = None,
        *,
        category: str | None = None,
        reference: str | None = None,
    ) -> list[dict[str, str]]:
        """The chat messages for one judge call (answer_2 None: single grading of answer_1)."""
        chosen = self.variant(category, reference is not None)
        fields = {"question": question, "reference": reference or "", "answer": answer_1}
        fields.update(answer_1=answer_1, answer_2=answer_2 or "")
        user = chosen.template.format_map(fields)
        return [{"role": "system", "content": chosen.system}, {"role": "user", "content": user}]


def mirror_root() -> Path:
    """A local mirror of public benchmark files: `GUANACO_DATA_MIRROR` or `GUANACO_SHARED_DATA`,
    else ../shared/data next to the project."""
    for name in MIRROR_ENVS:
        if os.environ.get(name):
            return Path(os.environ[name])
    return PROJECT_ROOT.parent / "shared" / "data"


def benchmark_file(relpath: str) -> Path:
    """A released file by its path in the release: the verified copy arena.benchmarks fetched, else
    the local mirror's."""
    from arena.benchmarks import resolve_file

    try:
        return resolve_file(relpath)
    except (FileNotFoundError, KeyError):
        pass
    path = mirror_root() / relpath
    if not path.is_file():
        raise FileNotFoundError(
            f"judge template source {relpath} not found: run `guanaco data fetch` or set "
            f"{MIRROR_ENVS[0]} to a local mirror laid out like ../shared/data"
        )
    return path


def _jsonl(path: Path) -> list[dict[str, Any]]:
    from arena.benchmarks import read_jsonl

    return [record for _line, record in read_jsonl(path)]


def _qlora_variant(row: dict[str, Any]) -> Variant:
    """QLoRA's templates put the instructions in a {prompt} slot filled from `defaults`."""
    instructions = row["defaults"]["prompt"].replace("{", "{{").replace("}", "}}")
    template = row["prompt_template"].replace("{prompt}", instructions)
    return Variant(system=row["system_prompt"], template=template)


def qlora_template(template_id: str, filename: str) -> Template:
    path = benchmark_file(f"{QLORA_PROMPTS}/{filename}")
    variants = {row["category"]: _qlora_variant(row) for row in _jsonl(path)}
    output = SCORE_PAIR if "relative" in filename else THREECLASS
    return Template(id=template_id, output=output, variants=variants, source=str(path))


def mt_bench_template(template_id: str, general: str, reference: str, output: str) -> Template:
    """FastChat's MT-bench judge: the reference-guided variant for math, reasoning and coding."""
    path = benchmark_file(FASTCHAT_PROMPTS)
    rows = {row["name"]: row for row in _jsonl(path)}

    def variant(name: str) -> Variant:
        row = rows[name]
        template = (
            row["prompt_template"].replace("{answer_a}", "{answer_1}").replace("{answer_b}", "{answer_2}")
        )
        return Variant(
            system=row["system_prompt"],
            template=template.replace("{ref_answer_1}", "{reference}"),
            needs_reference="{ref_answer_1}" in row["prompt_template"],
        )

    with_reference = variant(reference)
    variants = {"general": variant(general)} | {c: with_reference for c in ("math", "reasoning", "coding")}
    return Template(id=template_id, output=output, variants=variants, source=str(path))


BUILTIN = {
    "qlora-vicuna": lambda: qlora_template("qlora-vicuna-threeclass", "vicuna_prompt_threeclass.jsonl"),
    "qlora-oa": lambda: qlora_template("qlora-oa-threeclass", "oa_prompt_threeclass.jsonl"),
    "relative": lambda: qlora_template("qlora-vicuna-relative", "vicuna_prompt_relative.jsonl"),
    "mt-bench-pair": lambda: mt_bench_template("mt-bench-pair-v2", "pair-v2", "pair-math-v1", AB_LABEL),
    "mt-bench-single": lambda: mt_bench_template("mt-bench-single-v1", "single-v1", "single-math-v1", RATING),
}
"""Names accepted by `--template`, mapped to the template they load."""

ALIASES = {
    "qlora-vicuna-threeclass": "qlora-vicuna",
    "qlora-oa-threeclass": "qlora-oa",
    "qlora-vicuna-relative": "relative",
    "mt-bench-pair-v2": "mt-bench-pair",
    "mt-bench-single-v1": "mt-bench-single",
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
    single = spec["output"] == RATING
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
