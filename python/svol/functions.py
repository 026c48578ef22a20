"""Functions whose calls run in worker processes with volumes mounted.

Each worker is ``python -m svol run --app APP -v PATH=VOLUME … -- python -m
svol._worker SOCKET``: the same mechanism as ``svol run`` (a private mount
namespace, the host untouched, mounts gone with the process even on
SIGKILL). Workers connect back over a Unix socket and run calls one at a
time; ``map`` keeps N of them busy. Arguments, functions and results are
pickled (cloudpickle where installed).

Mounting needs root (CAP_SYS_ADMIN for the mount namespace, and FUSE);
without it ``remote``/``map`` raise ``PermissionDeniedError`` saying so,
and ``local`` still works.
"""

import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from . import _client, _wire
from .exceptions import InvalidArgumentError, PermissionDeniedError, RemoteError
from .volume import Volume

if TYPE_CHECKING:
    from .app import App

__all__ = ["Function"]

STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0


def check_mounts(shared_volumes: "Mapping[str, Volume]") -> "Dict[str, Volume]":
    out: "Dict[str, Volume]" = {}
    for path, vol in shared_volumes.items():
        if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
            raise InvalidArgumentError(f"mount path {path!r} must be an absolute path")
        parts = [p for p in path.split("/") if p]
        if not parts or ".." in parts:
            raise InvalidArgumentError(f"mount path {path!r} must name a directory below / without ..")
        if not isinstance(vol, Volume):
            raise InvalidArgumentError(f"shared_volumes[{path!r}] is a {type(vol).__name__}, not a svol.Volume")
        out["/" + "/".join(parts)] = vol
    return out


class _RemoteTraceback(Exception):
    """Carries the worker's traceback as the ``__cause__`` of its exception."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


def _raise_remote(payload: "Optional[bytes]", tb: str, summary: str) -> None:
    exc: "Optional[BaseException]" = None
    if payload is not None:
        try:
            exc = _wire.loads(payload)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        raise RemoteError(f"{summary}\n\nremote traceback:\n{tb}")
    exc.__cause__ = _RemoteTraceback(tb)
    raise exc


class Function:
    """A function of an app. Call ``.remote(...)`` for one call in a worker
    with the volumes mounted, ``.map(items, concurrency=N)`` for many in N
    workers sharing the volumes live, ``.local(...)`` (or call it) to run
    it here without mounts."""

    def __init__(self, app: "App", fn: Callable[..., Any], volumes: "Dict[str, Volume]",
                 env: "Dict[str, str]") -> None:
        self.app = app
        self.fn = fn
        self.volumes = volumes
        self.env = env
        self.__name__ = getattr(fn, "__name__", "function")
        self.__doc__ = fn.__doc__

    def local(self, *args: Any, **kwargs: Any) -> Any:
        """Runs the function in this process, without mounts."""
        return self.fn(*args, **kwargs)

    __call__ = local

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Runs one call in a worker with the volumes mounted; returns its
        result or raises its exception (remote traceback as the cause)."""
        with _Pool(self, 1) as pool:
            return next(pool.run([(args, kwargs)]))

    def map(self, *iterables: Iterable[Any], concurrency: int = 4,
            kwargs: "Optional[Mapping[str, Any]]" = None) -> Iterator[Any]:
        """Calls the function once per item (``zip`` of ``iterables``, like
        the built-in ``map``) in up to ``concurrency`` workers that share
        the volumes live; yields results in input order. The first failing
        call's exception is raised and the other workers are stopped."""
        if not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgumentError(f"concurrency must be a positive int, not {concurrency!r}")
        calls = [(tuple(a), dict(kwargs or {})) for a in zip(*iterables)]
        if not calls:
            return
        with _Pool(self, min(concurrency, len(calls))) as pool:
            yield from pool.run(calls)

    def __repr__(self) -> str:
        return f"Function({self.__name__}, volumes={list(self.volumes)})"


class _Worker:
    def __init__(self, proc: "subprocess.Popen[bytes]") -> None:
        self.proc = proc
        self.sock: "Optional[socket.socket]" = None
        self.busy: "Optional[int]" = None
        self.errors: "Deque[str]" = deque(maxlen=40)
        self.reader = threading.Thread(target=self._forward, daemon=True)
        self.reader.start()

    def _forward(self) -> None:
        # The runner's stderr goes on to ours; its last lines explain a
        # worker that failed to start.
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            text = line.decode(errors="replace")
            self.errors.append(text.rstrip("\n"))
            try:
                sys.stderr.write(text)
            except Exception:
                pass

    def why(self) -> str:
        self.reader.join(timeout=2)
        tail = "\n".join(self.errors).strip()
        return tail or f"(exit status {self.proc.poll()})"


