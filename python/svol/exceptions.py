"""The errors svol raises: one base class, and one class per thing a
caller can act on. Each also derives from the matching built-in exception
(``NotFoundError`` is a ``FileNotFoundError``, ``InvalidArgumentError`` a
``ValueError`` …), so code written for local files keeps working.

``str(e)`` is the server's (or the client's) message; ``e.errno`` the
POSIX error number it stands for, where there is one.
"""

import builtins

__all__ = [
    "Error",
    "NotFoundError",
    "AlreadyExistsError",
    "PermissionDeniedError",
    "AuthenticationError",
    "InvalidArgumentError",
    "ConnectionError",
    "NoSpaceError",
    "IsADirectoryError",
    "NotADirectoryError",
    "FileSystemError",
    "NotRunningError",
    "RemoteError",
]


class Error(Exception):
    """Base class of every svol error."""

    def __init__(self, *args: object) -> None:
        code = 0
        if len(args) == 2 and isinstance(args[0], int):
            code, message = args[0], str(args[1])
        else:
            message = " ".join(str(a) for a in args)
        super().__init__(message)
        self.message = message
        self.errno = code

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # so errors survive pickling (function results)
        return (type(self), (self.errno, self.message))


class NotFoundError(Error, builtins.FileNotFoundError):
    """A volume, app, file or directory does not exist."""


class AlreadyExistsError(Error, builtins.FileExistsError):
    """A volume or file of that name already exists."""


class PermissionDeniedError(Error, builtins.PermissionError):
    """The token may not do this, or the file's mode forbids it."""


class AuthenticationError(PermissionDeniedError):
    """The token is missing, wrong or revoked."""


class InvalidArgumentError(Error, builtins.ValueError):
    """A bad name or path (``..``, NUL, too long), or a bad value."""


class ConnectionError(Error, builtins.ConnectionError):
    """The server cannot be reached."""


class NoSpaceError(Error, builtins.OSError):
    """The server's disk (or the volume's quota) is full."""


class IsADirectoryError(Error, builtins.IsADirectoryError):
    """A file operation named a directory."""


class NotADirectoryError(Error, builtins.NotADirectoryError):
    """A path goes through something that is not a directory."""


class FileSystemError(Error, builtins.OSError):
    """Another file-system error; ``errno`` says which."""


class NotRunningError(Error, builtins.RuntimeError):
    """Something that needs a running app was used outside ``app.run()``."""


class RemoteError(Error):
    """A function call failed in its worker in a way that could not be
    raised here as its own exception (it could not be pickled, or the
    worker died). The message carries the remote traceback."""
