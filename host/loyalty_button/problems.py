"""Input refused as a whole (a settings file, the catalogue, a playlist, a
CSV): the error carries every problem found, each one a line a person can
act on, instead of stopping at the first."""

from __future__ import annotations


class ProblemsError(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems
