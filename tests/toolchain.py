"""Run a rendered project's own toolchain: uv sync, ruff format/check, mypy, pytest."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

from tests.matrix import code_hash, locked

# The uv of the template's own environment: a bare `uv` may be a pyenv shim that the rendered
# project's .python-version redirects to an interpreter without uv.
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv") or "uv"
UV_CACHE = Path(os.environ.get("UV_CACHE_DIR", Path.home() / ".cache" / "uv"))
# A committer identity for the git repositories the tests build (none may be configured).
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def find_python(version: str) -> str:
    """An interpreter for `version`: on PATH, or a pyenv install, else let uv resolve it."""
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-V"], capture_output=True, check=False).returncode == 0:
        return found
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for candidate in sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}")):
        return candidate
    return version


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (nobody reaped it) is gone for our purpose: it serves and holds nothing.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def answers(url: str) -> bool:
    """Whether anything accepts a TCP connection on the URL's host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2):
            return True
    except OSError:
        return False


# The PostgreSQL server the generated suites of `database=postgresql` run against (each run
# creates and drops its own database there): TEST_DATABASE_URL, else the generated suites'
# default server if it answers, else None: each rendered suite starts an embedded server of
# its own. (TEST_DATABASE_DEFAULT_URL on a closed port mimics a machine without a server.)
DEFAULT_DATABASE_URL = os.environ.get("TEST_DATABASE_DEFAULT_URL") or (
    "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or (
    DEFAULT_DATABASE_URL if answers(DEFAULT_DATABASE_URL) else None
)


def project_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a rendered project's commands; `extra` adds e.g. TEST_MONGODB_URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTEST_"))}
    env.update(
        UV_CACHE_DIR=str(UV_CACHE),  # one cache for every rendered project
        UV_NO_PROGRESS="1",
        UV_PYTHON_DOWNLOADS=os.environ.get("UV_PYTHON_DOWNLOADS", "never"),
        # Four workers' suites share two cores here: judge the event loop generously (a first
        # /openapi.json took 0.62 s), but below the 1 s sleep test_guards.py injects.
        SLOW_CALLBACK_SECONDS=os.environ.get("SLOW_CALLBACK_SECONDS", "0.9"),
    )
    # A project compiles its imports once and its later processes (the suite's servers and
    # CLI runs) reuse the bytecode: about a third of a generated suite's CPU time otherwise.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if TEST_DATABASE_URL:
        env["TEST_DATABASE_URL"] = TEST_DATABASE_URL
    env.update(extra or {})
    return env


