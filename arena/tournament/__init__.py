"""Tournaments: which matches to judge, and judging them concurrently, resumably, within budget.

One module per part: :mod:`~arena.tournament.config` (what a run is asked to do),
:mod:`~arena.tournament.plan` (matches and what is missing), :mod:`~arena.tournament.persistence`
(each judgment in its own transaction, charged to its run), :mod:`~arena.tournament.runner` (the
async runner and its limits), :mod:`~arena.tournament.schedule` and
:mod:`~arena.tournament.active` (which matches next), :mod:`~arena.tournament.costing` (the dry
run's estimate), :mod:`~arena.tournament.run_record` (the run and its stored config) and
:mod:`~arena.tournament.workflow` (all of it for `guanaco judge`). This file imports none of them,
so the command line loads only what a command uses.
"""
