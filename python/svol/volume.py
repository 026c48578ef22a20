"""Volumes and their files, reached without any mount.

A ``Volume`` is a handle that may not exist on the server yet: an
ephemeral volume (``Volume.ephemeral()``, ``SharedVolume()``) is created in
the running app the first time it is used, and ``.persist(name)`` turns it
into the persisted volume of that name (created if missing). Volumes from
``Volume.from_name`` exist as soon as the call returns.
"""

import enum
import io
import os
import threading
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, AsyncIterator, Iterator, List, Optional, Sequence, Tuple, Union

from . import _client, _native
from ._aio import blocking, blocking_classmethod
from .exceptions import InvalidArgumentError, NotRunningError

if TYPE_CHECKING:
    from .app import App

__all__ = ["Volume", "SharedVolume", "FileEntry", "FileEntryType", "VolumeInfo", "FileReader", "BatchUpload"]


class FileEntryType(enum.Enum):
    """What a ``FileEntry`` is."""

    FILE = "file"
    DIRECTORY = "dir"
    SYMLINK = "symlink"
    UNKNOWN = "other"


@dataclass(frozen=True)
class FileEntry:
    """One file, directory or symlink of a volume."""

    path: str
    """Path inside the volume, without a leading slash."""
    type: FileEntryType
    size: int
    mtime: float
    """Modification time, seconds since the epoch."""
    mode: int
    """Permission bits."""

    @classmethod
    def _from(cls, t: "tuple[str, str, int, float, int]") -> "FileEntry":
        path, kind, size, mtime, mode = t
        return cls(path, FileEntryType(kind), size, mtime, mode)


@dataclass(frozen=True)
class VolumeInfo:
    id: str
    name: str
    ephemeral: bool
    app: str
    """The id of the app that owns the volume; stopping it deletes the volume."""
    bytes: int
    files: int
    created: int
    """Creation time, seconds since the epoch."""
    stored_bytes: int = 0
    """After dedup: each distinct block once, plus small files inline."""
    snapshot_of: str = ""
    """For a (read-only) snapshot, the id of its volume."""
    max_bytes: int = 0
    """Quota on stored bytes (0: none)."""
    max_files: int = 0
    """Quota on inodes (0: none)."""
    file_trash_seconds: int = 0
    """How long removed files are kept in the volume's trash (0: not kept)."""
    trash_files: int = 0
    """Removed files in the trash now (not counted in ``files``)."""


@dataclass(frozen=True)
class DeletedFile:
    """A removed file the volume's trash keeps, restorable with
    ``Volume.undelete`` until ``purge`` (seconds since the epoch)."""
    id: int
    path: str
    size: int
    deleted: float
    purge: float


@dataclass(frozen=True)
class TrashedVolume:
    """A deleted volume, kept in the workspace's trash until ``purge``."""
    id: str
    name: str
    deleted: int
    purge: int
    bytes: int
    files: int


