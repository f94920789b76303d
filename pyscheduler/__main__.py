"""``python -m pyscheduler``: the same command line as the ``pyscheduler`` script."""

from .tools.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
