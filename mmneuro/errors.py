"""The one exception type for bad user input."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input from the user: a file, a config key or a value, and what is wrong with it.

    The CLI prints it as a single line (no traceback) and exits with status 2.
    """

    def __init__(self, where: str | Path, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{where}: {problem}")
