"""File operations of a volume against a real server, no mount: every call
goes over the wire and the bytes that come back are compared."""

import asyncio
import io
import os
import re
import subprocess
import sys
import textwrap
import threading

import pytest

import svol
from conftest import unique


@pytest.fixture
def vol(server):
    name = unique("files")
    v = svol.Volume.from_name(name, create_if_missing=True)
    yield v
    svol.Volume.delete(name)


def test_write_read_list_remove(vol, tmp_path):
    data = os.urandom(5 * 1024 * 1024 + 123)  # spans two blocks
    assert vol.write_file("a/b/c.bin", data) == len(data)  # parents made
    assert vol.read_bytes("a/b/c.bin") == data
    reader = vol.read_file("/a/b/c.bin")
    assert reader.size == len(data)
    chunks = list(reader)
    assert len(chunks) == 2 and b"".join(chunks) == data
    assert vol.read_file("a/b/c.bin").read() == data

    vol.write_file("a/small.txt", io.BytesIO(b"hello"))  # a file object
    entries = {e.path: e for e in vol.listdir("a")}
    assert set(entries) == {"a/b", "a/small.txt"}
    assert entries["a/b"].type is svol.FileEntryType.DIRECTORY
    assert entries["a/small.txt"].type is svol.FileEntryType.FILE
    assert entries["a/small.txt"].size == 5 and entries["a/small.txt"].mtime > 1.7e9
    tree = {e.path for e in vol.listdir("/", recursive=True)}
    assert tree == {"a", "a/b", "a/b/c.bin", "a/small.txt"}
    assert [e.path for e in vol.iterdir("a/b")] == ["a/b/c.bin"]
    assert vol.listdir("a/small.txt")[0].size == 5

    vol.write_file("a/small.txt", b"replaced")  # atomic replace
    assert vol.read_bytes("a/small.txt") == b"replaced"

    with pytest.raises(svol.IsADirectoryError):
        vol.remove_file("a")
    vol.remove_file("a/small.txt")
    assert not vol.exists("a/small.txt")
    vol.remove_file("a", recursive=True)
    assert vol.listdir("/") == []


def test_copy_files_and_batch_upload(vol, tmp_path):
    local = tmp_path / "tree"
    (local / "sub").mkdir(parents=True)
    big = os.urandom(9 * 1024 * 1024)
    (local / "big.bin").write_bytes(big)
    (local / "sub" / "x.txt").write_bytes(b"x" * 100)
    single = tmp_path / "single.bin"
    single.write_bytes(b"one file")

    with vol.batch_upload() as batch:
        batch.put_directory(local, "/tree")
        batch.put_file(single, "/single.bin")
        batch.put_data(b"from memory", "/mem.txt")
    assert batch.bytes_sent >= len(big)
    assert vol.read_bytes("tree/big.bin") == big
    assert vol.read_bytes("tree/sub/x.txt") == b"x" * 100
    assert vol.read_bytes("single.bin") == b"one file"
    assert vol.read_bytes("mem.txt") == b"from memory"

    # The same bytes again: nothing the server has is sent twice.
    with vol.batch_upload(force=True) as again:
        again.put_file(local / "big.bin", "/tree/big-copy.bin")
    assert again.bytes_sent == 0
    assert vol.read_bytes("tree/big-copy.bin") == big

    # An existing file is replaced only with force.
    with pytest.raises(svol.AlreadyExistsError):
        with vol.batch_upload() as b:
            b.put_data(b"new", "/mem.txt")
    assert vol.read_bytes("mem.txt") == b"from memory"

    vol.copy_files("tree", "tree2", recursive=True)  # on the server
    assert vol.read_bytes("tree2/big.bin") == big
    vol.copy_files(["single.bin", "mem.txt"], "tree2")
    assert vol.read_bytes("tree2/mem.txt") == b"from memory"
    with pytest.raises(svol.IsADirectoryError):
        vol.copy_files("tree", "tree3")


def test_info_and_volume_lifecycle(server):
    name = unique("life")
    with pytest.raises(svol.NotFoundError, match=name):
        svol.Volume.from_name(name)
    v = svol.Volume.from_name(name, create_if_missing=True)
    v.write_file("f", b"12345")
    info = v.info()
    assert info.name == name and not info.ephemeral and info.id == v.id
    assert info.files >= 1 and info.bytes >= 5
    assert name in {i.name for i in svol.Volume.list()}
    svol.Volume.delete(name)
    with pytest.raises(svol.NotFoundError):
        v.read_bytes("f")
    with pytest.raises(svol.NotFoundError):
        svol.Volume.delete(name)


