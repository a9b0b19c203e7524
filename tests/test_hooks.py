"""The hook scripts Copier runs: the copy-time task and the 0.2.0 migration, one case at a
time, run the way Copier runs them (a subprocess in the service's directory)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.toolchain import GIT_ENV, UV

ROOT = Path(__file__).resolve().parents[1]
POST_COPY = ROOT / "hooks" / "post_copy.py"
MIGRATION = ROOT / "hooks" / "migrations" / "v0_2_0_rename_test_schema.py"
GIT = shutil.which("git") or "git"
PYPROJECT = '[project]\nname = "svc"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = [{deps}]\n'


def tools_dir(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only the named real tools, so the others are missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool, real in {"git": GIT, "uv": UV}.items():
        if tool in tools:
            (bin_dir / tool).symlink_to(real)
    return str(bin_dir)


def run_hook(
    script: Path, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV, "UV_PYTHON_DOWNLOADS": "never", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def project(tmp_path: Path, deps: str = "") -> Path:
    path = tmp_path / "svc"
    path.mkdir()
    (path / "pyproject.toml").write_text(PYPROJECT.format(deps=deps))
    return path


def branch(path: Path) -> str:
    return subprocess.run(
        [GIT, "symbolic-ref", "--short", "HEAD"],
        cwd=path,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


# ---- post_copy.py --------------------------------------------------------------------


def test_post_copy_inits_git_on_main_and_locks(tmp_path: Path) -> None:
    svc = project(tmp_path)
    result = run_hook(
        POST_COPY, svc, env={"PATH": tools_dir(tmp_path, "git", "uv"), "UV_PYTHON": sys.executable}
    )
    assert result.returncode == 0, result.stderr
    assert branch(svc) == "main"
    assert (svc / "uv.lock").is_file()
    assert result.stderr.splitlines() == [
        "post-copy: initialised a git repository on branch main; commit the rendered files",
        "post-copy: wrote uv.lock",
    ]


def test_post_copy_without_uv_notes_it_and_still_inits_git(tmp_path: Path) -> None:
    svc = project(tmp_path)
    result = run_hook(POST_COPY, svc, env={"PATH": tools_dir(tmp_path, "git")})
    assert result.returncode == 0, result.stderr
    assert branch(svc) == "main"
    assert not (svc / "uv.lock").exists()
    assert "post-copy: uv not found; run `uv lock` once it is installed" in result.stderr


def test_post_copy_without_git_notes_it_and_never_fails(tmp_path: Path) -> None:
    svc = project(tmp_path)
    result = run_hook(POST_COPY, svc, env={"PATH": tools_dir(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert not (svc / ".git").exists()
    assert "post-copy: git not found; run `git init -b main` yourself" in result.stderr
    assert "post-copy: uv not found" in result.stderr


def test_post_copy_unreachable_index_is_one_line_and_never_fails(tmp_path: Path) -> None:
    svc = project(tmp_path, deps='"idna"')
    env = {
        "PATH": tools_dir(tmp_path, "git", "uv"),
        "UV_PYTHON": sys.executable,
        "UV_DEFAULT_INDEX": "http://127.0.0.1:9/simple",  # nothing listens on the discard port
        "UV_NO_CACHE": "1",
        "UV_HTTP_RETRIES": "0",
    }
    result = run_hook(POST_COPY, svc, env=env)
    assert result.returncode == 0, result.stderr
    assert not (svc / "uv.lock").exists()
    notes = [line for line in result.stderr.splitlines() if "uv lock" in line]
    assert len(notes) == 1, result.stderr
    assert notes[0].startswith("post-copy: `uv lock` failed (")
    assert notes[0].endswith("); run `uv lock` when the index is reachable")


def test_post_copy_leaves_an_enclosing_repository_alone(tmp_path: Path) -> None:
    subprocess.run([GIT, "init", "-q", str(tmp_path)], check=True)
    svc = project(tmp_path)
    result = run_hook(POST_COPY, svc, env={"PATH": tools_dir(tmp_path, "git")})
    assert result.returncode == 0, result.stderr
    assert not (svc / ".git").exists()
    assert "initialised" not in result.stderr


# ---- migrations/v0_2_0_rename_test_schema.py -------------------------------------------


def git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "svc"
    (repo / "tests").mkdir(parents=True)
    subprocess.run([GIT, "init", "-q", str(repo)], check=True)
    return repo


def commit(repo: Path) -> None:
    env = {**os.environ, **GIT_ENV}
    subprocess.run([GIT, "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run([GIT, "commit", "-qm", "x"], cwd=repo, check=True, env=env)


def test_migration_without_the_old_file_does_nothing(tmp_path: Path) -> None:
    repo = git_repo(tmp_path)
    result = run_hook(MIGRATION, repo, "before", str(ROOT), "0.1.0")
    assert result.returncode == 0, result.stderr
    assert "no tests/test_migrations.py (no SQL database); nothing to move" in result.stderr
    after = run_hook(MIGRATION, repo, "after")
    assert "migration 0.2.0: nothing to merge" in after.stderr


def test_migration_falls_back_to_git_mv_when_the_base_cannot_be_rendered(tmp_path: Path) -> None:
    repo = git_repo(tmp_path)
    (repo / ".copier-answers.yml").write_text("_commit: 0.1.0\n")
    (repo / "tests" / "test_migrations.py").write_text("x = 1\n")
    commit(repo)
    result = run_hook(MIGRATION, repo, "before", str(tmp_path / "no-such-template"), "0.1.0")
    assert result.returncode == 0, result.stderr
    assert "could not render template 0.1.0" in result.stderr
    assert not (repo / "tests" / "test_migrations.py").exists()
    assert (repo / "tests" / "test_schema.py").read_text() == "x = 1\n"
    staged = subprocess.run(
        [GIT, "diff", "--cached", "--name-status"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert staged == ["R100", "tests/test_migrations.py", "tests/test_schema.py"]


def stash(repo: Path, base: str, owner: str) -> Path:
    data = repo / ".git" / "copier-migration-0.2.0"
    data.mkdir()
    (data / "base.py").write_text(base)
    (data / "owner.py").write_text(owner)
    return data


BASE = "a = 1\nb = 2\nc = 3\nd = 4\n"


def test_migration_after_merges_both_sides(tmp_path: Path) -> None:
    repo = git_repo(tmp_path)
    data = stash(repo, BASE, "a = 1\nb = 2\nc = 3\nd = 40\n")
    (repo / "tests" / "test_schema.py").write_text("a = 10\nb = 2\nc = 3\nd = 4\n")
    result = run_hook(MIGRATION, repo, "after")
    assert result.returncode == 0, result.stderr
    assert (repo / "tests" / "test_schema.py").read_text() == "a = 10\nb = 2\nc = 3\nd = 40\n"
    assert (
        "merged your edits of tests/test_migrations.py into tests/test_schema.py\n" in result.stderr
    )
    assert not data.exists()


@pytest.mark.parametrize("rendered", [True, False])
def test_migration_after_never_drops_an_overlapping_edit(tmp_path: Path, rendered: bool) -> None:
    repo = git_repo(tmp_path)
    stash(repo, BASE, "a = 1\nb = 20\nc = 3\nd = 4\n")
    if rendered:
        (repo / "tests" / "test_schema.py").write_text("a = 1\nb = 200\nc = 3\nd = 4\n")
    result = run_hook(MIGRATION, repo, "after")
    assert result.returncode == 0, result.stderr
    if rendered:
        merged = (repo / "tests" / "test_schema.py").read_text()
        assert (
            "<<<<<<< before updating\nb = 20\n=======\nb = 200\n>>>>>>> after updating\n" in merged
        )
        assert "with 1 conflict(s) to resolve" in result.stderr
    else:  # the update also dropped the SQL database: nothing to merge into
        assert not (repo / "tests" / "test_schema.py").exists()
        assert "is not rendered any more (no SQL database)" in result.stderr
