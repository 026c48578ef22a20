"""The package itself: one build for the CLI and the library."""

import pathlib
import re
import subprocess
import sys

import svol


def test_the_cli_and_the_package_report_the_workspace_version():
    cargo = (pathlib.Path(__file__).parents[2] / "Cargo.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', cargo, re.M).group(1)  # type: ignore[union-attr]
    assert svol.__version__ == version
    out = subprocess.run([sys.executable, "-m", "svol", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == ["svol", version]


def test_typed_and_documented():
    root = pathlib.Path(svol.__file__).parent
    assert (root / "py.typed").exists() and (root / "_native.pyi").exists()
    for name in svol.__all__:
        obj = getattr(svol, name)
        if callable(obj) and name != "__version__":
            assert obj.__doc__, f"svol.{name} has no docstring"
    assert svol.Volume.read_file.__doc__ and svol.Volume.from_name.__doc__
