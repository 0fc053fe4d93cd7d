"""Reading a results document: medians per cell, the rows of a panel, and the targets.

The targets are the goals crossgate is held to on real servers (ratios to a peer or to the
native app, no workload lost to a peer, flat RSS while streaming), each computed from the
medians with what was measured and ``pass``, ``fail`` or ``n/a``.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.servers.matrix import (
    ALTERNATIVE,
    APP_WORKLOADS,
    CEILING,
    MIB,
    PANELS,
    PEER,
    WORKLOADS,
    Member,
    Panel,
)
from benchmarks.servers.measure import summarize

__all__ = [
    "cell_medians",
    "compute_targets",
    "median_rps",
    "noise",
    "panel_rows",
    "reference_member",
]

#: crossgate's default byte budget per request: what a streamed request may hold.
BUDGET = 1 * MIB


def cell_medians(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each cell's summary of its rounds (see :func:`.measure.summarize`), by cell id."""
    return {cell["id"]: summarize(cell["rounds"]) for cell in results["cells"]}


def median_rps(medians: dict[str, dict[str, Any]], key: str) -> float | None:
    """The cell's median requests/s; None when it was not measured or is invalid."""
    summary = medians.get(key)
    return summary["rps"] if summary and summary["valid"] else None


def _ratio_target(
    medians: dict[str, dict[str, Any]], name: str, ours: str, other: str, minimum: float
) -> dict[str, Any]:
    a, b = median_rps(medians, ours), median_rps(medians, other)
    target: dict[str, Any] = {"name": name, "want": f">= {minimum:g}x"}
    if a is None or b is None:
        missing = ours if a is None else other
        target.update(status="n/a", got=f"{missing}: not measured or invalid")
    else:
        ratio = a / b
        target.update(
            status="pass" if ratio >= minimum else "fail",
            got=f"{ratio:.2f}x ({a:,.0f} vs {b:,.0f} req/s)",
            ratio=round(ratio, 3),
        )
    return target


def compute_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with what was measured and pass, fail or n/a."""
    medians = cell_medians(results)
    targets = [
        _ratio_target(
            medians,
            "uvicorn + crossgate wsgi_to_asgi vs uvicorn + a2wsgi, hello-world",
            "uvicorn/crossgate_wsgi_to_asgi/hello/w1",
            "uvicorn/a2wsgi_wsgi_to_asgi/hello/w1",
            2.0,
        ),
        _ratio_target(
            medians,
            "uvicorn + crossgate wsgi_to_asgi vs the native ASGI app on uvicorn, hello-world",
            "uvicorn/crossgate_wsgi_to_asgi/hello/w1",
            "uvicorn/asgi_app/hello/w1",
            0.5,
        ),
        _ratio_target(
            medians,
            "gunicorn gthread + crossgate asgi_to_wsgi vs a2wsgi, hello-world",
            "gunicorn/crossgate_asgi_to_wsgi/hello/w1",
            "gunicorn/a2wsgi_asgi_to_wsgi/hello/w1",
            1.4,
        ),
        _ratio_target(
            medians,
            "gunicorn gthread + crossgate asgi_to_wsgi vs the native WSGI app, hello-world",
            "gunicorn/crossgate_asgi_to_wsgi/hello/w1",
            "gunicorn/wsgi_app/hello/w1",
            0.75,
        ),
    ]
    # No workload where a peer beats crossgate (requests/s, same server, same workers).
    losses, compared = [], 0
    for panel in PANELS:
        for workload, workers in panel_rows(results, panel):
            ours = median_rps(medians, f"{panel.ours.contender}/{workload}/w{workers}")
            for member in panel.members:
                if member.role != PEER:
                    continue
                theirs = median_rps(medians, f"{member.contender}/{workload}/w{workers}")
                if theirs is None:
                    continue
                compared += 1
                if ours is None or theirs > ours:
                    ratio = f"{theirs / ours:.2f}x" if ours else "crossgate invalid"
                    losses.append(f"{panel.key} {workload} w{workers}: {member.label} {ratio}")
    targets.append(
        {
            "name": "no workload where a peer beats crossgate (requests/s)",
            "want": "none lost",
            "status": "n/a" if not compared else ("pass" if not losses else "fail"),
            "got": f"{len(losses)} of {compared} comparisons lost"
            + (": " + "; ".join(losses) if losses else ""),
        }
    )
    # Streamed workloads: what a streamed request adds to the server's peak RSS (over its
    # hello-world peak) may exceed what it adds with the native app on the same server by
    # the byte budget per connection at most; buffering bodies would cost 4 MiB each.
    growths, over = [], []
    for panel in PANELS:
        reference = reference_member(panel)
        for streamed_workload in WORKLOADS.values():
            if not streamed_workload.streamed:
                continue
            for workers in results["settings"]["workers"]:
                ours = _growth(medians, panel.ours.contender, streamed_workload.name, workers)
                if ours is None:
                    continue
                native = None
                if reference is not None:
                    native = _growth(medians, reference.contender, streamed_workload.name, workers)
                conns = results["settings"]["connections_per_worker"] * workers
                label = f"{panel.key} {streamed_workload.name} w{workers}: {ours:+.0f} MiB"
                label += f" (native {native:+.0f})" if native is not None else " (no native)"
                growths.append(label)
                if ours - (native or 0.0) > conns * BUDGET / MIB:
                    over.append(label)
    targets.append(
        {
            "name": "streamed workloads with server RSS flat: crossgate's peak RSS over its "
            "hello-world peak, beyond the native app's on the same server",
            "want": "<= connections x 1 MiB budget",
            "status": "n/a" if not growths else ("pass" if not over else "fail"),
            "got": "; ".join(growths) if growths else "not measured",
        }
    )
    return targets


def reference_member(panel: Panel) -> Member | None:
    """What crossgate is held against besides its peers: the ceiling, else the alternative."""
    for role in (CEILING, ALTERNATIVE):
        for member in panel.members:
            if member.role == role:
                return member
    return None


def _growth(
    medians: dict[str, dict[str, Any]], contender: str, workload: str, workers: int
) -> float | None:
    """Peak RSS (MiB) of a workload's cell over the same server's hello-world cell."""
    base = medians.get(f"{contender}/hello/w{workers}")
    cell = medians.get(f"{contender}/{workload}/w{workers}")
    if not (base and cell and base["valid"] and cell["valid"]):
        return None
    growth: float = cell["peak_rss_mib"] - base["peak_rss_mib"]
    return growth


def panel_rows(results: dict[str, Any], panel: Panel) -> list[tuple[str, int]]:
    """(workload, workers) pairs measured for any member of the panel, in plan order."""
    seen = {
        (cell["workload"], cell["workers"])
        for cell in results["cells"]
        if any(cell["id"].startswith(m.contender + "/") for m in panel.members)
    }
    order = APP_WORKLOADS[panel.app]
    return sorted(
        (pair for pair in seen if pair[0] in order), key=lambda p: (p[1], order.index(p[0]))
    )


def noise(results: dict[str, Any]) -> float | None:
    """Median over valid cells of (max - min) / median of their rounds' requests/s."""
    spreads = []
    for cell in results["cells"]:
        values = [r["rps"] for r in cell["rounds"] if r.get("valid")]
        if len(values) > 1 and len(values) == len(cell["rounds"]):
            spreads.append((max(values) - min(values)) / statistics.median(values))
    return statistics.median(spreads) if spreads else None
