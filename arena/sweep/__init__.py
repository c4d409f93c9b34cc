"""`guanaco sweep`: choose LoRA settings by tournament, not by eye.

One adapter per point of a grid of trainer settings (`lora_r=8,16 target_modules=qv,all bits=4,8`),
each registered as a contestant named from its settings, answers on a held-out prompt set, every
pair judged in both orders (or left to people in the arena), and one table per setting: trainable
parameters, training time, peak memory, eval loss and a Bradley-Terry rating with its interval.

Everything is resumable. A point is finished when its folder holds the completion marker, written
atomically (a temporary file renamed into place) only after the trainer wrote its outputs; an
unfinished point continues from its last checkpoint. Generation and judging go through the same
idempotent runners as `guanaco generate` and `guanaco judge`, so a killed sweep, run again, does
only what is missing.

The stages, one module each: :mod:`~arena.sweep.config` (the config and its grid),
:mod:`~arena.sweep.training`, :mod:`~arena.sweep.prompts` (the held-out prompts),
:mod:`~arena.sweep.contestants`, :mod:`~arena.sweep.judging`, :mod:`~arena.sweep.report` (table and
plot), :mod:`~arena.sweep.plan` (the dry run) and :mod:`~arena.sweep.workflow` (all of them in order).
"""
