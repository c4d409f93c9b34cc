"""What a release exports and how: the release workflow's typed configuration.

`guanaco release` builds it from its flags (:func:`ReleaseConfig.from_flags`); code and tests
build it directly. A bad value is refused here, before anything is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass

from arena.release.schema import FORMATS
from foundations.errors import UserError


@dataclass(frozen=True)
class ReleaseConfig:
    """`benchmark` None exports every benchmark; `pseudonymise` False publishes annotators' real
    names; `leaderboard_orderings` (Elo orderings, BT bootstrap draws) keeps the bundled tables quick."""

    benchmark: str | None = None
    formats: tuple[str, ...] = FORMATS
    pseudonymise: bool = True
    leaderboard_orderings: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.formats) - set(FORMATS)
        if unknown or not self.formats:
            raise UserError(f"--format: unknown {sorted(unknown)}; choose from {', '.join(FORMATS)}")

    @classmethod
    def from_flags(
        cls, benchmark: str | None, formats: str, real_names: bool, orderings: int
    ) -> ReleaseConfig:
        """The configuration `guanaco release` asks for: `formats` comma-separated as typed."""
        chosen = tuple(f.strip() for f in formats.split(",") if f.strip())
        return cls(benchmark=benchmark, formats=chosen, pseudonymise=not real_names,
                   leaderboard_orderings=orderings)  # fmt: skip