def run(
    project: Path, *args: str, timeout: float = 900, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        cwd=project,
        env=project_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check(
    project: Path, *args: str, timeout: float = 900, env: Mapping[str, str] | None = None
) -> str:
    result = run(project, *args, timeout=timeout, env=env)
    output = f"$ {' '.join(args)}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, output[-20000:]
    return output


def sync(project: Path, python_version: str) -> None:
    check(project, UV, "sync", "--python", find_python(python_version))


def share_bytecode(project: Path) -> int:
    """Link the bytecode a project's Python wrote for its packages into uv's cache; returns
    how many files it added.

    uv hardlinks each package's files, `__pycache__` included, from its cache into every
    venv, so the projects synced later start with compiled packages: a generated suite
    spends a fifth of its CPU compiling them otherwise. A source and its cache twin are one
    inode (same mtime and size), so the bytecode is valid for both; `uv cache clean` drops it.
    """
    archives = UV_CACHE / "archive-v0"
    twins: dict[tuple[int, int], Path] = {}
    for root, dirs, files in os.walk(archives):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = Path(root, name)
                stat = path.stat()
                twins[stat.st_dev, stat.st_ino] = path
    added = 0
    for compiled in (project / ".venv" / "lib").glob(
        "python3.*/site-packages/**/__pycache__/*.pyc"
    ):
        source = compiled.parent.parent / f"{compiled.name.split('.', 1)[0]}.py"
        try:
            stat = source.stat()
        except FileNotFoundError:
            continue
        twin = twins.get((stat.st_dev, stat.st_ino))
        if twin is None:
            continue
        target = twin.parent / "__pycache__" / compiled.name
        if target.exists():
            continue
        target.parent.mkdir(exist_ok=True)
        staged = target.with_name(f".{target.name}.{os.getpid()}")
        os.link(compiled, staged)
        staged.rename(target)  # atomic: a venv linked meanwhile never sees half a file
        added += 1
    return added


def run_dir(name: str) -> Path:
    """A directory shared by this run's xdist workers only: nothing in it outlives the run."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID", f"pid{os.getpid()}")
    path = Path(tempfile.gettempdir()) / name / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def mypy(project: Path, python_version: str) -> subprocess.CompletedProcess[str]:
    """`mypy` as the project runs it, its cache seeded with the libraries (FastAPI, pydantic,
    SQLAlchemy: most of a cold run's work) that this run's earlier projects with the same
    mypy configuration checked. mypy checks every cached module against its source's hash
    before using it; a project's own modules are never seeded (two variants' differ)."""
    config = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["mypy"]
    key = hashlib.sha256(json.dumps([python_version, config], sort_keys=True).encode())
    seed = run_dir("copier-async-service-mypy") / key.hexdigest()[:12]
    cache = project / ".mypy_cache"
    own = {"tests", *(path.name for path in (project / "src").iterdir() if path.is_dir())}
    with locked(seed.with_suffix(".lock")):
        if seed.is_dir() and not cache.exists():
            shutil.copytree(seed, cache)
    result = run(project, UV, "run", "--no-sync", "mypy")
    if result.returncode == 0:
        with locked(seed.with_suffix(".lock")):
            _seed_libraries(cache, seed, own)
    return result


def _seed_libraries(cache: Path, seed: Path, own: set[str]) -> None:
    """Add the modules in `cache` (mypy's SQLite cache shards) that `seed` lacks, but for the
    project's own packages; each module's rows (meta and data) come from one project."""
    if not seed.exists():
        shutil.copytree(cache, seed)
        for shard in seed.rglob("cache.*.db"):
            _drop_own(shard, own)
        return
    for shard in cache.rglob("cache.*.db"):
        target = seed / shard.relative_to(cache)
        if not target.exists():  # a shard the seed lacks: this project's, less its own
            shutil.copy2(shard, target)
            _drop_own(target, own)
            continue
        with closing(sqlite3.connect(target)) as db, db:
            had = {_module(path) for (path,) in db.execute("SELECT path FROM files2")}
            with closing(sqlite3.connect(shard)) as source:
                rows = [
                    row
                    for row in source.execute("SELECT path, mtime, data FROM files2")
                    if row[0].split("/", 1)[0] not in own and _module(row[0]) not in had
                ]
            db.executemany(
                "INSERT OR IGNORE INTO files2 (path, mtime, data) VALUES (?, ?, ?)", rows
            )


def _drop_own(shard: Path, own: set[str]) -> None:
    with closing(sqlite3.connect(shard)) as db, db:
        for top in own:
            db.execute("DELETE FROM files2 WHERE path LIKE ?", (f"{top}/%",))


def _module(path: str) -> str:
    """`sqlalchemy/engine/base.meta.ff` -> `sqlalchemy/engine/base`."""
    return path.split(".", 1)[0]


def verify(
    project: Path,
    python_version: str,
    env: Mapping[str, str] | None = None,
    pytest_args: tuple[str, ...] = (),
    *,
    types: bool = True,
) -> str:
    """The full check a service's own CI runs; returns the pytest output.

    `env` reaches the project's test run: the URLs of the servers its tests need;
    `pytest_args` narrows the run (e.g. `--ignore` of modules another test covers);
    `types=False` leaves mypy out (code another test type-checks byte for byte).
    """
    # Two tests that end with byte-identical code (e.g. services updated from two releases)
    # need one run between them: the first runs it, the other waits and reads its output.
    key = hashlib.sha256(
        repr((code_hash(project), python_version, pytest_args, sorted(env or {}), types)).encode()
    ).hexdigest()[:16]
    cache = run_dir("copier-async-service-verified")
    with locked(cache / f"{key}.lock"):
        done = cache / f"{key}.out"
        if done.exists():
            return done.read_text()
        sync(project, python_version)
        check(project, UV, "run", "--no-sync", "ruff", "format", "--check", ".")
        check(project, UV, "run", "--no-sync", "ruff", "check", ".")
        if types:
            typed = mypy(project, python_version)
            assert typed.returncode == 0, f"$ mypy\n{typed.stdout}\n{typed.stderr}"[-20000:]
        pytest = (UV, "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args)
        output = check(project, *pytest, env=env)
        share_bytecode(project)
        done.write_text(output)
        return output
