"""The command line: ``python -m benchmarks.servers`` and the options ``python -m benchmarks``
(so ``scripts/bench servers``) shares."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.integration.support import REPO

from benchmarks.servers.matrix import QUICK, SCALING_WORKLOADS, WORKLOADS, Settings, plan
from benchmarks.servers.render import CHART, DOC, render_docs, render_markdown
from benchmarks.servers.run import RESULTS, estimate_seconds, run, write_results

__all__ = ["OPTION_NAMES", "add_options", "main", "run_from_args"]


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def _names(text: str) -> tuple[str, ...]:
    names = tuple(part for part in text.split(",") if part)
    unknown = sorted(set(names) - set(WORKLOADS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown workload {', '.join(unknown)}")
    return names


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of this benchmark (``--quick`` aside): ``python -m benchmarks`` shares them."""
    group = parser.add_argument_group("real-server benchmark (servers)")
    group.add_argument("--only", metavar="REGEX", help="cells whose id matches (re.search)")
    group.add_argument("--workers", type=_ints, help="server worker counts (default 1,2)")
    group.add_argument("--rounds", type=int, help="rounds per cell (default 3)")
    group.add_argument("--duration", type=int, help="whole seconds of wrk per cell (default 2)")
    group.add_argument("--workloads", type=_names, help=f"any of {','.join(WORKLOADS)}")
    group.add_argument(
        "--scaling-workloads",
        type=_names,
        help=f"workloads run with more than 1 worker too (default {','.join(SCALING_WORKLOADS)})",
    )
    group.add_argument("--note", help="a sentence on the run's conditions, for the page")
    group.add_argument(
        "--write-docs",
        action="store_true",
        help="write benchmarks/results/servers.json, docs/benchmarks.md and docs/benchmarks.png",
    )
    group.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    group.add_argument(
        "--from-json",
        nargs="?",
        const=str(RESULTS),
        metavar="PATH",
        help="run nothing: re-render the docs from this JSON (default: the committed one)",
    )


#: The destinations of add_options, for callers that check whether any was given.
OPTION_NAMES = (
    "only",
    "workers",
    "rounds",
    "duration",
    "workloads",
    "scaling_workloads",
    "note",
    "write_docs",
    "json",
    "from_json",
)


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Do what the parsed options of :func:`add_options` (and ``--quick``) ask."""
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        render_docs(results)
        print(f"wrote {DOC.relative_to(REPO)} and {CHART.relative_to(REPO)} from {args.from_json}")
        return
    base = QUICK if args.quick else Settings()

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    settings = Settings(
        rounds=pick(args.rounds, base.rounds),
        duration=pick(args.duration, base.duration),
        warmup=base.warmup,
        workers=pick(args.workers, base.workers),
        workloads=pick(args.workloads, base.workloads),
        scaling_workloads=pick(args.scaling_workloads, base.scaling_workloads),
        only=args.only,
        quick=args.quick,
        note=args.note or "",
    )
    cells = plan(settings)
    if not cells:
        parser.error("no real-server cell matches the selection")
    print(
        f"## servers: {len(cells)} cells x {settings.rounds} round(s), "
        f"about {estimate_seconds(cells, settings) / 60:.0f} min",
        flush=True,
    )
    results = run(settings, cells, log=lambda line: print(line, flush=True))
    print()
    print(render_markdown(results))
    if args.json:
        write_results(results, args.json)
    if args.write_docs:
        write_results(results)
        render_docs(results)
        print(
            f"wrote {RESULTS.relative_to(REPO)}, {DOC.relative_to(REPO)}, {CHART.relative_to(REPO)}"
        )
    failed = [t for t in results["targets"] if t["status"] == "fail"]
    if failed:
        print(f"{len(failed)} target(s) missed: " + "; ".join(t["name"] for t in failed))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.servers",
        description="crossgate and its peers on real servers, loaded by wrk",
    )
    parser.add_argument(
        "--quick", action="store_true", help="about 2 min: 1 round of 1 s, hello+download, w1"
    )
    add_options(parser)
    run_from_args(parser.parse_args(argv), parser)
