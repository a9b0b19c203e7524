"""The `database=postgresql` option beyond what every variant's own suite checks: the local
stack and CI provide a server, every database setting is documented, and the generated
suite stops clearly without a server and leaves no database behind (the embedded server:
tests/test_embedded_postgres.py)."""

import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.matrix import RENDERS, params, render
from tests.needs import unavailable
from tests.toolchain import TEST_DATABASE_URL, UV, run, sync

PACKAGE = "matrix_service"
POSTGRES = sorted(c for c, a in RENDERS.answers.items() if a["database"] == "postgresql")


def project(combo: str) -> Path:
    return RENDERS.project(combo)


def answers(combo: str) -> dict[str, Any]:
    return RENDERS.answers[combo]


def test_postgresql_is_in_the_matrix() -> None:
    assert POSTGRES


@pytest.mark.parametrize("combo", params([c for c in POSTGRES if answers(c)["docker"]]))
def test_compose_starts_the_app_after_a_healthy_postgres_and_the_migrations(combo: str) -> None:
    services = yaml.safe_load((project(combo) / "compose.yaml").read_text())["services"]
    assert services["postgres"]["healthcheck"]["test"]
    assert services["app"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["app"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["migrate"]["command"] == [PACKAGE, "db", "upgrade"]
    url_variable = f"{PACKAGE.upper()}_DATABASE_URL"
    for service in ("app", "migrate"):
        url = services[service]["environment"][url_variable]
        assert url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in url


@pytest.mark.parametrize("combo", params([c for c in POSTGRES if answers(c)["ci"] != "none"]))
def test_ci_runs_the_tests_against_a_postgres_service(combo: str) -> None:
    if answers(combo)["ci"] == "github":
        job = yaml.safe_load((project(combo) / ".github/workflows/ci.yml").read_text())["jobs"][
            "test"
        ]
        assert job["services"]["postgres"]["image"].startswith("postgres:")
        assert "--health-cmd" in job["services"]["postgres"]["options"]
        url = job["env"]["TEST_DATABASE_URL"]
        assert "@127.0.0.1:5432/" in url
    else:
        job = yaml.safe_load((project(combo) / ".gitlab-ci.yml").read_text())["test"]
        assert [s["alias"] for s in job["services"]] == ["postgres"]
        url = job["variables"]["TEST_DATABASE_URL"]
        assert "@postgres:5432/" in url
    assert url.startswith("postgresql+asyncpg://")


@pytest.mark.parametrize("combo", POSTGRES[:1])
def test_every_database_setting_is_documented(combo: str) -> None:
    root = project(combo)
    settings = (root / f"src/{PACKAGE}/core/db/engine.py").read_text()
    fields = re.findall(r"^    (database_\w+):", settings, flags=re.MULTILINE)
    assert "database_pool_pre_ping" in fields
    env_example = (root / ".env.example").read_text()
    readme = (root / "README.md").read_text()
    for field in fields:
        variable = f"{PACKAGE.upper()}_{field.upper()}"
        if field != "database_echo":
            assert f"{variable}=" in env_example, variable
        short = variable.removeprefix(f"{PACKAGE.upper()}_DATABASE")
        assert variable in readme or f"`{short}`" in readme, variable


# ---- the generated suite's behaviour around its server (slow: uv sync + pytest) ----------


@pytest.fixture(scope="module")
def synced_service(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A postgresql service, and its package name, which no other run uses."""
    suffix = secrets.token_hex(3)
    root = tmp_path_factory.mktemp("pg") / "service"
    answers = {"project_name": f"Pg Check {suffix}", "database": "postgresql"}
    render(root, answers | {"python_version": "3.12"})
    sync(root, "3.12")
    return root, f"pg_check_{suffix}"


def pytest_output(root: Path, *args: str, **env: str) -> tuple[int, str]:
    result = run(root, UV, "run", "--no-sync", "pytest", "-p", "no:cacheprovider", *args, env=env)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.slow
def test_unreachable_server_stops_the_suite_with_one_message(
    synced_service: tuple[Path, str],
) -> None:
    url = "postgresql+asyncpg://tester:s3cr3t@127.0.0.1:1/postgres"
    code, output = pytest_output(synced_service[0], "-q", TEST_DATABASE_URL=url)
    assert code != 0, output
    assert output.count("ERROR at setup") == 1, output
    assert "postgresql+asyncpg://tester:***@127.0.0.1:1/postgres" in output, output
    assert "s3cr3t" not in output
    assert "TEST_DATABASE_URL=" in output, output
    assert "Interrupted" in output, output


PROBE = """\
import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine


async def test_records_its_database(test_database_url: URL, migrated_engine: AsyncEngine) -> None:
    async with migrated_engine.connect() as connection:
        name = (await connection.execute(text("SELECT current_database()"))).scalar_one()
    assert name == test_database_url.database
    Path(os.environ["PROBE_OUT"]).write_text(name)
"""

LIST_DATABASES = (
    "import asyncio, os, sys, asyncpg\n"
    "async def main():\n"
    "    url = os.environ['TEST_DATABASE_URL'].replace('+asyncpg', '')\n"
    "    connection = await asyncpg.connect(url)\n"
    "    rows = await connection.fetch(\n"
    "        'SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE $2',\n"
    "        sys.argv[1], sys.argv[2] + '%')\n"
    "    await connection.close()\n"
    "    print([row[0] for row in rows])\n"
    "asyncio.run(main())\n"
)


@pytest.mark.slow
def test_suite_drops_its_database(synced_service: tuple[Path, str], tmp_path: Path) -> None:
    if TEST_DATABASE_URL is None:  # an embedded server is deleted with its databases
        unavailable(
            "needs a PostgreSQL server that outlives the run: TEST_DATABASE_URL, or one on "
            "127.0.0.1:5432 (e.g. apt-get install -y postgresql)"
        )
    root, package = synced_service
    # A probe module run with the suite records the database the run really used (it
    # exists, it is the fixture's); not named test_*.py, so only this run collects it.
    probe = root / "tests" / "probe_database.py"
    probe.write_text(PROBE)
    recorded = tmp_path / "database-name"
    code, output = pytest_output(
        root, "-q", "tests/test_health.py", str(probe), PROBE_OUT=str(recorded)
    )
    assert code == 0, output
    name = recorded.read_text()
    assert name.startswith(f"test_{package}_"), name
    leftovers = run(
        root, UV, "run", "--no-sync", "python", "-c", LIST_DATABASES, name, f"test_{package}_"
    )
    assert leftovers.returncode == 0, leftovers.stderr
    assert leftovers.stdout.strip() == "[]", leftovers.stdout
