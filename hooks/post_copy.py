"""Copy-time task: make the new service a git repository and lock its dependencies.

Copier runs this once, after `copier copy`, in the new service's directory, with its own
interpreter (copier.yml `_tasks`); never on `copier update`, whose result must equal a fresh
render. Standard library only. A missing tool or an unreachable package index is reported
in one line and never fails the copy: the service is complete without either step.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# `uv lock` resolves against the package index; a slow or blackholed network must not
# hang `copier copy` forever.
UV_LOCK_TIMEOUT_SECONDS = 300


def note(message: str) -> None:
    print(f"post-copy: {message}", file=sys.stderr)


def reason(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # uv and git put the reason on the last line ("error: ..."), after any context.
    return lines[-1] if lines else "no output"


def inside_git_work_tree(project: Path, git: str) -> bool:
    result = subprocess.run(
        [git, "rev-parse", "--is-inside-work-tree"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "true"


def init_git(project: Path) -> None:
    git = shutil.which("git")
    if git is None:
        note("git not found; run `git init -b main` yourself (copier update needs a git repo)")
        return
    if inside_git_work_tree(project, git):
        # Rendered into an existing repository (a monorepo, a re-copy): leave it alone.
        return
    result = subprocess.run(
        [git, "init", "--quiet", "--initial-branch=main"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        note(f"git init failed ({reason(result.stderr)}); run `git init -b main` yourself")
        return
    note("initialised a git repository on branch main; commit the rendered files")


def lock_dependencies(project: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        note("uv not found; run `uv lock` once it is installed (https://docs.astral.sh/uv/)")
        return
    env = {**os.environ, "UV_NO_PROGRESS": "1"}
    try:
        result = subprocess.run(
            [uv, "lock", "--quiet"],
            cwd=project,
            capture_output=True,
            text=True,
            env=env,
            timeout=UV_LOCK_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        note(f"`uv lock` took over {UV_LOCK_TIMEOUT_SECONDS} s (index unreachable?); run it later")
        return
    if result.returncode != 0:
        note(
            f"`uv lock` failed ({reason(result.stderr)}); run `uv lock` when the index is reachable"
        )
        return
    note("wrote uv.lock")


def main() -> int:
    project = Path.cwd()
    init_git(project)
    lock_dependencies(project)
    return 0


if __name__ == "__main__":
    sys.exit(main())
