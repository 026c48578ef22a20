"""A real svol server (the binary cargo built) and headless Chromium
(Debian's, driven by Playwright) for the dashboard's end-to-end tests.
Screenshots of every page land in target/browser-screenshots/."""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
SVOL = Path(os.environ.get("SVOL_BIN", ROOT / "target" / "debug" / "svol"))
SHOTS = ROOT / "target" / "browser-screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Server:
    def __init__(self, root: Path, tls: bool = False, retention: str = "0") -> None:
        self.root = root
        self.data = root / "data"
        self.log = open(root / "server.log", "w")
        extra: list = []
        if tls:
            pki = root / "pki"
            out = subprocess.run([str(SVOL), "server", "init-tls", "--host", "127.0.0.1", "--dir", str(pki)],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            extra = ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
                     "--tls-ca", str(pki / "ca.pem")]
        self.proc = subprocess.Popen(
            [str(SVOL), "server", "--listen", "127.0.0.1:0", "--data-dir", str(self.data),
             "--trash-retention", retention, *extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening on " in line, (root / "server.log").read_text()
        self.addr = line.split("listening on ")[1].split()[0]
        self.url = f"{'https' if tls else 'http'}://{self.addr}"
        self.config = self.data / "client.toml"
        self.token = re.search(r'token\s*=\s*"([^"]+)"', self.config.read_text()).group(1)  # type: ignore[union-attr]

    def cli(self, *args: str, token: "str | None" = None, check: bool = True) -> str:
        env = dict(os.environ, SVOL_CONFIG=str(self.config))
        if token:
            env["SVOL_TOKEN"] = token
        out = subprocess.run([str(SVOL), *args], env=env, capture_output=True, text=True, timeout=120)
        if check:
            assert out.returncode == 0, f"svol {' '.join(args)}: {out.stderr}"
        return out.stdout.strip()

    def block_bytes(self) -> int:
        total = 0
        for root, _, files in os.walk(self.data / "blocks"):
            for f in files:
                try:
                    total += os.lstat(os.path.join(root, f)).st_size
                except FileNotFoundError:
                    pass
        return total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def server() -> Iterator[Server]:
    root = Path(tempfile.mkdtemp(prefix="svol-browser-"))
    s = Server(root)
    yield s
    s.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tls_server() -> Iterator[Server]:
    root = Path(tempfile.mkdtemp(prefix="svol-browser-tls-"))
    s = Server(root, tls=True)
    yield s
    s.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "chromium is not installed (scripts/test.sh installs it)"
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(accept_downloads=True)
    pg = ctx.new_page()
    dialogs = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs  # type: ignore[attr-defined]
    yield pg
    ctx.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def eventually(what: str, check, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit} s: {what}")
        time.sleep(0.1)
