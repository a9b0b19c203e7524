"""The benchmark (bench/run.py) still runs end to end: a tiny run, so it cannot rot.

It asserts what the run prints and that it cleans up, never a timing. It needs wrk, valgrind
and a real PostgreSQL server (tests/needs.py: skipped without them, failed under CI).
"""

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.matrix import render
from tests.needs import need_postgres, need_tools
from tests.toolchain import process_alive, sync

ROOT = Path(__file__).resolve().parents[1]
ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
WHY_POSTGRES = "the benchmark's baseline app needs a real server; BENCH_ADMIN_DSN names another"


def bench_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTEST_"))}
    return env | extra


def run_bench(*args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run bench/run.py with `args`; assert it succeeded, return it and its output."""
    env = bench_env()
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
def test_benchmark_prints_the_tables_and_stops_every_server() -> None:
    """With an observability choice the bare service runs beside it, and with --floor the
    session floor (bench/floor.py): a table more for each."""
    need_tools("wrk")
    need_postgres(ADMIN_DSN, WHY_POSTGRES)
    result, output = run_bench(
        "--duration", "1", "--connections", "10", "--repeat", "1", "--warmup", "0",
        "--items", "200", "--observability", "prometheus", "--floor",
    )  # fmt: skip

    service_table, cost_table = result.stdout.split("against the same service with none")
    cost_table, floor_table = cost_table.split("The session floor")
    columns, rows = markdown_table(service_table)
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
        assert column in columns, (column, columns)
    assert set(rows) == {"health", "get", "list", "create"}, output
    for endpoint, row in rows.items():
        assert row["conns"] == "10"
        assert float(row["service req/s"].replace(",", "")) > 0, (endpoint, row)
        assert float(row["baseline req/s"].replace(",", "")) > 0, (endpoint, row)
        # Non-2xx answers or socket errors mean the two apps or the load script disagree
        # (a wrong id, a duplicate name, a crash), whatever the machine's speed.
        assert row["errors s / b"] == "0 / 0", (endpoint, row)
    assert "load average before" in result.stdout

    _, costs = markdown_table(cost_table)
    assert set(costs) == {"health", "get", "list", "create"}, output
    for endpoint, row in costs.items():
        assert float(row["none req/s"].replace(",", "")) > 0, (endpoint, row)
        assert float(row["prometheus req/s"].replace(",", "")) > 0, (endpoint, row)
        assert row["throughput cost"].endswith("%"), (endpoint, row)
        assert row["errors none / prometheus"] == "0 / 0", (endpoint, row)
    assert re.search(r"- (met |MISS) prometheus get @10 throughput cost: ", cost_table), output

    _, floors = markdown_table(floor_table)
    assert set(floors) == {"health", "get", "list", "create"}, output
    for endpoint, row in floors.items():
        assert float(row["floor req/s"].replace(",", "")) > 0, (endpoint, row)
        assert float(row["service / floor"]) > 0, (endpoint, row)
        assert row["errors floor"] == "0", (endpoint, row)

    pids = re.findall(r"(?:service|bare|floor|baseline) pid (\d+)", result.stderr)
    pids = [int(pid) for pid in pids]
    assert len(pids) == 4, result.stderr
    assert not [pid for pid in pids if process_alive(pid)], "a server outlived the benchmark"


def markdown_table(text: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The first markdown table in `text`: its columns, and each row by its first cell."""
    header, _, *lines = text[text.index("| endpoint") :].split("\n\n")[0].splitlines()

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip("|").split("|")]

    columns = cells(header)
    return columns, {row[0]: dict(zip(columns, row, strict=True)) for row in map(cells, lines)}


@pytest.mark.slow
def test_instruction_count_prints_a_figure_per_endpoint_and_app(bench_project: Path) -> None:
    need_tools("valgrind")
    result, output = run_bench(
        # One endpoint (--endpoints picks it): each count is an app start under valgrind.
        "--instructions",
        "5",
        "--items",
        "200",
        "--endpoints",
        "get",
        "--project",
        str(bench_project),
        "--floor",
    )
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| endpoint")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    assert set(rows) == {"get"}, output
    for endpoint, (service, baseline, _ratio, floor, _floor_ratio, _against) in rows.items():
        # Python, FastAPI and a lifespan cost far more than 10,000 instructions a request:
        # a smaller figure means the counting window missed the requests.
        for count in (service, baseline, floor):
            assert int(count.replace(",", "")) > 10_000, (endpoint, output)


