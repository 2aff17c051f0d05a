"""The one exception type for bad user input."""

from __future__ import annotations

import re
from pathlib import Path


class InputError(ValueError):
    """Bad input from the user: a file, a config key or a value, and what is wrong with it.

    The CLI prints it as a single line (no traceback) and exits with status 2.
    """

    def __init__(self, where: str | Path, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{where}: {problem}")


_SESSION_ID = re.compile(r"[A-Za-z0-9_.-]+")


def check_session_id(session, where: str | Path | None = None) -> str:
    """``session`` if it is a valid id, else an InputError: a session id names a folder under the
    results, so letters, digits, ``_ . -`` only, and never ``.`` or ``..`` (which escape it)."""
    if not isinstance(session, str) or not _SESSION_ID.fullmatch(session) or set(session) == {"."}:
        raise InputError(where or f"session {session!r}",
                         f"{session!r} is not a valid id (session ids: letters, digits, _ . -; never '.' or '..')")
    return session