class Volume:
    """A shared volume: a file system many processes mount at once.

    Use its files directly (``read_file``, ``write_file``, ``listdir`` …),
    or mount it into a function with ``@app.function(shared_volumes=
    {"/cache": volume})``. Every blocking method also has an awaitable form,
    ``await volume.method.aio(...)``.
    """

    def __init__(self, *, _native_volume: "Optional[_native.Volume]" = None,
                 _persist_as: Optional[str] = None, _client: "Optional[_client.Client]" = None) -> None:
        self._native = _native_volume
        self._persist_as = _persist_as
        self._client = _client
        self._lock = threading.Lock()

    # -- making and finding volumes -------------------------------------

    @staticmethod
    def ephemeral() -> "Volume":
        """A new volume of the running app, created on first use and
        deleted, data and all, when the app stops."""
        return Volume()

    @blocking_classmethod
    def from_name(cls, name: str, *, create_if_missing: bool = False,
                  client: "Optional[_client.Client]" = None) -> "Volume":
        """The persisted volume ``name`` (created empty if missing and
        ``create_if_missing``)."""
        _check_name(name)
        native = _client.resolve(client).volume_from_name(name, create_if_missing)
        return cls(_native_volume=native, _client=client)

    @blocking_classmethod
    def delete(cls, name: str, *, client: "Optional[_client.Client]" = None) -> None:
        """Deletes the persisted volume ``name`` and all its data."""
        _check_name(name)
        _client.resolve(client).delete_volume(name)

    @blocking_classmethod
    def list(cls, *, client: "Optional[_client.Client]" = None) -> "List[VolumeInfo]":
        """Every volume of the workspace."""
        return [_info(d) for d in _client.resolve(client).list_volumes()]

    @blocking_classmethod
    def clone(cls, source: str, name: str, *, client: "Optional[_client.Client]" = None) -> "Volume":
        """A new persisted volume ``name`` holding a copy of volume or
        snapshot ``source`` (``"vol@snap"``); no data is copied."""
        _check_name(source)
        _check_name(name)
        return cls(_native_volume=_client.resolve(client).clone_volume(source, name), _client=client)

    @blocking_classmethod
    def trash(cls, *, client: "Optional[_client.Client]" = None) -> "List[TrashedVolume]":
        """Deleted volumes still in the workspace's trash."""
        volumes, _retention = _client.resolve(client).list_trash()
        return [TrashedVolume(**d) for d in volumes]

    @blocking_classmethod
    def restore_deleted(cls, volume_id: str, *, name: Optional[str] = None,
                        client: "Optional[_client.Client]" = None) -> "Volume":
        """Brings a deleted volume back from the trash (as ``name``)."""
        _check_name(volume_id)
        native = _client.resolve(client).restore_trash(volume_id, name)
        return cls(_native_volume=native, _client=client)

    @blocking_classmethod
    def purge_deleted(cls, volume_id: Optional[str] = None, *,
                      client: "Optional[_client.Client]" = None) -> "List[str]":
        """Drops a deleted volume (or the whole trash) now, freeing its space."""
        return _client.resolve(client).purge_trash(volume_id)

    @blocking
    def snapshot(self, name: str) -> "Volume":
        """A read-only, point-in-time snapshot of this volume, the volume
        ``"<name>@<snapshot>"``. Only metadata is copied."""
        _check_name(name)
        return Volume(_native_volume=self._hydrate().snapshot(name), _client=self._client)

    @blocking
    def snapshots(self) -> "List[VolumeInfo]":
        """This volume's snapshots, oldest first."""
        return [_info(d) for d in self._hydrate().snapshots()]

    @blocking
    def set_quota(self, *, max_bytes: Optional[int] = None, max_files: Optional[int] = None) -> "VolumeInfo":
        """Caps this volume's stored bytes (after dedup) and inodes; 0
        removes a limit, None leaves it. Writers past one get EDQUOT."""
        return _info(self._hydrate().set_quota(max_bytes, max_files))

    @blocking
    def set_file_trash(self, seconds: int) -> "VolumeInfo":
        """Keeps files removed from this volume (unlink, or a rename over
        them) in its trash for ``seconds`` (0: not at all)."""
        return _info(self._hydrate().set_file_trash(int(seconds)))

    @blocking
    def deleted_files(self, path: str = "/", *, since: Optional[float] = None) -> "List[DeletedFile]":
        """Removed files the trash keeps at ``path`` or below it, removed
        within the last ``since`` seconds; newest first."""
        path = _check_path(path)
        return [DeletedFile(id=i, path=p, size=n, deleted=d / 1000, purge=e / 1000)
                for (i, p, n, d, e) in self._hydrate().deleted_files(path, since)]

    @blocking
    def undelete(self, path: str = "", *, id: Optional[int] = None, since: Optional[float] = None,
                 to: Optional[str] = None) -> "List[Tuple[str, str]]":
        """Brings removed files back: ``path`` (a file, or everything
        removed below a directory), each as of its last removal, or the one
        entry ``id``; to where it was, or with ``path`` replaced by ``to``.
        All or nothing: a taken path raises ``AlreadyExistsError``. Returns
        (from, to) pairs."""
        if not path and id is None:
            raise ValueError("give the path to bring back, or id=")
        path = _check_path(path) if path else ""
        to = _check_path(to) if to is not None else None
        return self._hydrate().undelete(path, since, id, to)

    @blocking
    def purge_deleted_files(self, path: str = "/", *, since: Optional[float] = None) -> int:
        """Drops removed files at ``path`` or below from the trash now,
        freeing their space; returns how many."""
        return self._hydrate().purge_deleted_files(_check_path(path), since)

    @blocking
    def restore(self, snapshot: str) -> None:
        """Puts snapshot ``snapshot``'s files in place of this volume's
        (nobody may have it mounted)."""
        _check_name(snapshot)
        self._hydrate().restore(snapshot)

    def persist(self, name: str) -> "Volume":
        """Makes this volume the persisted volume ``name``: it outlives its
        app. Before first use this only records the name (the volume is
        then looked up, or created, by name); after, the existing
        ephemeral volume is renamed and kept. Returns the volume itself."""
        _check_name(name)
        with self._lock:
            if self._native is None:
                self._persist_as = name
            else:
                self._native.persist(name)
        return self

    def _hydrate(self, app: "Optional[App]" = None) -> "_native.Volume":
        with self._lock:
            if self._native is not None:
                return self._native
            if self._persist_as is not None:
                client = self._client or (app._client if app is not None else None)
                self._native = _client.resolve(client).volume_from_name(self._persist_as, True)
                return self._native
            from .app import App

            running = app or App._current()
            if running is None:
                raise NotRunningError(
                    "an ephemeral volume lives in a running app: use it inside `with app.run():` "
                    "(or use Volume.from_name / .persist(name) for a volume of its own)")
            self._native = running._native_app().ephemeral_volume()
            return self._native

    # -- what it is -------------------------------------------------------

    @property
    def id(self) -> str:
        """The volume's id (creates an ephemeral volume not yet used)."""
        return self._hydrate().id

    @property
    def name(self) -> str:
        """The volume's name (its id for an unnamed ephemeral volume)."""
        return self._hydrate().name

    @blocking
    def info(self) -> VolumeInfo:
        """What the server knows of the volume now: size, files, owner."""
        return _info(self._hydrate().info())

    # -- files --------------------------------------------------------------

    @blocking
    def read_file(self, path: str) -> "FileReader":
        """Opens file ``path`` for reading. Iterate over the result for its
        contents a block (up to 4 MiB) at a time — any size streams in
        bounded memory — or call ``.read()`` for all of it."""
        return FileReader(self._hydrate().open_read(_check_path(path)))

    @blocking
    def read_bytes(self, path: str) -> bytes:
        """The whole contents of file ``path``."""
        return self._hydrate().read_file(_check_path(path))

    @blocking
    def write_file(self, path: str, data: "Union[bytes, bytearray, memoryview, IO[bytes]]") -> int:
        """Writes ``data`` (bytes, or a binary file object read to its end)
        as file ``path``, creating parent directories. Atomic: readers see
        the old file or the new one, never part of it. Returns the size."""
        path = _check_path(path)
        if isinstance(data, (bytes, bytearray, memoryview)):
            payload = bytes(data)
        elif hasattr(data, "read"):
            payload = _read_all(data)
        else:
            raise InvalidArgumentError(
                f"write_file: data must be bytes or a binary file object, not {type(data).__name__}")
        return self._hydrate().write_file(path, payload)

    @blocking
    def listdir(self, path: str = "/", *, recursive: bool = False) -> "List[FileEntry]":
        """The entries of directory ``path`` (the whole tree below it with
        ``recursive``); for a file, that one entry."""
        return [FileEntry._from(t) for t in self._hydrate().listdir(_check_path(path), recursive)]

    def iterdir(self, path: str = "/", *, recursive: bool = False) -> Iterator[FileEntry]:
        """Like ``listdir``, as an iterator."""
        yield from self.listdir(path, recursive=recursive)

    @blocking
    def stat(self, path: str) -> FileEntry:
        """The entry of ``path`` itself."""
        return FileEntry._from(self._hydrate().stat(_check_path(path)))

    @blocking
    def exists(self, path: str) -> bool:
        """Whether ``path`` exists in the volume."""
        from .exceptions import NotFoundError

        try:
            self._hydrate().stat(_check_path(path))
            return True
        except NotFoundError:
            return False

    @blocking
    def remove_file(self, path: str, *, recursive: bool = False) -> None:
        """Removes a file or symlink, or with ``recursive`` a directory tree."""
        self._hydrate().remove_file(_check_path(path), recursive)

    @blocking
    def copy_files(self, src_paths: "Union[str, Sequence[str]]", dst_path: str, *,
                   recursive: bool = False) -> None:
        """Copies files (trees with ``recursive``) within the volume, on the
        server: no data moves, blocks are shared. With several sources,
        ``dst_path`` must be a directory."""
        srcs = [src_paths] if isinstance(src_paths, str) else list(src_paths)
        self._hydrate().copy_files([_check_path(s) for s in srcs], _check_path(dst_path), recursive)

    @blocking
    def mkdir(self, path: str) -> None:
        """Makes directory ``path`` and any missing parents."""
        self._hydrate().mkdirs(_check_path(path))

    def batch_upload(self, *, force: bool = False) -> "BatchUpload":
        """Collects local files, trees and bytes to upload together::

            with vol.batch_upload() as batch:
                batch.put_file("weights.bin", "/models/weights.bin")
                batch.put_directory("./data", "/data")

        Only blocks the server lacks are sent. An existing file is replaced
        only with ``force``. Uploads when the block ends without error."""
        return BatchUpload(self, force)

    def __repr__(self) -> str:
        if self._native is not None:
            return f"Volume(id={self._native.id!r}, name={self._native.name!r})"
        if self._persist_as is not None:
            return f"Volume(persist_as={self._persist_as!r})"
        return "Volume(ephemeral, not yet created)"


