"""Run every benchmark module (or the ones named).

``python -m benchmarks [--quick] [--gib] [name ...]``; ``scripts/bench`` runs this.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys

MODULES = ["calls", "wsgi_to_asgi", "asgi_to_wsgi"]
#: Modules that also stream 1 GiB under tracemalloc when asked (--gib).
GIB_MODULES = {"wsgi_to_asgi", "asgi_to_wsgi"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run")
    parser.add_argument("--gib", action="store_true", help="also stream 1 GiB (memory check)")
    parser.add_argument("names", nargs="*", metavar="name", help=f"any of {', '.join(MODULES)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(MODULES))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    print(
        f"# crossgate benchmarks — Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    for name in args.names or MODULES:
        module_argv = ["--quick"] if args.quick else []
        if args.gib and name in GIB_MODULES:
            module_argv.append("--gib")
        module = importlib.import_module(f"benchmarks.bench_{name}")
        module.main(module_argv)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
