"""``python -m crossgate``: the ``crossgate`` command (see :mod:`crossgate.cli`)."""

from __future__ import annotations

from crossgate.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
