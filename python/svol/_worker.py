"""A function worker: runs inside ``svol run`` (its volumes mounted, its
environment set), connects back to the caller's socket and runs calls
until the caller goes away. Started as ``python -m svol._worker SOCKET``."""

import os
import socket
import sys
import traceback

from . import _wire


def _failure(idx: int, exc: BaseException) -> tuple:
    tb = traceback.format_exc()
    try:
        payload = _wire.dumps(exc)
        _wire.loads(payload)  # it must also come back whole
    except Exception:
        payload = None
    return ("err", idx, payload, tb, f"{type(exc).__name__}: {exc}")


def main(path: str) -> int:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    _wire.send(sock, ("hello", os.getpid()))
    while True:
        msg = _wire.recv(sock)
        if msg is None:  # the caller is done (or gone)
            return 0
        _, idx, payload = msg
        try:
            fn, args, kwargs = _wire.loads(payload)
            result = fn(*args, **kwargs)
            reply = ("ok", idx, _wire.dumps(result))
        except KeyboardInterrupt:
            return 130
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the caller
            reply = _failure(idx, e)
        sys.stdout.flush()
        sys.stderr.flush()
        _wire.send(sock, reply)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
