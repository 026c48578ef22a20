"""``python -m svol``: the svol command line, from this package's build."""

import os
import sys


def main() -> None:
    from . import _native

    # How to start this command line again (a detached mount re-runs it;
    # `svol run` starts a guard process): this interpreter with -m svol.
    _native.cli(sys.executable, ["-m", "svol"], sys.argv[1:])


if __name__ == "__main__":
    # The command line owns the process from here: no interpreter state,
    # threads or atexit handlers of ours may run alongside it.
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
