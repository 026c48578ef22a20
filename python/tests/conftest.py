"""A real svol server for the Python tests, started as `python -m svol
server` from the installed package (so the CLI in the wheel is what runs),
on a free loopback port with its own data directory. Clients find it
through SVOL_CONFIG, as a user's program would."""

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest


class Server:
    def __init__(self, data: Path, proc: "subprocess.Popen[str]", addr: str) -> None:
        self.data = data
        self.proc = proc
        self.addr = addr
        self.config = data / "client.toml"

    def block_bytes(self) -> int:
        total = 0
        for root, _, files in os.walk(self.data / "blocks"):
            for f in files:
                try:
                    total += os.lstat(os.path.join(root, f)).st_size
                except FileNotFoundError:
                    pass
        return total

    def cli(self, *args: str, env: "dict | None" = None) -> "subprocess.CompletedProcess[str]":
        e = dict(os.environ, SVOL_CONFIG=str(self.config))
        e.update(env or {})
        return subprocess.run([sys.executable, "-m", "svol", *args], env=e, text=True,
                              capture_output=True, timeout=120)


def start_server(data: Path) -> Server:
    data.mkdir(parents=True, exist_ok=True)
    log = open(data.parent / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "svol", "server", "--listen", "127.0.0.1:0", "--trash-retention", "0",
         "--data-dir", str(data),
         "--app-grace", "3s", "--lease", "3s"],
        stdout=subprocess.PIPE, stderr=log, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}; log: {(data.parent / 'server.log').read_text()}")
    addr = line.split("listening on ")[1].split()[0]
    return Server(data, proc, addr)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("server") / "data")
    old = {k: os.environ.get(k) for k in ("SVOL_CONFIG", "SVOL_SERVER", "SVOL_TOKEN")}
    os.environ.pop("SVOL_SERVER", None)
    os.environ.pop("SVOL_TOKEN", None)
    os.environ["SVOL_CONFIG"] = str(s.config)
    import svol._client

    svol._client.reset_default()
    yield s
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    svol._client.reset_default()
    s.proc.terminate()
    try:
        s.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        s.proc.kill()


def eventually(what: str, check, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit} s: {what}")
        time.sleep(0.1)


def unique(name: str) -> str:
    return f"{name}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