def SharedVolume() -> Volume:
    """An ephemeral volume of the running app (the original API's name):
    ``SharedVolume().persist("model-cache")`` for one kept by name."""
    return Volume.ephemeral()


class FileReader:
    """The contents of one volume file, as they were when it was opened.

    Iterate (``for chunk in reader``, or ``async for``) for pieces of up to
    4 MiB; ``read()`` returns the rest at once."""

    def __init__(self, stream: "_native.ReadStream") -> None:
        self._stream = stream

    @property
    def size(self) -> int:
        """The file's size when it was opened."""
        return self._stream.size

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self._stream.next_chunk()
            if chunk is None:
                return
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import asyncio

        while True:
            chunk = await asyncio.to_thread(self._stream.next_chunk)
            if chunk is None:
                return
            yield chunk

    def read(self) -> bytes:
        """Everything not read yet."""
        return b"".join(self)

    def __enter__(self) -> "FileReader":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class BatchUpload:
    """Files to upload together; see ``Volume.batch_upload``."""

    def __init__(self, volume: Volume, force: bool) -> None:
        self._volume = volume
        self._force = force
        self._items: "list[tuple[str, object, str]]" = []
        self.bytes_sent = 0
        """Block bytes actually sent by the upload (what dedup did not save)."""

    def put_file(self, local_path: "Union[str, os.PathLike[str]]", remote_path: str) -> None:
        """Uploads the local file ``local_path`` as ``remote_path``."""
        local = os.fspath(local_path)
        if os.path.isdir(local):
            raise InvalidArgumentError(f"{local} is a directory: use put_directory")
        self._items.append(("file", local, _check_path(remote_path)))

    def put_directory(self, local_path: "Union[str, os.PathLike[str]]", remote_path: str) -> None:
        """Uploads the local tree ``local_path`` as directory ``remote_path``."""
        local = os.fspath(local_path)
        if not os.path.isdir(local):
            raise InvalidArgumentError(f"{local} is not a directory")
        self._items.append(("file", local, _check_path(remote_path)))

    def put_data(self, data: bytes, remote_path: str) -> None:
        """Uploads ``data`` as file ``remote_path``."""
        self._items.append(("data", bytes(data), _check_path(remote_path)))

    @blocking
    def commit(self) -> int:
        """Uploads everything collected; returns the block bytes sent."""
        items, self._items = self._items, []
        self.bytes_sent += self._volume._hydrate().batch_upload(items, self._force)
        return self.bytes_sent

    def __enter__(self) -> "BatchUpload":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()