def test_bad_input_raises_clear_errors(vol, server):
    vol.write_file("ok.txt", b"1")
    for bad in ["../etc/passwd", "a/../../b", "nul\0byte"]:
        with pytest.raises(svol.InvalidArgumentError) as e:
            vol.write_file(bad, b"x")
        assert str(e.value), bad
        with pytest.raises(svol.InvalidArgumentError):
            vol.read_bytes(bad)
    with pytest.raises(svol.InvalidArgumentError, match="255|long"):
        vol.write_file("x" * 300, b"x")
    with pytest.raises(svol.InvalidArgumentError):
        svol.Volume.from_name("bad/name", create_if_missing=True)
    with pytest.raises(svol.InvalidArgumentError):
        vol.write_file("s.txt", "a str, not bytes")  # type: ignore[arg-type]
    with pytest.raises(svol.NotFoundError, match="missing.txt"):
        vol.read_bytes("missing.txt")
    with pytest.raises(svol.NotFoundError):
        list(vol.read_file("missing.txt"))
    with pytest.raises(svol.IsADirectoryError):
        vol.read_bytes("/")
    with pytest.raises(svol.NotADirectoryError):
        vol.write_file("ok.txt/under", b"x")
    assert vol.read_bytes("ok.txt") == b"1"  # nothing above touched it
    # Builtin classes still catch them.
    with pytest.raises(FileNotFoundError):
        vol.read_bytes("missing.txt")
    with pytest.raises(ValueError):
        vol.read_bytes("../x")


def test_wrong_token_foreign_workspace_and_dead_server(vol, server, tmp_path):
    with pytest.raises(svol.AuthenticationError):
        svol.Volume.from_name(vol.name, client=svol.Client(server.addr, "sv-wrong-token"))
    # A token of another workspace sees none of this workspace's volumes.
    out = server.cli("workspace", "create", "other")
    assert out.returncode == 0, out.stderr
    tok = server.cli("token", "create", "--workspace", "other")
    assert tok.returncode == 0, tok.stderr
    secret = [w for w in tok.stdout.split() if w.startswith("sv")][-1]
    other = svol.Client(server.addr, secret)
    with pytest.raises(svol.NotFoundError):
        svol.Volume.from_name(vol.name, client=other)
    assert vol.name not in {i.name for i in svol.Volume.list(client=other)}
    # Nothing listens here (the port of a socket we bind and close).
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(svol.ConnectionError):
        svol.Volume.from_name("x", client=svol.Client(f"127.0.0.1:{port}", "sv-any"))


