"""The benchmark (bench/run.py) still runs end to end: a tiny run, so it cannot rot.

It asserts what the run prints and that it cleans up, never a timing. It needs wrk, valgrind
and a real PostgreSQL server (tests/needs.py: skipped without them, failed under CI).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.needs import need_postgres, need_tools
from tests.toolchain import process_alive

ROOT = Path(__file__).resolve().parents[1]
ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
WHY_POSTGRES = "the benchmark's baseline app needs a real server; BENCH_ADMIN_DSN names another"


def run_bench(*args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run bench/run.py with `args`; assert it succeeded, return it and its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "bench/run.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, output
    return result, output


@pytest.mark.slow
def test_benchmark_prints_the_table_and_stops_both_servers() -> None:
    need_tools("wrk")
    need_postgres(ADMIN_DSN, WHY_POSTGRES)
    result, output = run_bench(
        "--duration", "1", "--connections", "10", "--repeat", "1", "--warmup", "0", "--items", "200"
    )

    header = next(line for line in result.stdout.splitlines() if line.startswith("| endpoint"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    for column in (
        "service req/s",
        "baseline req/s",
        "ratio",
        "p50 ms s / b",
        "p99 ms s / b",
        "errors s / b",
        "timeouts s / b",
        "RSS MiB s / b",
        "RSS ratio",
    ):
        assert column in columns, (column, header)
    rows = {
        cells[0]: dict(zip(columns, cells, strict=True))
        for line in result.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| endpoint")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    assert set(rows) == {"health", "get", "list", "create"}, output
    for endpoint, row in rows.items():
        assert row["conns"] == "10"
        assert float(row["service req/s"].replace(",", "")) > 0, (endpoint, row)
        assert float(row["baseline req/s"].replace(",", "")) > 0, (endpoint, row)
        # Non-2xx answers or socket errors mean the two apps or the load script disagree
        # (a wrong id, a duplicate name, a crash), whatever the machine's speed.
        assert row["errors s / b"] == "0 / 0", (endpoint, row)
    assert "load average before" in result.stdout

    pids = [int(pid) for pid in re.findall(r"(?:service|baseline) pid (\d+)", result.stderr)]
    assert len(pids) == 2, result.stderr
    assert not [pid for pid in pids if process_alive(pid)], "a server outlived the benchmark"


@pytest.mark.slow
def test_instruction_count_prints_a_figure_per_endpoint_and_app() -> None:
    need_tools("valgrind")
    need_postgres(ADMIN_DSN, WHY_POSTGRES)
    result, output = run_bench("--instructions", "5", "--items", "200")
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| endpoint")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    assert set(rows) == {"health", "get", "list"}, output
    for endpoint, (service, baseline, _ratio) in rows.items():
        # Python, FastAPI and a lifespan cost far more than 10,000 instructions a request:
        # a smaller figure means the counting window missed the requests.
        assert int(service.replace(",", "")) > 10_000, (endpoint, output)
        assert int(baseline.replace(",", "")) > 10_000, (endpoint, output)
