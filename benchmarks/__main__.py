"""Run every benchmark module (or the ones named): ``python -m benchmarks [--quick] [name ...]``."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys

MODULES = ["calls", "wsgi_to_asgi", "asgi_to_wsgi"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run")
    parser.add_argument("names", nargs="*", metavar="name", help=f"any of {', '.join(MODULES)}")
    args, rest = parser.parse_known_args(argv)
    unknown = sorted(set(args.names) - set(MODULES))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    print(f"# crossgate benchmarks — Python {platform.python_version()}, {platform.machine()}")
    for name in args.names or MODULES:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        module.main([*(["--quick"] if args.quick else []), *rest])
        sys.stdout.flush()


if __name__ == "__main__":
    main()
