"""The one judge selector: what ``--judge`` means in every command and analysis.

Judges are stored by name: a model judge as the judging run named it (``gpt-4``, or with its
provider, ``openai:gpt-4-0613``), a person as ``human:<annotator>``. A selector is one of:

``human``
    every human annotator (``human:`` means the same).
``PREFIX:``
    every judge whose name starts with it (``openai:``: every judge served by OpenAI).
``family:NAME``
    every model judge of the family NAME: its name, with or without the provider, is NAME or
    starts with ``NAME-`` (``family:gpt-4`` is ``gpt-4``, ``openai:gpt-4-0613`` and
    ``gpt-4-1106-preview`` together, never ``gpt-4o``).
``NAME``
    one judge: the one stored under exactly that name; when there is none, the one model judge
    of family NAME (``gpt-4`` or ``gpt-4-0613`` picks ``openai:gpt-4-0613``). A name that fits
    two judges is an error naming them, so a rating never mixes judges by accident: ask for
    ``family:NAME`` to combine them.

:func:`select_judges` is the rule; :func:`judge_clause` applies it inside a query and
:func:`resolve_judge` to a list of names already loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import false, or_
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from arena.query.vocabulary import HUMAN, HUMAN_PREFIX, is_human_name
from arena.store import Judgment
from foundations.errors import UserError

FAMILY = "family:"

SELECTOR_HELP = (
    "a judge name (exact, else the one model judge of that family: gpt-4 picks openai:gpt-4-0613), "
    "'family:NAME' for every judge of a family, a prefix ending in ':' (openai:), or 'human' for "
    "every annotator"
)
"""What a ``--judge`` flag takes, for the commands' help."""


def prefix_of(spec: str) -> str | None:
    """The name prefix a selector stands for (``human`` and ``PREFIX:``), None for the others."""
    if spec == HUMAN:
        return HUMAN_PREFIX
    return spec if spec.endswith(":") and not spec.startswith(FAMILY) else None


def in_family(name: str, family: str) -> bool:
    """Whether model judge `name` belongs to `family`: its name without provider is the family or
    starts with the family and a dash (gpt-4-0613 is a gpt-4, gpt-4o is not)."""
    if is_human_name(name):
        return False
    bare = name.split(":", 1)[-1]
    return family in (name, bare) or bare.startswith(family + "-")


def select_judges(available: Iterable[str], spec: str) -> list[str]:
    """The names among `available` that selector `spec` stands for, sorted (empty when none).
    Raises UserError when a plain name fits more than one judge."""
    names = sorted(set(available))
    prefix = prefix_of(spec)
    if prefix is not None:
        return [n for n in names if n.startswith(prefix)]
    if spec.startswith(FAMILY):
        return [n for n in names if in_family(n, spec[len(FAMILY) :])]
    if spec in names:
        return [spec]
    found = [n for n in names if not is_human_name(n) and n.split(":", 1)[-1] == spec]
    found = found or [n for n in names if in_family(n, spec)]
    if len(found) > 1:
        raise UserError(
            f"judge {spec!r} is ambiguous: it matches {', '.join(found)}; give the full name, or "
            f"family:{spec} for all of them"
        )
    return found


def resolve_judge(available: Sequence[str], spec: str) -> list[str]:
    """:func:`select_judges`, but a selector that matches nothing is a UserError listing the
    judges there are."""
    found = select_judges(available, spec)
    if not found:
        raise UserError(f"unknown judge {spec!r}: the judgments here are by {judge_listing(available)}")
    return found


def judge_listing(available: Iterable[str]) -> str:
    """The judges there are, for a message: model judges by name, people counted."""
    names = sorted(set(available))
    humans = [n for n in names if is_human_name(n)]
    shown = [n for n in names if not is_human_name(n)]
    if humans:
        shown.append(f"human ({len(humans)} annotators)")
    return ", ".join(shown) if shown else "nobody"


def judge_clause(session: Session, specs: str | Sequence[str], scope: Select) -> ColumnElement[bool]:
    """The WHERE condition on `Judgment.judge` for one selector or any of several.

    `scope` is the query being filtered (without its judge condition): a plain name or a family
    is resolved among the judges it holds, so a selection means the same whether the judgments
    are filtered in the database or after loading (:func:`resolve_judge`)."""
    clauses = []
    for spec in [specs] if isinstance(specs, str) else list(specs):
        prefix = prefix_of(spec)
        if prefix is not None:
            clauses.append(Judgment.judge.startswith(prefix, autoescape=True))
        elif not spec.startswith(FAMILY) and _holds(session, scope, spec):
            clauses.append(Judgment.judge == spec)  # the common case: no scan for the judges' names
        else:
            available = session.scalars(scope.with_only_columns(Judgment.judge).distinct().order_by(None))
            names = select_judges(available, spec)
            clauses.append(Judgment.judge.in_(names) if names else false())
    return or_(*clauses)


def _holds(session: Session, scope: Select, name: str) -> bool:
    stmt = scope.with_only_columns(Judgment.id).where(Judgment.judge == name).order_by(None).limit(1)
    return session.scalar(stmt) is not None
