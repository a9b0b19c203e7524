"""A guard that cannot fail is not a guard: inject each classic async mistake into a rendered
service and prove that its own checks fail, for that reason."""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.matrix import RENDERS
from tests.toolchain import UV, mypy, run, sync

PACKAGE = "matrix_service"


@dataclass(frozen=True)
class Mistake:
    name: str
    path: str  # relative to src/<package>/
    anchor: str
    replacement: str
    command: tuple[str, ...]
    reason: str
    databases: tuple[str, ...] = ("sqlite", "postgresql")


LIVE = 'async def live() -> dict[str, str]:\n    return {"status": "ok"}'
# The start of get_item_reader's return line, in the SQLite and the PostgreSQL wiring alike.
READER = "    return ItemReadService("
PYTEST = (UV, "run", "--no-sync", "pytest", "-q", "-x")
MYPY = ("mypy",)  # run by tests.toolchain.mypy: its cache seeded, as the covering set's is

MISTAKES = [
    Mistake(
        "blocking-call-in-handler",
        "core/health.py",
        LIVE,
        LIVE.replace("    return", "    import time\n\n    time.sleep(1.0)\n    return"),
        (*PYTEST, "tests/test_health.py::test_live"),
        "[event-loop guard] the event loop was blocked",
    ),
    Mistake(
        "blocking-call-in-handler (static)",
        "core/health.py",
        LIVE,
        LIVE.replace("    return", "    import time\n\n    time.sleep(1.0)\n    return"),
        (UV, "run", "--no-sync", "ruff", "check", "."),
        "ASYNC251",
    ),
    Mistake(
        "session-never-closed",
        "items/deps.py",
        READER,
        "    leaked = resources_of(request).get(SqlDatabase).sessionmaker()\n"
        "    await leaked.connection()\n" + READER,
        (*PYTEST, "tests/test_items_api.py::test_create_then_get"),
        "[session leak guard]",
    ),
    Mistake(
        "connection-never-returned",
        "core/db/engine.py",
        "            await _check_in(self._engine.pool, self._pooled, error)",
        # A driver read that keeps its pooled connection (here: referenced from a function).
        "            _check_out.__dict__.setdefault('held', []).append(self._pooled)",
        (*PYTEST, "tests/test_items_concurrency.py::test_summary_combines_its_reads"),
        "[pool leak guard]",
        databases=("postgresql",),
    ),
    Mistake(
        "unawaited-coroutine",
        "core/health.py",
        LIVE,
        LIVE.replace("    return", "    asyncio.sleep(0)\n    return"),
        (*PYTEST, "tests/test_health.py::test_live"),
        "coroutine 'sleep' was never awaited",
    ),
    Mistake(
        "unawaited-coroutine (static)",
        "core/health.py",
        LIVE,
        LIVE.replace("    return", "    asyncio.sleep(0)\n    return"),
        MYPY,
        "[unused-coroutine]",
    ),
    Mistake(
        "dangling-task",
        "core/health.py",
        LIVE,
        LIVE.replace("    return", "    asyncio.create_task(asyncio.sleep(0))\n    return"),
        (UV, "run", "--no-sync", "ruff", "check", "."),
        "RUF006",
    ),
    Mistake(
        "locks-taken-in-request-order",
        "items/repository_sql.py",
        "for item_id in sorted((source_id, target_id)):",
        "for item_id in (source_id, target_id):",
        (
            *PYTEST,
            "tests/test_items_concurrency.py::test_opposite_transfers_do_not_deadlock",
        ),
        "deadlock detected",
        databases=("postgresql",),
    ),
]


def base_project(database: str) -> Path | None:
    for combo, answers in RENDERS.answers.items():
        if (
            answers["database"] == database
            and answers.get("example_resource")
            and answers["python_version"] == "3.12"
            and answers["http_client"] == "none"
        ):
            return RENDERS.project(combo)
    return None


CASES = [
    pytest.param(mistake, database, id=f"{database}-{mistake.name}")
    for mistake in MISTAKES
    for database in mistake.databases
]


def run_command(project: Path, command: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return mypy(project, "3.12") if command == MYPY else run(project, *command)


class Controls:
    """The same commands on an unmodified copy of each base project, each run once per
    module: a guard that fails there too proves nothing about the mistake."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._projects: dict[str, Path] = {}
        self._results: dict[tuple[str, tuple[str, ...]], tuple[int, str]] = {}

    def lock(self, database: str) -> Path:
        return self._projects[database] / "uv.lock"

    def run(self, database: str, source: Path, command: tuple[str, ...]) -> tuple[int, str]:
        key = (database, command)
        if key not in self._results:
            if database not in self._projects:
                project = self._root / database
                shutil.copytree(source, project)
                sync(project, "3.12")
                self._projects[database] = project
            result = run_command(self._projects[database], command)
            self._results[key] = (result.returncode, result.stdout + result.stderr)
        return self._results[key]


@pytest.fixture(scope="module")
def controls(tmp_path_factory: pytest.TempPathFactory) -> Controls:
    return Controls(tmp_path_factory.mktemp("controls"))


@pytest.mark.slow
@pytest.mark.parametrize(("mistake", "database"), CASES)
def test_guard_catches_injected_mistake(
    mistake: Mistake, database: str, tmp_path: Path, controls: Controls
) -> None:
    source = base_project(database)
    assert source is not None, f"no rendered {database} combination to inject {mistake.name} into"
    code, output = controls.run(database, source, mistake.command)
    assert code == 0, f"the unmodified project fails {mistake.command} already:\n{output[-4000:]}"
    assert mistake.reason not in output, (
        f"{mistake.reason!r} without the mistake:\n{output[-4000:]}"
    )
    project = tmp_path / "service"
    shutil.copytree(source, project)
    # The control's lock: the same pyproject, so `uv sync` needs no resolution of its own.
    shutil.copy2(controls.lock(database), project / "uv.lock")
    target = project / "src" / PACKAGE / mistake.path
    original = target.read_text()
    assert mistake.anchor in original, f"the template changed: update the {mistake.name} case"
    target.write_text(original.replace(mistake.anchor, mistake.replacement, 1))

    sync(project, "3.12")
    result = run_command(project, mistake.command)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{mistake.name} went unnoticed:\n{output[-4000:]}"
    assert mistake.reason in output, f"failed, but not for {mistake.reason!r}:\n{output[-4000:]}"
