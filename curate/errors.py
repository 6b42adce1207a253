"""Classified failures.

Every failure a video can meet is a :class:`CurateError` with an ``error_class``
(``permanent``: retrying cannot help, so the ledger never retries it;
``transient``: a rerun or a backoff may succeed) and a short machine-readable
``code``.  The ledger (``videos.parquet``) stores both plus the message, so a
user can filter failures without parsing text.
"""

from __future__ import annotations

from typing import Literal

ErrorClass = Literal["permanent", "transient"]

PERMANENT: ErrorClass = "permanent"
TRANSIENT: ErrorClass = "transient"


class CurateError(Exception):
    """A failure of one video, classified for the ledger and the retry logic."""

    def __init__(self, code: str, message: str, error_class: ErrorClass = PERMANENT):
        super().__init__(message)
        self.code = code
        self.message = message
        self.error_class: ErrorClass = error_class

    @property
    def is_transient(self) -> bool:
        return self.error_class == TRANSIENT

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def permanent(code: str, message: str) -> CurateError:
    return CurateError(code, message, PERMANENT)


def transient(code: str, message: str) -> CurateError:
    return CurateError(code, message, TRANSIENT)
