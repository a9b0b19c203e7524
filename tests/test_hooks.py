"""The hook scripts Copier runs: the copy-time task and the migrations (0.2.0, 0.3.0), one case
at a time, run the way Copier runs them (a subprocess in the service's directory)."""

from __future__ import annotations

import json
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


# ---- migrations/v0_3_0_core_layout.py ----------------------------------------------------

LAYOUT = ROOT / "hooks" / "migrations" / "v0_3_0_core_layout.py"


def layout_stash(repo: Path, files: dict[str, tuple[str, str]]) -> Path:
    """What `before` leaves for `after`: base and owner's version of each set-aside file."""
    data = repo / ".git" / "copier-migration-0.3.0"
    for old, (base, owner) in files.items():
        (data / old).parent.mkdir(parents=True, exist_ok=True)
        (data / f"{old}.base").write_text(base)
        (data / f"{old}.owner").write_text(owner)
    kept = {"package": "svc", "files": dict.fromkeys(files, "edited")}
    (data / "kept.json").write_text(json.dumps(kept))
    return data


NEW_APP = """from fastapi import FastAPI

from svc.core.app import Service
from svc.items.router import router as items_router
from svc.settings import Settings

service = Service(
    Settings,
    routers=[items_router],
    resources=[],
)
"""
OLD_APP = """from fastapi import FastAPI

from svc.health import router as health_router
from svc.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI()
    app.include_router(health_router)
    return app
"""


def test_layout_after_carries_an_added_router_into_the_new_app(tmp_path: Path) -> None:
    repo = git_repo(tmp_path)
    owner = OLD_APP.replace(
        "from svc.settings", "from svc.pricing import router as pricing_router\nfrom svc.settings"
    ).replace("    return app", "    app.include_router(pricing_router)\n    return app")
    layout_stash(repo, {"app.py": (OLD_APP, owner)})
    (repo / "src" / "svc").mkdir(parents=True)
    (repo / "src" / "svc" / "app.py").write_text(NEW_APP)
    result = run_hook(LAYOUT, repo, "after")
    assert result.returncode == 0, result.stderr
    app = (repo / "src" / "svc" / "app.py").read_text()
    assert "routers=[items_router, pricing_router]," in app
    imports = [line for line in app.splitlines() if line.startswith("from svc.")]
    assert imports == sorted(imports, key=lambda line: line.split(" ")[1])
    assert "from svc.pricing import router as pricing_router" in imports
    assert "carried your edits over: app.py -> app.py" in result.stderr


def test_layout_after_marks_an_edit_it_cannot_carry_and_drops_nothing(tmp_path: Path) -> None:
    repo = git_repo(tmp_path)
    owner = OLD_APP.replace("    app = FastAPI()", "    app = FastAPI(docs_url=None)")
    layout_stash(repo, {"app.py": (OLD_APP, owner)})
    (repo / "src" / "svc").mkdir(parents=True)
    (repo / "src" / "svc" / "app.py").write_text(NEW_APP)
    result = run_hook(LAYOUT, repo, "after")
    assert result.returncode == 0, result.stderr
    merged = (repo / "src" / "svc" / "app.py").read_text()
    assert "FastAPI(docs_url=None)" in merged
    assert "<<<<<<< before updating" in merged
    assert "resolve the conflict markers in: app.py -> app.py" in result.stderr


def test_layout_after_carries_added_settings_fields_with_their_import(tmp_path: Path) -> None:
    repo = git_repo(tmp_path)
    old = "from pydantic import Field\n\n\nclass Settings(BaseSettings):\n    port: int = 8000\n"
    owner = old.replace("    port", "    vat_percent: int = Field(default=20, ge=0)\n    port")
    new = (
        "from typing import Annotated\n\nfrom fastapi import Depends\n\n"
        "from svc.core.options import ServiceSettings\n\n\n"
        'class Settings(ServiceSettings):\n    """Every setting."""\n\n\nSettingsDep = 1\n'
    )
    layout_stash(repo, {"settings.py": (old, owner)})
    (repo / "src" / "svc").mkdir(parents=True)
    (repo / "src" / "svc" / "settings.py").write_text(new)
    result = run_hook(LAYOUT, repo, "after")
    assert result.returncode == 0, result.stderr
    text = (repo / "src" / "svc" / "settings.py").read_text()
    assert '    """Every setting."""\n\n    vat_percent: int = Field(default=20, ge=0)\n' in text
    assert "from fastapi import Depends\nfrom pydantic import Field\n" in text


def test_layout_after_merges_an_edited_module_into_its_new_place(tmp_path: Path) -> None:
    repo = git_repo(tmp_path)
    layout_stash(repo, {"health.py": (BASE, "a = 1\nb = 2\nc = 3\nd = 40\n")})
    (repo / "src" / "svc" / "core").mkdir(parents=True)
    (repo / "src" / "svc" / "core" / "health.py").write_text("a = 10\nb = 2\nc = 3\nd = 4\n")
    result = run_hook(LAYOUT, repo, "after")
    assert result.returncode == 0, result.stderr
    moved = (repo / "src" / "svc" / "core" / "health.py").read_text()
    assert moved == "a = 10\nb = 2\nc = 3\nd = 40\n"
    assert "health.py -> core/health.py" in result.stderr


def test_layout_before_without_a_renderable_base_keeps_the_edits_aside(tmp_path: Path) -> None:
    repo = git_repo(tmp_path)
    code = repo / "src" / "svc"
    code.mkdir(parents=True)
    (repo / ".copier-answers.yml").write_text("_commit: 0.2.0\npackage_name: svc\n")
    (code / "app.py").write_text(OLD_APP)
    (code / "lifespan.py").write_text("x = 1\n")
    commit(repo)
    result = run_hook(LAYOUT, repo, "before", str(tmp_path / "no-such-template"), "0.2.0")
    assert result.returncode == 0, result.stderr
    assert "could not render template 0.2.0" in result.stderr
    data = repo / ".git" / "copier-migration-0.3.0"
    # No base: both count as the owner's edits, kept aside; the old app.py is gone.
    assert (data / "app.py.owner").read_text() == OLD_APP
    assert (data / "lifespan.py.owner").read_text() == "x = 1\n"
    assert not (code / "app.py").exists()
