"""Smoke test of the Django part of benchmarks/bench_sensitive.py: every server (the
zero-hop ceiling included) answers the checked request and gives figures, on real
uvicorn servers loaded by wrk (which scripts/test installs)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
def test_every_server_answers_right_and_gives_a_row(capsys: pytest.CaptureFixture[str]) -> None:
    bench = pytest.importorskip("benchmarks.bench_sensitive")
    result = bench.django_on_uvicorn("sqlite", bench.WORKLOADS[:1], 1, 1, None)

    assert json.loads(json.dumps(result)) == result  # what the results file stores
    assert [v["bridge"] for v in result["variants"]] == [
        "asgiref",
        "crossgate",
        "crossgate",
        "inline",
    ]
    for v in range(len(bench.SERVERS)):
        (sample,) = result["samples"][f"0/{v}"]
        assert sample["error"] is None
        assert sample["requests_per_s"] > 0
        assert sample["cpu_us"] > 0
    # the ceiling runs everything on the loop's thread: no CPU on any other
    (ceiling,) = result["samples"][f"0/{bench.CEILING}"]
    assert ceiling["cpu_us"] - ceiling["loop_us"] < 0.1 * ceiling["cpu_us"]

    ratios = bench.report_django(result)
    out = capsys.readouterr().out
    assert len(ratios) == 1
    assert out.count("| ceiling: no thread hop at all") == 1
    assert "Amdahl: a bridge that cost nothing gives" in out