class _Pool:
    """N workers for one function, for the length of a ``with``."""

    def __init__(self, function: Function, n: int) -> None:
        self.function = function
        self.n = n
        self.workers: "List[_Worker]" = []
        self.dir = ""
        self.listener: "Optional[socket.socket]" = None

    def __enter__(self) -> "_Pool":
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _command(self, sock_path: str) -> "Tuple[List[str], Dict[str, str]]":
        f = self.function
        app = f.app._native_app()
        cmd = [sys.executable, "-m", "svol", "run", "--app", app.id]
        for path, vol in f.volumes.items():
            cmd += ["-v", f"{path}={vol._hydrate(f.app).id}"]
        for k, v in f.env.items():
            cmd += ["-e", f"{k}={v}"]
        cmd += ["--", sys.executable, "-m", "svol._worker", sock_path]
        env = dict(os.environ)
        env.update(dict(_client.resolve(f.app._client).child_env()))
        # The worker imports what the caller can (functions pickled by
        # reference): the caller's module path, and its working directory.
        paths = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return cmd, env

    def _start(self) -> None:
        if os.geteuid() != 0:
            raise PermissionDeniedError(
                "functions mount their volumes in a private mount namespace, which needs root "
                "(CAP_SYS_ADMIN) and FUSE; run as root, or call .local() to run without mounts")
        self.dir = tempfile.mkdtemp(prefix="svol-fn-")
        sock_path = os.path.join(self.dir, "s")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(sock_path)
        self.listener.listen(self.n)
        cmd, env = self._command(sock_path)
        for _ in range(self.n):
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.workers.append(_Worker(proc))
        self._accept_all()

    def _accept_all(self) -> None:
        assert self.listener is not None
        self.listener.settimeout(0.2)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        conns: "List[socket.socket]" = []
        while len(conns) < self.n:
            for w in self.workers:
                if w.proc.poll() is not None:
                    raise RemoteError(f"a worker of {self.function.__name__} exited before it started:\n{w.why()}")
            if time.monotonic() > deadline:
                raise RemoteError(f"workers of {self.function.__name__} did not start within {STARTUP_TIMEOUT:.0f} s")
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            conn.settimeout(None)
            hello = _wire.recv(conn)
            if not hello or hello[0] != "hello":
                conn.close()
                continue
            conns.append(conn)
        # A worker is its runner's child, so connections are not matched
        # to runners: each runner stands for one connection, any of them.
        for w, conn in zip(self.workers, conns):
            w.sock = conn

    def run(self, calls: "List[Tuple[Tuple[Any, ...], Dict[str, Any]]]") -> Iterator[Any]:
        fn = self.function.fn
        todo = deque(enumerate(calls))
        done: "Dict[int, Any]" = {}
        next_out = 0
        sel = selectors.DefaultSelector()
        for w in self.workers:
            assert w.sock is not None
            sel.register(w.sock, selectors.EVENT_READ, w)
        try:
            while next_out < len(calls):
                for w in self.workers:
                    if w.busy is None and todo and w.sock is not None:
                        idx, (args, kwargs) = todo.popleft()
                        _wire.send(w.sock, ("call", idx, _wire.dumps((fn, args, kwargs))))
                        w.busy = idx
                for key, _ in sel.select(timeout=0.5):
                    w = key.data
                    msg = _wire.recv(w.sock)
                    if msg is None:
                        w.proc.wait(timeout=STOP_TIMEOUT)
                        raise RemoteError(
                            f"a worker of {self.function.__name__} died during call {w.busy}:\n{w.why()}")
                    w.busy = None
                    if msg[0] == "ok":
                        done[msg[1]] = _wire.loads(msg[2])
                    else:
                        _raise_remote(msg[2], msg[3], msg[4])
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
        finally:
            sel.close()

    def _stop(self) -> None:
        # Closing the sockets ends idle workers; a busy one (Ctrl-C, an
        # error elsewhere) gets SIGTERM, which its runner passes on before
        # unmounting; SIGKILL is the last word (the namespace still takes
        # the mounts down).
        for w in self.workers:
            if w.sock is not None:
                w.sock.close()
        deadline = time.monotonic() + 2.0
        for w in self.workers:
            try:
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for w in self.workers:
            try:
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        if self.listener is not None:
            self.listener.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
