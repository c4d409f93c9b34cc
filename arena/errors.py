"""The errors a user can cause and fix, shared by every layer: the CLI prints them as one line."""

from __future__ import annotations


class UserError(Exception):
    """A problem in the user's input or setup: printed as one clear message, without a traceback."""
