"""``.aio`` variants: every blocking method of the API can be awaited as
``await obj.method.aio(...)`` (the form modal-client uses). The native
calls release the GIL, so the blocking call runs in a worker thread while
the event loop goes on."""

import asyncio
import functools
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class _Bound(Generic[T]):
    __slots__ = ("_call", "__doc__", "__wrapped__")

    def __init__(self, call: Callable[..., T], doc: "str | None") -> None:
        self._call = call
        self.__doc__ = doc
        self.__wrapped__ = call

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        return self._call(*args, **kwargs)

    async def aio(self, *args: Any, **kwargs: Any) -> T:
        """The same call, awaited (runs in a thread; the loop is not blocked)."""
        return await asyncio.to_thread(self._call, *args, **kwargs)


class blocking(Generic[T]):
    """Marks a method as blocking: callable as usual, or awaited through
    ``.aio``. Works for instance methods and, with ``static=True``, for
    methods called on the class."""

    def __init__(self, fn: Callable[..., T], static: bool = False) -> None:
        self._fn = fn
        self._static = static
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __get__(self, obj: Any, objtype: Any = None) -> _Bound[T]:
        if self._static:
            return _Bound(self._fn, self._fn.__doc__)
        if obj is None:
            return _Bound(functools.partial(self._fn, objtype), self._fn.__doc__)
        return _Bound(functools.partial(self._fn, obj), self._fn.__doc__)


class blocking_classmethod(blocking):  # type: ignore[type-arg]
    """A blocking method called on the class (``Volume.from_name(...)``)."""

    def __get__(self, obj: Any, objtype: Any = None) -> _Bound[Any]:
        cls = objtype if objtype is not None else type(obj)
        return _Bound(functools.partial(self._fn, cls), self._fn.__doc__)
