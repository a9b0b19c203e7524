"""A small synthetic Copier template with a tagged history, and a fleet of services made from it.

The CLI's tests and bench/fleet_status.py use this instead of the real template: a render of
this one takes a fraction of a second and runs no tasks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import copier
import pytest

from tests.toolchain import GIT_ENV

COPIER_YML = """\
_subdirectory: template
_answers_file: .copier-answers.yml
_skip_if_exists:
  - .env
project_name:
  type: str
  default: svc
ci:
  type: str
  choices: [github, gitlab]
  default: github
database:
  type: str
  choices:
    PostgreSQL: postgresql
    SQLite: sqlite
    MongoDB: mongodb
  default: sqlite
use_sql:
  type: bool
  default: "{{ database != 'mongodb' }}"
  when: false
"""
ANSWERS_JINJA = (
    "# Changes here will be overwritten by Copier\n{{ _copier_answers|to_nice_yaml -}}\n"
)
APP_V1 = "import os\n\nNAME = '{{ project_name }}'\nTIMEOUT = 5\nRETRIES = 3\n"
APP_V2 = "import os\n\nNAME = '{{ project_name }}'\nTIMEOUT = 10\nRETRIES = 3\n"
APP_RC = APP_V2 + "POOL = 4\n"
README_V1 = "# {{ project_name }}\n\nA service.\n\nDatabase: {{ database }}\n"
README_V11 = README_V1 + "\nSee docs/ for more.\n"

# version -> files of the template repository at that tag (None deletes nothing: all listed).
BASE = {
    "copier.yml": COPIER_YML,
    "template/{{_copier_conf.answers_file}}.jinja": ANSWERS_JINJA,
    "template/README.md.jinja": README_V1,
    "template/app.py.jinja": APP_V1,
    "template/db.txt.jinja": "database: {{ database }}\n",
    "template/{% if ci == 'gitlab' %}.gitlab-ci.yml{% endif %}.jinja": "test:\n  script: pytest\n",
    "template/{% if ci == 'github' %}github-ci.yml{% endif %}.jinja": "on: push\n",
    "template/.env": "SECRET=change-me\n",
}
HISTORY: list[tuple[str, dict[str, str]]] = [
    ("1.0.0", {}),
    ("1.1.0", {"template/README.md.jinja": README_V11}),
    (
        "2.0.0",
        {"template/app.py.jinja": APP_V2, "template/settings.py.jinja": "DEBUG = False\n"},
    ),
    ("2.1.0rc1", {"template/app.py.jinja": APP_RC}),
]
CHANGELOG_SECTIONS = {
    "1.0.0": "First release.",
    "1.1.0": "README points at docs/.",
    "2.0.0": "TIMEOUT is 10 seconds; new settings.py.",
    "2.1.0rc1": "POOL setting (pre-release).",
}


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def build_template(path: Path) -> Path:
    """A git repository with tags 1.0.0, 1.1.0, 2.0.0 and 2.1.0rc1 and a CHANGELOG.md."""
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    files = dict(BASE)
    done: list[str] = []
    for version, changes in HISTORY:
        files.update(changes)
        done.append(version)
        changelog = "# Changelog\n\n## Unreleased\n\n" + "".join(
            f"## {v}\n\n- {CHANGELOG_SECTIONS[v]}\n\n" for v in reversed(done)
        )
        _write(path, {**files, "CHANGELOG.md": changelog})
        git(path, "add", "--all")
        git(path, "commit", "--quiet", "-m", f"template {version}")
        git(path, "tag", version)
    return path


def render(template: Path, dest: Path, version: str, data: Mapping[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(
            str(template),
            dest,
            data=dict(data),
            vcs_ref=version,
            defaults=True,
            quiet=True,
            settings=copier.Settings(),
        )


def make_service(
    template: Path,
    dest: Path,
    version: str,
    data: Mapping[str, Any],
    edits: Mapping[str, str | None] | None = None,
) -> Path:
    """A service repository rendered at `version`, committed, then `edits` committed (None deletes)."""
    render(template, dest, version, data)
    git(dest, "init", "--quiet", "--initial-branch=main")
    git(dest, "add", "--all")
    git(dest, "commit", "--quiet", "-m", f"generated from template {version}")
    if edits:
        for name, content in edits.items():
            if content is None:
                (dest / name).unlink()
            else:
                _write(dest, {name: content})
        git(dest, "add", "--all")
        git(dest, "commit", "--quiet", "-m", "owner edits")
    return dest


@dataclass(frozen=True)
class FleetPaths:
    template: Path
    root: Path

    def __getitem__(self, name: str) -> Path:
        return self.root / name


# name -> (version, answers, owner edits). Each exercises one thing `fleet` must report.
SERVICES: dict[str, tuple[str, dict[str, Any], dict[str, str | None]]] = {
    # Already on the newest release, nothing changed: up-to-date, no drift, no violation.
    "current": ("2.0.0", {"project_name": "current", "ci": "gitlab", "database": "postgresql"}, {}),
    # One release behind; an extra line in a rendered file (drift) and a file of its own.
    "behind": (
        "1.1.0",
        {"project_name": "behind", "ci": "gitlab", "database": "sqlite"},
        {"db.txt": "database: sqlite\npool: 10\n", "src/own.py": "OWN = 1\n"},
    ),
    # Two releases behind, and its edit of TIMEOUT conflicts with 2.0.0's.
    "conflict": (
        "1.0.0",
        {"project_name": "conflict", "ci": "gitlab", "database": "postgresql"},
        {"app.py": APP_V1.replace("{{ project_name }}", "conflict").replace("= 5", "= 7")},
    ),
    # Breaks the policy (ci fixed to gitlab, mongodb forbidden); deleted README.md; edited
    # .env, which the template leaves to the service (_skip_if_exists), so it is no drift.
    "rogue": (
        "1.1.0",
        {"project_name": "rogue", "ci": "github", "database": "mongodb"},
        {"README.md": None, ".env": "SECRET=real\n"},
    ),
}


def build_fleet(root: Path, template: Path) -> FleetPaths:
    root.mkdir(parents=True, exist_ok=True)
    for name, (version, data, edits) in SERVICES.items():
        make_service(template, root / name, version, data, edits)
    # A git repository that Copier never generated.
    broken = root / "noanswers"
    broken.mkdir()
    (broken / "main.py").write_text("print('hi')\n")
    git(broken, "init", "--quiet", "--initial-branch=main")
    git(broken, "add", "--all")
    git(broken, "commit", "--quiet", "-m", "not from the template")
    # A plain directory.
    (root / "notgit").mkdir()
    (root / "notgit" / "README.md").write_text("no git here\n")
    return FleetPaths(template, root)


def copy_fleet(fleet: FleetPaths, dest: Path) -> FleetPaths:
    """A private copy for tests that create branches (the template is shared, read-only)."""
    shutil.copytree(fleet.root, dest, symlinks=True)
    return FleetPaths(fleet.template, dest)


def write_policy(path: Path, template: Path, **extra: str) -> Path:
    text = f"""\
