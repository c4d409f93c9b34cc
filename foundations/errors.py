"""The errors a user can cause and fix, shared by every layer: the CLI prints them as one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class UserError(Exception):
    """A problem in the user's input or setup: printed as one clear message, without a traceback."""


class StoreNotFound(UserError):
    """A command that only reads was pointed at a store that does not exist (`where`: the file, or
    the database's URL without credentials)."""

    def __init__(self, where: str) -> None:
        super().__init__(
            f"no guanaco store at {where}: check --db (or $GUANACO_DB), or fill a store first "
            "(guanaco import qlora-release DIR, guanaco load-release DIR, guanaco demo)"
        )


@contextmanager
def loading_model(name: str, what: str = "the model") -> Iterator[None]:
    """Turn the OSError transformers raises when a model is neither a local folder nor reachable
    on the Hugging Face Hub into a one-line UserError that says what to do."""
    try:
        yield
    except OSError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"cannot load {what} {name!r} ({reason}): give a local folder, or download it while online "
            "(it is then read from the Hugging Face cache, also with HF_HUB_OFFLINE=1)"
        ) from err
