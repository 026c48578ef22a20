"""Functions: calls in worker processes with volumes mounted (real FUSE
mounts inside `svol run`'s private namespace), results and exceptions
brought back, and Ctrl-C leaving nothing behind."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import svol
from conftest import eventually, unique


def read_and_write(path: str) -> bytes:
    with open(f"/v/{path}", "rb") as f:
        data = f.read()
    with open("/v/from-worker.txt", "wb") as f:
        f.write(b"written in a worker")
    return data


def fail(n: int) -> None:
    raise ValueError(f"boom {n}")


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("cannot pickle this")


def fail_unpicklably() -> None:
    raise Unpicklable("odd")


def square(x: int) -> "tuple[int, int]":
    time.sleep(0.3)
    return x * x, os.getpid()


def rendezvous(i: int) -> bool:
    """Both calls see each other's file: the workers share the volume live."""
    open(f"/v/ready-{i}", "w").close()
    deadline = time.time() + 30
    while not all(os.path.exists(f"/v/ready-{j}") for j in range(2)):
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


def env_and_mounts() -> "tuple[str, bool, bool, str]":
    """Both volumes mounted and usable: each mount is its own session."""
    for d in ("/v", "/w"):
        with open(f"{d}/probe", "w") as f:
            f.write(d)
    both = ""
    for d in ("/v", "/w"):
        with open(f"{d}/probe") as f:
            both += f.read()
    return os.environ.get("GREETING", ""), os.path.ismount("/v"), os.path.ismount("/w"), both


def test_remote_map_local_and_errors(server):
    app = svol.App(unique("fns"))
    v = svol.Volume.ephemeral()
    w = svol.Volume.ephemeral()
    mounts = {"/v": v}
    rw = app.function(shared_volumes=mounts)(read_and_write)
    with pytest.raises(svol.NotRunningError):
        rw.remote("x")
    assert app.function()(square).local(3)[0] == 9  # no mounts, no app needed
    with app.run():
        v.write_file("in.txt", b"from the caller")
        assert rw.remote("in.txt") == b"from the caller"
        assert v.read_bytes("from-worker.txt") == b"written in a worker"

        with pytest.raises(ValueError, match="boom 7") as e:
            app.function(shared_volumes=mounts)(fail).remote(7)
        assert "in fail" in str(e.value.__cause__) and "Traceback" in str(e.value.__cause__)
        with pytest.raises(svol.RemoteError, match="Unpicklable: odd"):
            app.function()(fail_unpicklably).remote()

        results = list(app.function(shared_volumes=mounts)(square).map(range(8), concurrency=4))
        assert [r[0] for r in results] == [x * x for x in range(8)]
        assert len({r[1] for r in results}) == 4
        assert list(app.function(shared_volumes=mounts)(rendezvous).map(range(2), concurrency=2)) == [True, True]

        probe = app.function(shared_volumes={"/v": v, "/w": w}, env={"GREETING": "hi"})(env_and_mounts)
        assert probe.remote() == ("hi", True, True, "/v/w")
        assert (v.read_bytes("probe"), w.read_bytes("probe")) == (b"/v", b"/w")
        assert not os.path.ismount("/v")  # the host never sees the mounts

    with pytest.raises(svol.InvalidArgumentError):
        app.function(shared_volumes={"relative": v})
    with pytest.raises(svol.InvalidArgumentError):
        app.function(shared_volumes={"/a/../b": v})
    with pytest.raises(svol.InvalidArgumentError):
        app.function(env={"A=B": "c"})


def test_an_ephemeral_volume_outside_a_running_app_is_refused(server):
    with pytest.raises(svol.NotRunningError, match="app.run"):
        svol.Volume.ephemeral().write_file("x", b"y")


@pytest.mark.parametrize("to_group", [True, False], ids=["ctrl-c", "sigint-to-caller-only"])
def test_ctrl_c_during_map_stops_the_workers_and_leaves_no_mount(server, tmp_path, to_group):
    tag = unique("ctrlc")
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, time
        import svol

        app = svol.App({tag!r})
        vol = svol.Volume.ephemeral()

        @app.function(shared_volumes={{"/work": vol}}, env={{"SVOL_TEST_TAG": {tag!r}}})
        def slow(i):
            open(f"/work/started-{{i}}", "w").close()
            time.sleep(600)

        with app.run():
            print("VOL", vol.id, app.app_id, flush=True)
            for _ in slow.map(range(3), concurrency=3):
                pass
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("VOL "), proc.stderr.read() if proc.stderr else line
    _, vol_id, app_id = line.split()
    vol = svol.Volume.from_name(vol_id)
    eventually("all three calls started", lambda: len(vol.listdir("/")) == 3, limit=90)

    if to_group:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        os.kill(proc.pid, signal.SIGINT)  # only the caller: it must stop its workers
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err

    def ours() -> "list[str]":
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if f"SVOL_TEST_TAG={tag}".encode() in f.read() or app_id.encode() in open(
                            f"/proc/{pid}/cmdline", "rb").read():
                        found.append(pid)
            except OSError:
                pass
        return found

    eventually("no worker or runner is left", lambda: not ours(), limit=20)
    with open("/proc/self/mountinfo") as f:
        assert " /work " not in f.read()
    # The app stopped with the script, and its ephemeral volume with it.
    eventually("the ephemeral volume is deleted", lambda: not _exists(vol_id), limit=30)


def _exists(vol_id: str) -> bool:
    try:
        svol.Volume.from_name(vol_id)
        return True
    except svol.NotFoundError:
        return False