def _info(d: dict) -> VolumeInfo:
    return VolumeInfo(id=d["id"], name=d["name"], ephemeral=d["ephemeral"], app=d["app"],
                      bytes=d["bytes"], files=d["files"], created=d["created"],
                      stored_bytes=d.get("stored_bytes", 0), snapshot_of=d.get("snapshot_of", ""),
                      max_bytes=d.get("max_bytes", 0), max_files=d.get("max_files", 0),
                      file_trash_seconds=d.get("file_trash_seconds", 0),
                      trash_files=d.get("trash_files", 0))


def _check_name(name: str) -> None:
    if not isinstance(name, str):
        raise InvalidArgumentError(f"a volume name is a str, not {type(name).__name__}")


def _check_path(path: "Union[str, os.PathLike[str]]") -> str:
    p = os.fspath(path)
    if not isinstance(p, str):
        raise InvalidArgumentError(f"a volume path is a str, not {type(p).__name__}")
    return p


def _read_all(f: "IO[bytes]") -> bytes:
    buf = io.BytesIO()
    while True:
        chunk = f.read(4 << 20)
        if not chunk:
            return buf.getvalue()
        if not isinstance(chunk, (bytes, bytearray)):
            raise InvalidArgumentError("write_file: the file object must be opened in binary mode")
        buf.write(chunk)
