"""`copier update` from an earlier template version keeps what the service's owner wrote.

Each test builds a template history in a tmp dir: the working tree reshaped as the earlier
release (tag 0.1.0), then the working tree itself (tag 0.2.0). A service generated from
0.1.0 and committed gets its owner's edits, then updates to 0.2.0 the way a service team
would: `copier update --defaults --conflict inline`, which goes to the newest tag.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml

from tests.toolchain import GIT_ENV, run, verify

ROOT = Path(__file__).resolve().parents[1]
OLD, NEW = "0.1.0", "0.2.0"
PACKAGE = "orders"
BASE_ANSWERS = {"project_name": "Orders", "python_version": "3.12"}
RENAMED_NEW = "{% if use_sql %}test_schema.py{% endif %}.jinja"
RENAMED_OLD = "{% if use_sql %}test_migrations.py{% endif %}.jinja"
README_NEW = "\n## Template updates\n"
SCHEMA_DOC_NEW = '"""The Alembic migrations and the SQLAlchemy models describe the same schema."""'
SCHEMA_DOC_OLD = '"""Models and migrations agree."""'
CHECK_UPDATE_WORKFLOW = ".github/workflows/template-update.yml"
CONFLICT = re.compile(r"^(<{7}|={7}|>{7})( |$)", re.MULTILINE)


def git(cwd: Path, *args: str) -> str:
    result = run(cwd, "git", *args, env=GIT_ENV)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "--no-verify", "-m", message)


def shape_as_0_1_0(template: Path) -> None:
    """Undo what 0.2.0 changed: the schema test's old name and docstring, a README section, the
    scheduled check-update workflow, and the migration that only 0.2.0 ships."""
    tests = template / "template" / "tests"
    (tests / RENAMED_NEW).rename(tests / RENAMED_OLD)
    renamed = tests / RENAMED_OLD
    assert renamed.read_text().startswith(SCHEMA_DOC_NEW)
    renamed.write_text(renamed.read_text().replace(SCHEMA_DOC_NEW, SCHEMA_DOC_OLD, 1))
    readme = template / "template" / "README.md.jinja"
    text = readme.read_text()
    start, end = text.index(README_NEW), text.index("\n## Settings\n")
    readme.write_text(text[:start] + text[end:])
    next(template.glob("template/*.github*/workflows/template-update.yml")).unlink()
    copier_yml = template / "copier.yml"
    kept, skipping = [], False
    for line in copier_yml.read_text().splitlines(keepends=True):
        if line.startswith("_migrations:"):
            skipping = True
        elif skipping and line.strip() and not line.startswith((" ", "#")):
            skipping = False
        if not skipping:
            kept.append(line)
    copier_yml.write_text("".join(kept))
    assert "_migrations" not in copier_yml.read_text()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A template repository whose tags are 0.1.0 (earlier shape) and 0.2.0 (working tree)."""
    repo = tmp_path_factory.mktemp("template-history")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv")
    for name in ("template", "hooks"):
        shutil.copytree(ROOT / name, repo / name, ignore=ignore)
    shutil.copy2(ROOT / "copier.yml", repo / "copier.yml")
    git(repo, "init", "-q", "-b", "main")
    working_tree = {
        p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts
    }
    shape_as_0_1_0(repo)
    commit_all(repo, "template 0.1.0")
    git(repo, "tag", OLD)
    for path in repo.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            path.unlink()
    for path, content in working_tree.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    commit_all(repo, "template 0.2.0")
    git(repo, "tag", NEW)
    return repo


def test_one_copier_version_everywhere() -> None:
    """_min_copier_version is the Copier the template's tests run and the generated
    check-update jobs use, and the README names it."""
    minimum = yaml.safe_load((ROOT / "copier.yml").read_text())["_min_copier_version"]
    assert f'"copier=={minimum}"' in (ROOT / "pyproject.toml").read_text()
    assert copier.__version__ == minimum
    ci_files = [*ROOT.glob("template/*.github*/workflows/template-update.yml")]
    ci_files += [*ROOT.glob("template/*.gitlab-ci.yml*")]
    assert len(ci_files) == 2
    for path in ci_files:
        pins = re.findall(r"uvx copier==([\w.]+) check-update", path.read_text())
        assert pins == [minimum], path
    assert f"tested with Copier {minimum}" in (ROOT / "README.md").read_text()


