"""Every query of the store, one module per noun: the only place SQL is written outside the
schema (:mod:`arena.store`) and its migrations (:mod:`arena.migrations`).

Workflows, the web app and the analyses call named, typed functions here instead of building
statements themselves, so a rule that every read must follow is written once:

- :mod:`.vocabulary`: the words the records use (verdicts, statuses, who counts as a person, the
  score a verdict gives slot 1).
- :mod:`.judges`: the one judge selector (``--judge``) with the same meaning in every command.
- :mod:`.generations`: :func:`~arena.query.generations.answerable_generations`, the condition that
  keeps imported placeholders away from voters, judges and measurements.
- :mod:`.judgments`, :mod:`.prompts`, :mod:`.contestants`, :mod:`.runs`, :mod:`.tags`,
  :mod:`.secret`: reads and writes of each record; :mod:`.bundle`: the tables a release
  exports.
- :mod:`.writes`: the idempotent bulk insert every write goes through.

Bulk reads (the judgments table, millions of rows) use SQLAlchemy Core and plain tuples, never one
ORM object per row.
"""
