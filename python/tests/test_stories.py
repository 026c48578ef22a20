"""The three stories of the shared-volume model, in Python, against a real
server with real FUSE mounts in the function workers."""

import hashlib
import os
import re

import pytest

import svol
from conftest import eventually, start_server, unique

N = 25


def increment(times: int) -> int:
    """Adds one to a shelve counter `times` times, each under a lock file."""
    import datetime
    import shelve

    from flufl.lock import Lock

    for _ in range(times):
        with Lock("/data/counter.lock", lifetime=datetime.timedelta(seconds=120)):
            with shelve.open("/data/counter") as db:
                db["n"] = db.get("n", 0) + 1
    return os.getpid()


def read_counter() -> int:
    import shelve

    with shelve.open("/data/counter") as db:
        return db["n"]


def test_concurrent_calls_count_exactly_under_a_lock_and_the_volume_goes_with_the_app(server):
    app = svol.App(unique("counter"))
    scratch = svol.SharedVolume()
    inc = app.function(shared_volumes={"/data": scratch})(increment)
    count = app.function(shared_volumes={"/data": scratch})(read_counter)
    with app.run():
        pids = list(inc.map([N] * 4, concurrency=4))
        assert len(set(pids)) == 4  # four processes really raced
        assert count.remote() == 4 * N
        vid = scratch.id
        assert svol.Volume.from_name(vid).info().ephemeral
    with pytest.raises(svol.NotFoundError):
        svol.Volume.from_name(vid)


def load_model() -> "tuple[str, str]":
    """Downloads a 'model' into TRANSFORMERS_CACHE unless it is there."""
    cache = os.environ["TRANSFORMERS_CACHE"]
    path = os.path.join(cache, "models--svol--tiny", "weights.bin")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return "cached", hashlib.sha256(f.read()).hexdigest()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    weights = os.urandom(6 << 20)
    with open(path + ".part", "wb") as f:
        f.write(weights)
    os.rename(path + ".part", path)
    return "downloaded", hashlib.sha256(weights).hexdigest()


def test_a_model_is_downloaded_once_into_a_persisted_cache(server):
    name = unique("model-cache-vol")
    seen = []
    for run in range(2):
        # As in the original API: declared at import time, no server yet.
        volume = svol.SharedVolume().persist(name)
        app = svol.App(unique("inference"))
        fn = app.function(shared_volumes={"/cache": volume}, env={"TRANSFORMERS_CACHE": "/cache"})(load_model)
        with app.run():
            seen.append(fn.remote())
    assert [s[0] for s in seen] == ["downloaded", "cached"]
    assert seen[0][1] == seen[1][1]
    vol = svol.Volume.from_name(name)
    assert hashlib.sha256(vol.read_bytes("models--svol--tiny/weights.bin")).hexdigest() == seen[0][1]
    svol.Volume.delete(name)


def fill(n_bytes: int) -> int:
    with open("/vol/data.bin", "wb") as f:
        f.write(os.urandom(n_bytes))
        os.fsync(f.fileno())
    return os.path.getsize("/vol/data.bin")


def test_stopping_a_volumes_app_deletes_it_and_frees_the_space(tmp_path):
    # A server of its own, so no other test's blocks come and go meanwhile.
    s = start_server(tmp_path / "data")
    try:
        token = re.search(r'token\s*=\s*"([^"]+)"', s.config.read_text()).group(1)  # type: ignore[union-attr]
        client = svol.Client(s.addr, token)
        name = unique("to-delete")
        before = s.block_bytes()
        app = svol.App("writer", client=client)
        vol = svol.SharedVolume().persist(name)
        writer = app.function(shared_volumes={"/vol": vol})(fill)
        with app.run():
            assert writer.remote(24 << 20) == 24 << 20
        assert s.block_bytes() >= before + (24 << 20)
        info = svol.Volume.from_name(name, client=client).info()
        assert not info.ephemeral and info.bytes == 24 << 20
        svol.App.stop_by_id(info.app, client=client)  # the dashboard's trash icon
        with pytest.raises(svol.NotFoundError):
            svol.Volume.from_name(name, client=client)
        eventually("the volume's blocks are freed", lambda: s.block_bytes() <= before, limit=60)
    finally:
        s.proc.terminate()
        s.proc.wait(timeout=15)
