"""Smoke tests of the real-server benchmark (the benchmarks/servers package).

One short cell pair on a real uvicorn (needs wrk, which scripts/test installs), and
rendering the page and chart from a small made-up results document (needs no wrk).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from benchmarks import servers
from benchmarks.__main__ import main as bench_main

pytestmark = pytest.mark.integration


@pytest.mark.timeout(90)
def test_one_server_cells_give_valid_rows_of_the_documented_shape() -> None:
    """hello-world and the 1 MiB upload (wrk's Lua POST body) through crossgate on uvicorn."""
    settings = servers.Settings(
        rounds=1,
        duration=1,
        warmup=0.2,
        workers=(1,),
        workloads=("hello", "upload"),
        only=r"^uvicorn/crossgate_wsgi_to_asgi/",
    )
    cells = servers.plan(settings)
    assert [cell.id for cell in cells] == [
        "uvicorn/crossgate_wsgi_to_asgi/hello/w1",
        "uvicorn/crossgate_wsgi_to_asgi/upload/w1",
    ]
    lines: list[str] = []
    results = servers.run(settings, cells, log=lines.append)

    assert len(lines) == 2
    assert json.loads(json.dumps(results)) == results  # what --write-docs stores
    assert results["schema"] == servers.SCHEMA
    assert results["machine"]["cpus"] >= 1
    assert results["versions"]["uvicorn"]
    for cell in results["cells"]:
        (record,) = cell["rounds"]
        assert record["valid"], record.get("reason")
        assert record["requests"] > 0
        assert record["rps"] > 0
        assert record["p99_ms"] > 0
        assert record["peak_rss_kib"] > 10 * 1024  # a Python server holds more than 10 MiB
        assert record["floor_us"] > 0
        assert not any(record["errors"].values())
        assert cell["median"] == {
            "valid": True,
            "rounds": 1,
            "rps": record["rps"],
            "p99_ms": record["p99_ms"],
            "peak_rss_mib": round(record["peak_rss_kib"] / 1024, 1),
        }
    statuses = {t["name"]: t["status"] for t in results["targets"]}
    assert (
        statuses["uvicorn + crossgate wsgi_to_asgi vs uvicorn + a2wsgi, hello-world"] == "n/a"
    )  # a2wsgi was not measured


def test_a_round_with_failing_responses_makes_the_cell_invalid() -> None:
    good = {"valid": True, "rps": 100.0, "p99_ms": 2.0, "peak_rss_kib": 2048}
    bad = {"valid": False, "reason": "wrk errors: status 3"}
    summary = servers.summarize([good, bad, good])
    assert summary == {"valid": False, "rounds": 3, "reason": "wrk errors: status 3"}
    assert "rps" not in summary


def test_medians_of_rounds() -> None:
    rounds = [
        {"valid": True, "rps": rps, "p99_ms": p99, "peak_rss_kib": rss}
        for rps, p99, rss in [(90.0, 3.0, 1024), (120.0, 1.0, 3072), (100.0, 2.0, 2048)]
    ]
    assert servers.summarize(rounds) == {
        "valid": True,
        "rounds": 3,
        "rps": 100.0,
        "p99_ms": 2.0,
        "peak_rss_mib": 3.0,  # the peak: the largest of the rounds
    }


def _fake_results(rps: dict[str, float], rss_kib: dict[str, int]) -> dict[str, Any]:
    """A results document for every planned cell: requests/s and peak RSS by cell id
    prefix (first match), 1000 req/s and 64 MiB otherwise; asgiref's cells invalid."""
    settings = servers.Settings()
    doc: dict[str, Any] = {
        "schema": servers.SCHEMA,
        "settings": {
            "rounds": 2,
            "duration_s": 2,
            "warmup_s": 0.5,
            "workers": [1, 2],
            "connections_per_worker": 16,
            "server_threads": 16,
            "wrk_threads": 1,
            "only": None,
            "quick": False,
        },
        "machine": {
            "cpu": "Test CPU",
            "cpus": 2,
            "memory_gib": 4.0,
            "system": "Linux",
            "python": "CPython 3.11",
            "wrk": "wrk 4.1.0",
        },
        "versions": {"crossgate": "0.1.0", "a2wsgi": "1.10"},
        "conditions": {"note": "made up for a test", "loadavg_start": [0.5, 0, 0]},
        "cells": [],
    }
    for cell in servers.plan(settings):
        value = next((v for k, v in rps.items() if cell.id.startswith(k)), 1000.0)
        rss = next((v for k, v in rss_kib.items() if cell.id.startswith(k)), 64 * 1024)
        if "asgiref" in cell.id:
            rounds: list[dict[str, Any]] = [{"valid": False, "reason": "wrk errors: status 7"}]
        else:
            rounds = [
                {
                    "valid": True,
                    "rps": value * f,
                    "p99_ms": 5.0,
                    "peak_rss_kib": rss,
                    "floor_us": floor,
                }
                for f, floor in ((0.9, 8.0), (1.1, 60.0))
            ]
        doc["cells"].append(servers.cell_record(cell, rounds))
    return doc


FAKE_RPS = {
    "uvicorn/crossgate_wsgi_to_asgi/hello/w1": 10_000.0,
    "uvicorn/a2wsgi_wsgi_to_asgi/hello/w1": 4_000.0,
    "uvicorn/asgi_app/hello/w1": 25_000.0,
    "gunicorn/crossgate_asgi_to_wsgi/hello/w1": 1_000.0,
    "gunicorn/a2wsgi_asgi_to_wsgi/hello/w1": 800.0,
    "gunicorn/wsgi_app/hello/w1": 1_250.0,
    "uvicorn/uvicorn_wsgi_to_asgi/download/w1": 2_000.0,  # beats crossgate's 1000
}
#: crossgate's download on waitress holds 40 MiB more than its hello-world, the native
#: app 10 MiB more: 30 MiB beyond the native > 16 connections x 1 MiB.
FAKE_RSS = {
    "waitress/crossgate_asgi_to_wsgi/download/w1": 104 * 1024,
    "waitress/wsgi_app/download/w1": 74 * 1024,
}


def test_targets_are_computed_from_the_medians() -> None:
    targets = {t["name"]: t for t in servers.compute_targets(_fake_results(FAKE_RPS, FAKE_RSS))}
    a2wsgi = targets["uvicorn + crossgate wsgi_to_asgi vs uvicorn + a2wsgi, hello-world"]
    assert (a2wsgi["status"], a2wsgi["ratio"]) == ("pass", 2.5)
    native = targets[
        "uvicorn + crossgate wsgi_to_asgi vs the native ASGI app on uvicorn, hello-world"
    ]
    assert (native["status"], native["ratio"]) == ("fail", 0.4)
    gunicorn = targets["gunicorn gthread + crossgate asgi_to_wsgi vs a2wsgi, hello-world"]
    assert (gunicorn["status"], gunicorn["ratio"]) == ("fail", 1.25)
    ceiling = targets[
        "gunicorn gthread + crossgate asgi_to_wsgi vs the native WSGI app, hello-world"
    ]
    assert (ceiling["status"], ceiling["ratio"]) == ("pass", 0.8)
    losses = targets["no workload where a peer beats crossgate (requests/s)"]
    assert losses["status"] == "fail"
    assert losses["got"].startswith("1 of ")
    assert "wsgi-uvicorn download w1: uvicorn's 2.00x" in losses["got"]
    (flat,) = [t for t in targets.values() if t["name"].startswith("streamed workloads")]
    assert flat["status"] == "fail"
    assert "asgi-waitress download w1: +40 MiB (native +10)" in flat["got"]


def test_docs_render_a_table_per_panel_and_a_png_chart(tmp_path: Path) -> None:
    md, png = tmp_path / "benchmarks.md", tmp_path / "benchmarks.png"
    servers.render_docs(_fake_results(FAKE_RPS, FAKE_RSS), md, png)

    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert png.stat().st_size > 20_000
    text = md.read_text()
    assert "](benchmarks.png)" in text
    for panel in servers.PANELS:
        assert f"## {panel.title}" in text
    assert "made up for a test" in text
    # crossgate's row against the best peer and the ceiling, from the medians.
    hello = next(line for line in text.splitlines() if line.startswith("| hello-world | 1 |"))
    assert "**10,000/s · 5.0 ms · 64 MiB**" in hello
    assert "2.50x (a2wsgi)" in hello
    assert hello.endswith("| 0.40x |")
    assert "`uvicorn/asgiref_wsgi_to_asgi/hello/w1`: wrk errors: status 7" in text
    assert "| **FAIL** |" in text
    # Every fake cell's rounds are its value x 0.9 and x 1.1: a spread of 20%.
    assert "the rounds of one cell differ by 20%" in text
    # crossgate's hello-world: 10,000/s with 1 worker, 1,000/s (the default) with 2.
    assert "hello-world: crossgate 0.10x, a2wsgi 0.25x" in text
    assert "median 34 µs per round trip, from 8 to 60 µs" in text


def test_bench_refuses_server_options_without_servers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_main(["calls", "--only", "hello"])
    assert exc.value.code == 2
    assert "--only is an option of servers only" in capsys.readouterr().err
