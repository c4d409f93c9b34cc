"""The trainer's own error, apart from the loop that raises it most, so that the QA-LoRA method
(:mod:`trainer.qalora`, which the loop loads) can derive from it without importing the loop."""

from __future__ import annotations

from foundations.errors import UserError


class TrainError(UserError, RuntimeError):
    """A run that cannot start or continue; the message says what to do."""
