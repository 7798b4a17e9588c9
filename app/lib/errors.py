"""The application's error base: a message for the user, an HTTP status and optional headers.

Domains subclass `AppError`; the one exception handler (app.lib.web.errors) answers any of
them in the asker's format without knowing the domain.
"""

from __future__ import annotations


class AppError(Exception):
    """A request the app cannot answer as asked; the message says what to change."""

    status_code: int = 400

    def __init__(self, message: str, *, status_code: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code
        self.headers: dict[str, str] = headers or {}
