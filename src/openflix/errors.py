"""The one exception tree of openflix.

Every error openflix raises on purpose derives from :class:`OpenflixError`;
faces (CLI, API) catch that root and turn it into a clear message with exit
status 2 or a 4xx response.  Errors of third-party libraries are translated at
the boundary (``raise DataError(...) from exc``).

::

    OpenflixError
    ├── ConfigError(OpenflixError, ValueError)    a setting is missing or malformed
    ├── DataError(OpenflixError, ValueError)      input data is malformed
    │   └── DataFormatError                       a file does not parse (file, line, field)
    ├── NotFoundError(OpenflixError, LookupError) an id (member, title, model) is unknown
    ├── ModelError(OpenflixError)                 a model cannot do what was asked
    │   ├── NotFittedError(ModelError, RuntimeError)
    │   └── ModelFileError(ModelError)            a saved model cannot be read
    ├── FetchError(OpenflixError, OSError)        a download failed
    ├── ConflictError(OpenflixError, ValueError)  the request contradicts what is stored (409)
    ├── AuthError(OpenflixError, PermissionError) no valid credentials (401)
    │   └── ForbiddenError                        valid credentials, not allowed (403)
    ├── cdn.signing.SignatureError(OpenflixError, PermissionError)
    │                                             a playback URL is tampered, expired or foreign (403)
    └── UnavailableError(OpenflixError, ConnectionError)
                                                  a backing service (database, Redis, S3) is down (503)
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AuthError",
    "ConfigError",
    "ConflictError",
    "DataError",
    "DataFormatError",
    "FetchError",
    "ForbiddenError",
    "ModelError",
    "ModelFileError",
    "NotFittedError",
    "NotFoundError",
    "OpenflixError",
    "UnavailableError",
]


class OpenflixError(Exception):
    """Root of every error openflix raises on purpose."""


class ConfigError(OpenflixError, ValueError):
    """A setting is missing or malformed."""


class DataError(OpenflixError, ValueError):
    """Input data is malformed or inconsistent."""


class DataFormatError(DataError):
    """A file does not parse; says which file, which line, which field and what was expected.

    Parameters
    ----------
    path:
        The file that failed to parse.
    message:
        What was expected and what came, e.g. ``"'rating' must be in 0.5..5 (got '7')"``.
    line:
        1-based line number in the file, when known.
    field:
        The column (role or name) at fault, when known.
    """

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.detail = message
        where = self.path if line is None else f"{self.path}, line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


class NotFoundError(OpenflixError, LookupError):
    """An id (member, title, model file) is unknown."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelError(OpenflixError):
    """A model cannot do what was asked of it."""


class NotFittedError(ModelError, RuntimeError):
    """A model was used before :meth:`fit`."""


class ModelFileError(ModelError):
    """A saved model file is missing, corrupt, or of an unknown kind."""


class FetchError(OpenflixError, OSError):
    """Downloading a dataset failed."""


class ConflictError(OpenflixError, ValueError):
    """The request contradicts what is stored (an idempotency key reused for another event, say)."""


class AuthError(OpenflixError, PermissionError):
    """No valid credentials came with the request."""


class ForbiddenError(AuthError):
    """The credentials are valid but do not allow this action."""


class UnavailableError(OpenflixError, ConnectionError):
    """A backing service (database, Redis, S3) cannot be reached; retrying later may succeed."""
