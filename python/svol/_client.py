"""The connection every object uses unless given its own: made on first
use from the same settings the CLI reads (SVOL_SERVER / SVOL_TOKEN,
SVOL_CONFIG, ~/.config/svol/config.toml, the local server's
client.toml)."""

import threading
from typing import Optional

from . import _native

_lock = threading.Lock()
_default: Optional[_native.Client] = None


class Client:
    """A connection to a svol server as one workspace.

    ``server`` and ``token`` override the settings the CLI would use;
    pass the client to ``App(..., client=)`` or ``Volume.from_name(...,
    client=)`` to work with another server or workspace."""

    def __init__(self, server: Optional[str] = None, token: Optional[str] = None) -> None:
        self._native = _native.Client(server, token)

    @property
    def server(self) -> str:
        """The server address(es) in use."""
        return self._native.server


def resolve(client: "Optional[Client]") -> _native.Client:
    """The native client of ``client``, or the default one."""
    global _default
    if client is not None:
        return client._native
    with _lock:
        if _default is None:
            _default = _native.Client(None, None)
        return _default


def reset_default() -> None:
    """Forgets the default connection (the next use reads the settings again)."""
    global _default
    with _lock:
        _default = None