def test_threads_and_asyncio(vol):
    blobs = {f"t/{i}.bin": os.urandom(100_000 + i) for i in range(16)}

    def put(items):
        for p, d in items:
            vol.write_file(p, d)

    items = list(blobs.items())
    threads = [threading.Thread(target=put, args=(items[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {e.path for e in vol.listdir("t")} == set(blobs)

    async def main():
        got = await asyncio.gather(*(vol.read_bytes.aio(p) for p in blobs))
        entries = await vol.listdir.aio("t")
        chunks = [c async for c in await vol.read_file.aio("t/3.bin")]
        await vol.write_file.aio("t/async.bin", b"from asyncio")
        return got, entries, chunks

    got, entries, chunks = asyncio.run(main())
    assert got == list(blobs.values())
    assert len(entries) == 16
    assert b"".join(chunks) == blobs["t/3.bin"]
    assert vol.read_bytes("t/async.bin") == b"from asyncio"


def test_a_gibibyte_streams_in_bounded_memory(vol, tmp_path):
    size = 1 << 30
    src = tmp_path / "big.bin"
    digest_in = __import__("hashlib").blake2b()
    with open(src, "wb") as f:
        for _ in range(size // (8 << 20)):
            block = os.urandom(8 << 20)
            digest_in.update(block)
            f.write(block)
    with vol.batch_upload() as b:
        b.put_file(src, "/big.bin")
    src.unlink()
    # Read in a fresh process, sampling its anonymous memory (heap and
    # buffers; not the mapped library) while it reads.
    reader = textwrap.dedent(f"""
        import threading, time, svol
        def anon():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        v = svol.Volume.from_name({vol.name!r})
        base = anon(); peak = [base]; done = [False]
        def watch():
            while not done[0]:
                peak[0] = max(peak[0], anon()); time.sleep(0.005)
        t = threading.Thread(target=watch); t.start()
        import hashlib
        h = hashlib.blake2b(); n = 0
        for chunk in v.read_file("big.bin"):
            h.update(chunk); n += len(chunk)
        done[0] = True; t.join()
        print(n, h.hexdigest(), peak[0] - base)
    """)
    out = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    n, digest_out, grew_kib = out.stdout.split()
    assert int(n) == size
    assert digest_out == digest_in.hexdigest()
    assert int(grew_kib) < 64 * 1024, f"reading 1 GiB grew anonymous memory by {grew_kib} KiB"


def test_calls_release_the_gil(vol):
    data = os.urandom(48 << 20)
    vol.write_file("gil.bin", data)
    ticks = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        before = ticks[0]
        for _ in range(3):
            assert vol.read_bytes("gil.bin") == data
        during = ticks[0] - before
    finally:
        stop.set()
        t.join()
    # Holding the GIL through the reads would have frozen the spinner
    # (apart from the switch interval between Python-level steps).
    assert during > 10_000, f"a Python thread advanced only {during} times during three 48 MiB reads"


def test_settings_precedence_arguments_then_environment_then_config_file(vol, server, monkeypatch):
    good = re.search(r'token\s*=\s*"([^"]+)"', server.config.read_text()).group(1)  # type: ignore[union-attr]
    monkeypatch.setenv("SVOL_TOKEN", "sv-not-a-real-token")  # beats the config file
    with pytest.raises(svol.AuthenticationError):
        svol.Client()
        svol.Volume.from_name(vol.name, client=svol.Client())
    # An argument beats the environment.
    assert svol.Volume.from_name(vol.name, client=svol.Client(token=good)).id == vol.id
    monkeypatch.delenv("SVOL_TOKEN")
    monkeypatch.setenv("SVOL_CONFIG", "/nonexistent/svol.toml")
    with pytest.raises(svol.InvalidArgumentError, match="SVOL_CONFIG"):
        svol.Client()


def test_an_ephemeral_volume_persisted_after_use_outlives_its_app(server):
    name = unique("kept")
    app = svol.App(unique("persist"))
    vol = svol.Volume.ephemeral()
    with app.run():
        vol.write_file("checkpoint.bin", b"epoch 3")
        assert vol.info().ephemeral
        vol.persist(name)
        assert vol.name == name
    kept = svol.Volume.from_name(name)
    assert not kept.info().ephemeral and kept.read_bytes("checkpoint.bin") == b"epoch 3"
    svol.Volume.delete(name)


def test_snapshots_restore_and_clone(vol):
    data = os.urandom(300_000)
    vol.write_file("model.bin", data)
    snap = vol.snapshot("v1")
    assert snap.name == f"{vol.name}@v1"
    assert snap.info().snapshot_of == vol.id
    vol.write_file("model.bin", b"overwritten")
    vol.write_file("extra.txt", b"new")
    assert snap.read_bytes("model.bin") == data  # as of the snapshot
    with pytest.raises(svol.FileSystemError) as e:  # read-only
        snap.write_file("x", b"y")
    assert e.value.errno == 30  # EROFS
    assert [s.name for s in vol.snapshots()] == [f"{vol.name}@v1"]
    assert svol.Volume.from_name(f"{vol.name}@v1").read_bytes("model.bin") == data

    copy_name = unique("clone")
    copy = svol.Volume.clone(f"{vol.name}@v1", copy_name)
    copy.write_file("mine.txt", b"writable")
    assert copy.read_bytes("model.bin") == data
    assert not snap.exists("mine.txt")
    svol.Volume.delete(copy_name)

    vol.restore("v1")
    assert vol.read_bytes("model.bin") == data
    assert not vol.exists("extra.txt")
    # This server keeps no trash: a delete is final.
    assert svol.Volume.trash() == []


def test_removed_files_wait_in_the_volume_trash(vol):
    assert vol.info().file_trash_seconds == 0
    assert vol.set_file_trash(3600).file_trash_seconds == 3600
    data = os.urandom(200_000)
    vol.write_file("runs/a/model.bin", data)
    vol.write_file("runs/a/log.txt", b"epoch 1")
    vol.remove_file("runs", recursive=True)
    assert not vol.exists("runs")
    kept = vol.deleted_files()
    assert sorted(f.path for f in kept) == ["runs/a/log.txt", "runs/a/model.bin"]
    assert {f.path: f.size for f in kept}["runs/a/model.bin"] == len(data)
    assert vol.info().trash_files == 2
    assert [f.path for f in vol.deleted_files("runs/a/model.bin")] == ["runs/a/model.bin"]

    vol.write_file("runs/a/log.txt", b"epoch 2")
    with pytest.raises(svol.AlreadyExistsError):
        vol.undelete("runs")  # all or nothing: log.txt is taken
    assert not vol.exists("runs/a/model.bin")
    moved = vol.undelete("runs", to="old-runs")
    assert sorted(moved) == [("runs/a/log.txt", "old-runs/a/log.txt"),
                             ("runs/a/model.bin", "old-runs/a/model.bin")]
    assert vol.read_bytes("old-runs/a/model.bin") == data
    assert vol.read_bytes("old-runs/a/log.txt") == b"epoch 1"

    vol.remove_file("old-runs/a/log.txt")
    assert vol.purge_deleted_files() == 1
    assert vol.deleted_files() == []
    with pytest.raises(svol.NotFoundError):
        vol.undelete("old-runs/a/log.txt")
    info = vol.set_quota(max_files=1000)
    assert (info.max_files, info.max_bytes) == (1000, 0)
