"""Run every benchmark module (or the ones named).

``python -m benchmarks [--quick] [--gib] [name ...] [servers options]``; ``scripts/bench``
runs this. With no name, everything runs: the in-process benchmarks (a few minutes), the
soak, the hostile clients (``hostile``, about 25 minutes; ``hostile --quick`` a few), then
``servers``, the real-server one (about 20 minutes; ``servers --quick`` about 2).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys

from benchmarks import servers

#: In-process benchmarks: modules ``benchmarks.bench_<name>`` with ``main(argv)``.
IN_PROCESS = ["calls", "wsgi_to_asgi", "asgi_to_wsgi", "translation", "fallback", "sensitive"]
#: The same convention, on real servers: the soak (10,000 requests per server, a third of
#: the clients leaving early; ``soak --quick`` a few hundred).
SOAK = ["soak"]
#: Hostile clients against crossgate and the peers on real servers (docs/robustness.md).
HOSTILE = ["hostile"]
MODULES = [*IN_PROCESS, *SOAK, *HOSTILE, "servers"]
#: Modules that also stream 1 GiB under tracemalloc when asked (--gib).
GIB_MODULES = {"wsgi_to_asgi", "asgi_to_wsgi"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run")
    parser.add_argument("--gib", action="store_true", help="also stream 1 GiB (memory check)")
    parser.add_argument("names", nargs="*", metavar="name", help=f"any of {', '.join(MODULES)}")
    servers.add_options(parser)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(MODULES))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    names = args.names or MODULES
    server_options = [n for n in servers.OPTION_NAMES if getattr(args, n) not in (None, False)]
    if server_options and "servers" not in names:
        parser.error(f"--{server_options[0].replace('_', '-')} is an option of servers only")
    print(
        f"# crossgate benchmarks — Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    for name in names:
        if name == "servers":
            servers.run_from_args(args, parser)
        else:
            module_argv = ["--quick"] if args.quick else []
            if args.gib and name in GIB_MODULES:
                module_argv.append("--gib")
            path = "benchmarks.hostile" if name in HOSTILE else f"benchmarks.bench_{name}"
            module = importlib.import_module(path)
            module.main(module_argv)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