[template]
source = "{template}"
versions = "{extra.get("versions", ">=1.0,<3")}"

[answers.fixed]
ci = "gitlab"

[answers.defaults]
database = "postgresql"

[answers.forbidden]
database = ["mongodb"]
"""
    if "test_command" in extra:
        text += f'\n[update]\ntest_command = "{extra["test_command"]}"\n'
    path.write_text(text)
    return path


_built: dict[Path, FleetPaths] = {}


def shared_fleet(base: Path) -> FleetPaths:
    """The template history and fleet, built once per test session (per xdist worker)."""
    if base not in _built:
        template = build_template(base / "template")
        _built[base] = build_fleet(base / "fleet", template)
    return _built[base]


def head(repo: Path) -> tuple[str, str, str]:
    """What a test compares before/after: checked-out branch, its commit, `git status`."""
    return (
        git(repo, "symbolic-ref", "--short", "HEAD"),
        git(repo, "rev-parse", "HEAD"),
        git(repo, "status", "--porcelain"),
    )


def run_all_elsewhere(monkeypatch: pytest.MonkeyPatch, elsewhere: Path) -> Path:
    """The CLI's workers run with the working directory at `elsewhere`, as they may while
    Copier chdirs (under COPIER_LOCK) for another worker: a relative repository, --template
    or --cache-dir resolved in a worker would land there. Deterministic, unlike the race.
    Returns `elsewhere`, made empty: nothing may be written there."""
    from async_service import cli as cli_module

    real_run_all = cli_module.run_all

    def run_all_from_elsewhere(*args: Any) -> Any:
        back = Path.cwd()
        os.chdir(elsewhere)
        try:
            return real_run_all(*args)
        finally:
            os.chdir(back)

    elsewhere.mkdir()
    monkeypatch.setattr(cli_module, "run_all", run_all_from_elsewhere)
    return elsewhere