@pytest.fixture(scope="module")
def bench_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The service the benchmark renders (bench/run.py's answers), rendered and synced once
    for the tests that pass it with --project."""
    need_postgres(ADMIN_DSN, WHY_POSTGRES)
    project = tmp_path_factory.mktemp("bench") / "bench-service"
    answers = {"database": "postgresql", "example_resource": True, "ci": "none", "docker": False}
    answers["observability"] = "none"  # bench/run.py's default: the bare service
    render(project, {"project_name": "Bench Service", "python_version": "3.12", **answers})
    sync(project, "3.12")
    yield project


def database_exists(project: Path, name: str) -> bool:
    query = (
        "import asyncio, asyncpg, sys\n"
        "async def main():\n"
        "    connection = await asyncpg.connect(sys.argv[1])\n"
        "    found = await connection.fetchval('SELECT 1 FROM pg_database WHERE datname = $1', sys.argv[2])\n"
        "    await connection.close()\n"
        "    print(bool(found))\n"
        "asyncio.run(main())\n"
    )
    python = str(project / ".venv" / "bin" / "python")
    result = subprocess.run(
        [python, "-c", query, ADMIN_DSN, name], capture_output=True, text=True, check=True
    )
    return result.stdout.strip() == "True"


def start_bench(project: Path, **env: str) -> subprocess.Popen[str]:
    """A benchmark far longer than any test: only a signal or a failure ends it."""
    args = ["--project", str(project), "--duration", "600", "--connections", "10"]
    args += ["--repeat", "1", "--warmup", "0", "--items", "200", "--endpoints", "get"]
    return subprocess.Popen(
        [sys.executable, "bench/run.py", *args],
        cwd=ROOT,
        env=bench_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_benchmark_stops_both_servers_and_drops_its_database(
    bench_project: Path, signum: signal.Signals
) -> None:
    need_tools("wrk")
    bench = start_bench(bench_project)
    database = f"copier_bench_{bench.pid}"
    assert bench.stderr is not None
    seen: list[str] = []
    pids: list[int] = []
    for line in bench.stderr:  # until both servers answer: wrk is loading them now
        seen.append(line)
        pids += [int(pid) for pid in re.findall(r"(?:service|baseline) pid (\d+)", line)]
        if len(pids) == 2:
            break
    assert len(pids) == 2, "".join(seen)
    assert database_exists(bench_project, database), "the run never created its database"

    bench.send_signal(signum)
    _, rest = bench.communicate(timeout=120)

    output = "".join(seen) + rest
    assert bench.returncode == 130, output
    assert "interrupted: stopping the servers" in rest, output
    assert not [pid for pid in pids if process_alive(pid)], "a server outlived the benchmark"
    assert not database_exists(bench_project, database), "the benchmark left its database"


@pytest.mark.slow
def test_failing_benchmark_drops_its_database(bench_project: Path) -> None:
    need_tools("wrk")
    # A setting the service rejects: its migration step fails after the database exists.
    bench = start_bench(bench_project, BENCH_SERVICE_DATABASE_POOL_SIZE="0")
    database = f"copier_bench_{bench.pid}"
    output, errors = bench.communicate(timeout=300)

    assert bench.returncode == 1, output + errors
    assert "command failed" in errors and "database_pool_size" in errors.lower(), errors
    assert "migrating and seeding" in errors, "the failure came before the database existed"
    assert not database_exists(bench_project, database), "the benchmark left its database"


@pytest.mark.slow
def test_sqlite_write_benchmark_prints_a_row_per_point() -> None:
    """bench/sqlite_writes.py, at HEAD only, one short point: it renders, serves and loads."""
    need_tools("wrk")
    result = subprocess.run(
        [sys.executable, "bench/sqlite_writes.py", "--duration", "1", "--connections", "4",
         "--repeat", "1"],
        cwd=ROOT, env=bench_env(), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, output
    rows = [line for line in result.stdout.splitlines() if line.startswith("| HEAD |")]
    assert len(rows) == 1, output
    _, connections, rps, _, _, errors = (cell.strip() for cell in rows[0].strip("|").split("|"))
    assert connections == "4"
    assert float(rps.replace(",", "")) > 0, output
    # Non-2xx answers mean the load script and the service disagree (a duplicate name).
    assert errors == "0", output