def generate(history: Path, dst: Path, answers: Mapping[str, Any], ref: str = OLD) -> None:
    """`copier copy` with tasks (git init, uv lock), then the owner's first commit."""
    copier.run_copy(
        str(history),
        str(dst),
        data={**BASE_ANSWERS, **answers},
        defaults=True,
        vcs_ref=ref,
        unsafe=True,
        quiet=True,
    )
    commit_all(dst, "generated")


def update(dst: Path, **data: Any) -> None:
    copier.run_update(
        str(dst),
        data=data,
        defaults=True,
        overwrite=True,
        unsafe=True,
        quiet=True,
        conflict="inline",
    )


def answers_of(dst: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((dst / ".copier-answers.yml").read_text())
    return loaded


def tracked_files(dst: Path) -> list[str]:
    return git(dst, "ls-files").split()


def changed_files(dst: Path) -> list[str]:
    """Paths the update changed, added or removed (porcelain v1, renames both sides)."""
    paths = []
    for line in git(dst, "status", "--porcelain", "--untracked-files=all").splitlines():
        paths.extend(p.strip('"') for p in line[3:].split(" -> "))
    return paths


OWNER_MODULE = '''"""Prices with VAT: the owner's own module, added after generation."""

from fastapi import APIRouter

router = APIRouter(prefix="/pricing", tags=["pricing"])


def with_vat(cents: int, rate_percent: int = 20) -> int:
    """The gross price in cents, rounded half up."""
    return cents + (cents * rate_percent + 50) // 100


@router.get("/vat/{cents}")
async def vat(cents: int) -> dict[str, int]:
    return {"cents": cents, "with_vat": with_vat(cents)}
'''

OWNER_TEST = f'''"""The owner's own tests."""

from {PACKAGE}.pricing import with_vat


def test_with_vat_rounds_half_up() -> None:
    assert with_vat(1000) == 1200
    assert with_vat(3) == 4
'''

OWNER_REVISION = '''"""Trim item names (the owner's own revision, after the template's 0001).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(sa.text("UPDATE items SET name = trim(name)"))


def downgrade() -> None:
    pass
'''
OWNER_README = "\n## On call\n\nPage #orders-oncall; runbook in the wiki.\n"
OWNER_SCHEMA_NOTE = "# Owner: run `uv run orders db revision` after changing a model.\n"


def make_owner_edits(dst: Path, *, sql: bool) -> list[str]:
    """What a service team does after generating; returns the paths it touched."""
    app = dst / "src" / PACKAGE / "app.py"
    text = app.read_text()
    settings_import = f"from {PACKAGE}.settings import Settings, get_settings\n"
    text = text.replace(
        settings_import,
        f"from {PACKAGE}.pricing import router as pricing_router\n{settings_import}",
    )
    text = text.replace(
        "    app.include_router(health_router)\n",
        "    app.include_router(health_router)\n    app.include_router(pricing_router)\n",
    )
    assert "pricing_router)" in text
    app.write_text(text)
    (dst / "src" / PACKAGE / "pricing.py").write_text(OWNER_MODULE)
    (dst / "tests" / "test_pricing.py").write_text(OWNER_TEST)
    with (dst / "README.md").open("a") as readme:
        readme.write(OWNER_README)
    touched = [
        f"src/{PACKAGE}/app.py",
        f"src/{PACKAGE}/pricing.py",
        "tests/test_pricing.py",
        "README.md",
    ]
    if sql:
        revision = dst / "src" / PACKAGE / "migrations" / "versions" / "0002_trim_item_names.py"
        revision.write_text(OWNER_REVISION)
        # An edit inside the module that 0.2.0 renames (the migration must carry it over).
        renamed = dst / "tests" / "test_migrations.py"
        renamed.write_text(renamed.read_text() + "\n\n" + OWNER_SCHEMA_NOTE)
        touched += [
            str(revision.relative_to(dst)),
            "tests/test_migrations.py",
            "tests/test_schema.py",
        ]
    commit_all(dst, "owner edits")
    return touched


def assert_clean_merge(dst: Path, touched: list[str]) -> None:
    """No .rej file anywhere, no conflict marker in any file the owner did not touch."""
    leftovers = [str(p.relative_to(dst)) for p in dst.rglob("*.rej")]
    assert leftovers == [], leftovers
    for path in tracked_files(dst) + changed_files(dst):
        file = dst / path
        if path in touched or not file.is_file():
            continue
        assert not CONFLICT.search(file.read_text()), f"conflict markers in untouched {path}"


# These tests check that updated code passes its own suite; the event-loop guard's own
# threshold is proven by test_generated.py and test_guards.py. Here the suite shares two
# cores with other renders' suites, where a loop step of 0.7-1.3 s was seen without any
# blocking call: judge the loop even more generously than toolchain.py does.
SLOW_CALLBACK_SECONDS = str(max(2.0, float(os.environ.get("SLOW_CALLBACK_SECONDS", "0"))))


def service_env(database: str, request: pytest.FixtureRequest) -> dict[str, str]:
    # TEST_DATABASE_URL, when there is one, comes from toolchain.project_env.
    env = {"SLOW_CALLBACK_SECONDS": SLOW_CALLBACK_SECONDS}
    if database == "mongodb":
        env["TEST_MONGODB_URL"] = request.getfixturevalue("mongodb_url")
    return env


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql", "mongodb", "none"])
def test_update_keeps_owner_edits_and_brings_template_changes(
    history: Path,
    tmp_path: Path,
    database: str,
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
) -> None:
    dst = tmp_path / "orders"
    sql = database in {"sqlite", "postgresql"}
    generate(history, dst, {"database": database})
    err = capfd.readouterr().err
    assert "post-copy: initialised a git repository" in err
    assert (dst / "uv.lock").exists() or "post-copy: `uv lock`" in err
    assert answers_of(dst)["_commit"] == OLD
    assert not (dst / CHECK_UPDATE_WORKFLOW).exists()
    assert (dst / "tests" / "test_migrations.py").exists() == sql
    touched = make_owner_edits(dst, sql=sql)

    update(dst)

    err = capfd.readouterr().err
    assert "post-copy:" not in err, "copy-time tasks must not run on update"
    assert_clean_merge(dst, touched)
    assert answers_of(dst)["_commit"] == NEW
    assert answers_of(dst)["database"] == database
    # The template's changes arrived: a new file, a changed line, the renamed module.
    assert (dst / CHECK_UPDATE_WORKFLOW).exists()
    readme = (dst / "README.md").read_text()
    assert README_NEW in readme
    # The owner's edits survived.
    assert readme.endswith(OWNER_README)
    assert "app.include_router(pricing_router)" in (dst / "src" / PACKAGE / "app.py").read_text()
    assert (dst / "src" / PACKAGE / "pricing.py").read_text() == OWNER_MODULE
    assert (dst / "tests" / "test_pricing.py").read_text() == OWNER_TEST
    assert not (dst / "tests" / "test_migrations.py").exists()
    schema_test = "tests/test_schema.py"
    assert (dst / schema_test).exists() == sql
    if sql:
        # The 0.2.0 migration merged the owner's edit of the old module into the new name.
        merged = f"merged your edits of tests/test_migrations.py into {schema_test}"
        assert f"migration 0.2.0: {merged}\n" in err
        schema = (dst / schema_test).read_text()
        assert not CONFLICT.search(schema)
        assert schema.startswith(SCHEMA_DOC_NEW)  # the template's side
        assert schema.endswith(OWNER_SCHEMA_NOTE)  # the owner's side
        revision = dst / "src" / PACKAGE / "migrations" / "versions" / "0002_trim_item_names.py"
        assert revision.read_text() == OWNER_REVISION

    output = verify(dst, BASE_ANSWERS["python_version"], service_env(database, request))
    assert re.search(r"\d+ passed", output), output[-3000:]

    # Updating again with no new template version changes nothing.
    commit_all(dst, "update to 0.2.0")
    update(dst)
    assert git(dst, "status", "--porcelain", "--untracked-files=all") == ""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("before", "after"),
    [("sqlite", "postgresql"), ("sqlite", "none")],
    ids=["sqlite-to-postgresql", "sqlite-to-none"],
)
def test_changing_the_database_on_update_swaps_its_files(
    history: Path, tmp_path: Path, before: str, after: str, request: pytest.FixtureRequest
) -> None:
    """`copier update --data database=...` while also moving 0.1.0 -> 0.2.0."""
    dst = tmp_path / "orders"
    generate(history, dst, {"database": before})
    (dst / "src" / PACKAGE / "pricing.py").write_text(OWNER_MODULE)
    commit_all(dst, "owner module")

    update(dst, database=after)

    assert_clean_merge(dst, [])
    assert answers_of(dst)["database"] == after
    assert answers_of(dst)["_commit"] == NEW
    assert (dst / "src" / PACKAGE / "pricing.py").read_text() == OWNER_MODULE
    src = dst / "src" / PACKAGE
    present = {
        "tests/test_postgresql.py": after == "postgresql",
        "tests/test_schema.py": after != "none",
        "tests/test_migrations.py": False,
        "tests/fixtures_database.py": after != "none",
        f"src/{PACKAGE}/db": after != "none",
        f"src/{PACKAGE}/migrations": after != "none",
        f"src/{PACKAGE}/items": after != "none",
    }
    assert {path: (dst / path).exists() for path in present} == present
    dependencies = (dst / "pyproject.toml").read_text()
    assert ("aiosqlite" in dependencies) == (after == "sqlite")
    assert ("asyncpg" in dependencies) == (after == "postgresql")
    assert ("sqlalchemy" in dependencies.lower()) == (after != "none")
    if after == "none":
        assert not list(src.rglob("*sql*")), "SQL leftovers after dropping the database"

    output = verify(dst, BASE_ANSWERS["python_version"], service_env(after, request))
    assert re.search(r"\d+ passed", output), output[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("before", "after"),
    [("none", "httpx"), ("httpx", "aiohttp")],
    ids=["none-to-httpx", "httpx-to-aiohttp"],
)
def test_changing_the_http_client_on_update_swaps_its_files(
    history: Path, tmp_path: Path, before: str, after: str, request: pytest.FixtureRequest
) -> None:
    """`copier update --data http_client=...`: a gateway service gains or swaps its client."""
    dst = tmp_path / "gateway"
    generate(history, dst, {"database": "none", "http_client": before})
    (dst / "src" / PACKAGE / "pricing.py").write_text(OWNER_MODULE)
    commit_all(dst, "owner module")

    update(dst, http_client=after)

    assert_clean_merge(dst, [])
    assert answers_of(dst)["http_client"] == after
    assert (dst / "src" / PACKAGE / "pricing.py").read_text() == OWNER_MODULE
    for path in (f"src/{PACKAGE}/http.py", f"src/{PACKAGE}/upstream.py", "tests/test_upstream.py"):
        assert (dst / path).exists(), path
    http_module = (dst / "src" / PACKAGE / "http.py").read_text()
    assert ("import aiohttp" in http_module) == (after == "aiohttp")
    assert ("import httpx" in http_module) == (after == "httpx")
    dependencies = tomllib.loads((dst / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ;]", dep, maxsplit=1)[0] for dep in dependencies}
    assert after in names
    assert before not in names

    output = verify(dst, BASE_ANSWERS["python_version"], service_env("none", request))
    assert re.search(r"\d+ passed", output), output[-3000:]


CHECK_UPDATE = "uvx copier=={} check-update --output-format json ."


@pytest.mark.parametrize("ci", ["github", "gitlab"])
@pytest.mark.parametrize("available", [True, False])
def test_scheduled_check_update_job_fails_only_when_a_newer_version_is_out(
    tmp_path: Path, ci: str, available: bool
) -> None:
    """The generated job's script, run with `copier check-update`'s JSON report in place of
    the real call (which needs the template repository)."""
    dst = tmp_path / "svc"
    copier.run_copy(
        str(ROOT),
        str(dst),
        data={**BASE_ANSWERS, "ci": ci},
        defaults=True,
        vcs_ref="HEAD",
        unsafe=True,
        quiet=True,
        skip_tasks=True,
    )
    if ci == "github":
        job = yaml.safe_load((dst / CHECK_UPDATE_WORKFLOW).read_text())["jobs"]["check-update"]
        script = job["steps"][-1]["run"]
    else:
        job = yaml.safe_load((dst / ".gitlab-ci.yml").read_text())["template-update"]
        assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
        script = "\n".join(job["script"])
    minimum = yaml.safe_load((ROOT / "copier.yml").read_text())["_min_copier_version"]
    assert CHECK_UPDATE.format(minimum) in script
    report = {"update_available": available, "current_version": OLD, "latest_version": NEW}
    fake = f"echo '{json.dumps(report)}'"
    result = run(tmp_path, "bash", "-e", "-c", script.replace(CHECK_UPDATE.format(minimum), fake))
    assert result.returncode == (1 if available else 0), result.stdout + result.stderr
    if available and ci == "github":
        assert f"::error title=Template update available::template {NEW} is out" in result.stdout
    elif available:
        assert "A newer template version is out: run 'copier update --trust'" in result.stdout
