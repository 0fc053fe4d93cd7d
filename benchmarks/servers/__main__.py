"""``python -m benchmarks.servers``: see :mod:`benchmarks.servers.cli`."""

from benchmarks.servers.cli import main

main()
