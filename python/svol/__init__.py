"""svol: shared volumes for compute jobs.

    import svol

    app = svol.App("train")
    cache = svol.SharedVolume().persist("model-cache")

    @app.function(shared_volumes={"/cache": cache}, env={"HF_HOME": "/cache"})
    def infer(prompt: str) -> str: ...

    with app.run():
        print(infer.remote("hello"))

The server and token come from the same places as for the ``svol``
command line: ``svol.Client(server=, token=)``, then ``SVOL_SERVER`` /
``SVOL_TOKEN``, then ``SVOL_CONFIG``, ``~/.config/svol/config.toml`` and a
local server's ``client.toml``.
"""

from ._native import __version__
from ._client import Client
from .app import App
from .exceptions import (
    AlreadyExistsError,
    AuthenticationError,
    ConnectionError,
    Error,
    FileSystemError,
    InvalidArgumentError,
    IsADirectoryError,
    NoSpaceError,
    NotADirectoryError,
    NotFoundError,
    NotRunningError,
    PermissionDeniedError,
    RemoteError,
)
from .functions import Function
from .volume import (BatchUpload, DeletedFile, FileEntry, FileEntryType, FileReader, SharedVolume, TrashedVolume,
                     Volume, VolumeInfo)

__all__ = [
    "__version__",
    "App",
    "BatchUpload",
    "Client",
    "FileEntry",
    "FileEntryType",
    "FileReader",
    "Function",
    "SharedVolume",
    "Volume",
    "VolumeInfo",
    "TrashedVolume",
    "DeletedFile",
    "AlreadyExistsError",
    "AuthenticationError",
    "ConnectionError",
    "Error",
    "FileSystemError",
    "InvalidArgumentError",
    "IsADirectoryError",
    "NoSpaceError",
    "NotADirectoryError",
    "NotFoundError",
    "NotRunningError",
    "PermissionDeniedError",
    "RemoteError",
]
