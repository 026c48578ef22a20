"""The parent ↔ worker messages: a 4-byte length, then a pickle."""

import pickle
import socket
import struct
from typing import Any, Optional

try:  # functions of __main__, lambdas and closures travel by value
    import cloudpickle as _pickler
except ImportError:  # pragma: no cover - exercised where cloudpickle is absent
    _pickler = pickle  # type: ignore[assignment]

MAX_MESSAGE = 1 << 31


def dumps(obj: Any) -> bytes:
    return _pickler.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def send(sock: socket.socket, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) >= MAX_MESSAGE:
        raise ValueError(f"message of {len(data)} bytes is over the limit of {MAX_MESSAGE}")
    sock.sendall(struct.pack("!I", len(data)) + data)


def _exactly(sock: socket.socket, n: int) -> Optional[bytes]:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            return None
        buf += part
    return bytes(buf)


def recv(sock: socket.socket) -> Any:
    """The next message, or None when the other side is gone."""
    head = _exactly(sock, 4)
    if head is None:
        return None
    (n,) = struct.unpack("!I", head)
    body = _exactly(sock, n)
    if body is None:
        return None
    return pickle.loads(body)
