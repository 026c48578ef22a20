"""Apps: what owns ephemeral volumes and runs functions.

``with app.run():`` creates the app on the server and stops it at exit,
which deletes its ephemeral volumes. Functions made with
``@app.function(...)`` run their calls in worker processes with volumes
mounted (see ``functions.py``).
"""

import contextlib
import threading
from typing import Any, Callable, Iterator, List, Mapping, Optional, TypeVar

from . import _client, _native
from ._aio import blocking, blocking_classmethod
from .exceptions import InvalidArgumentError, NotRunningError
from .volume import Volume

__all__ = ["App"]

F = TypeVar("F", bound=Callable[..., Any])

_running: "List[App]" = []
_running_lock = threading.Lock()


class App:
    """A named app. Nothing is made on the server until ``run()``."""

    def __init__(self, name: Optional[str] = None, *, client: "Optional[_client.Client]" = None) -> None:
        if name is not None and (not isinstance(name, str) or not name or "\0" in name):
            raise InvalidArgumentError(f"app name {name!r} must be a non-empty str without NUL")
        self.name = name or "python app"
        self._client = client
        self._app: "Optional[_native.App]" = None

    @staticmethod
    def _current() -> "Optional[App]":
        with _running_lock:
            return _running[-1] if _running else None

    def _native_app(self) -> "_native.App":
        if self._app is None:
            raise NotRunningError(f"app {self.name!r} is not running: use `with app.run():`")
        return self._app

    @property
    def app_id(self) -> str:
        """The server's id of the running app."""
        return self._native_app().id

    @property
    def is_running(self) -> bool:
        return self._app is not None

    @contextlib.contextmanager
    def run(self) -> Iterator["App"]:
        """Creates the app on the server; at exit (also on an exception or
        Ctrl-C) stops it, deleting its ephemeral volumes."""
        if self._app is not None:
            raise NotRunningError(f"app {self.name!r} is already running")
        self._app = _client.resolve(self._client).create_app(self.name)
        with _running_lock:
            _running.append(self)
        try:
            yield self
        finally:
            with _running_lock:
                if self in _running:
                    _running.remove(self)
            app, self._app = self._app, None
            app.stop()

    @blocking
    def stop(self) -> None:
        """Stops the running app now (its ephemeral volumes are deleted)."""
        self._native_app().stop()

    @blocking_classmethod
    def stop_by_id(cls, app_id: str, *, client: "Optional[_client.Client]" = None) -> None:
        """Stops the app ``app_id`` — for a persisted volume, the app named
        in ``volume.info().app``: the volume and its data are deleted."""
        _client.resolve(client).lookup_app(app_id).stop()

    def function(self, *, shared_volumes: "Optional[Mapping[str, Volume]]" = None,
                 env: "Optional[Mapping[str, str]]" = None) -> "Callable[[F], Function]":
        """Makes a function whose calls run in separate processes with each
        volume of ``shared_volumes`` mounted at its path and ``env`` set::

            @app.function(shared_volumes={"/cache": vol}, env={"HF_HOME": "/cache"})
            def infer(prompt): ...

            with app.run():
                infer.remote("hi")            # one call, one worker
                list(infer.map(prompts, concurrency=4))
        """
        from .functions import Function, check_mounts

        vols = check_mounts(shared_volumes or {})
        envs = dict(env or {})
        for k, v in envs.items():
            if not isinstance(k, str) or not k or "=" in k or "\0" in k or not isinstance(v, str) or "\0" in v:
                raise InvalidArgumentError(f"env entry {k!r}={v!r} is not a NAME=VALUE string pair")

        def wrap(fn: F) -> Function:
            return Function(self, fn, vols, envs)

        return wrap

    def __repr__(self) -> str:
        state = f"running as {self._app.id}" if self._app is not None else "not running"
        return f"App({self.name!r}, {state})"


from .functions import Function  # noqa: E402  (Function needs App defined)
