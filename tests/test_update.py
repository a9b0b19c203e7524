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
import tarfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml

from tests.matrix import render, renders_made_cheaper
from tests.toolchain import GIT_ENV, UV, check, find_python, run, sync, verify

ROOT = Path(__file__).resolve().parents[1]
V010, V020, NEW = "0.1.0", "0.2.0", "0.3.0"
RELEASES = ROOT / "tests" / "releases"
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


def clean_copy(source: Path, dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv")
    for name in ("template", "hooks"):
        shutil.copytree(source / name, dest / name, ignore=ignore)
    shutil.copy2(source / "copier.yml", dest / "copier.yml")


def replace_tree(repo: Path, source: Path) -> None:
    """The repository's files become exactly `source`'s template, hooks and copier.yml."""
    for path in repo.iterdir():
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    clean_copy(source, repo)


def tag(repo: Path, version: str) -> None:
    commit_all(repo, f"template {version}")
    git(repo, "tag", version)


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The released template trees: 0.2.0 as shipped (tests/releases/), 0.1.0 reshaped
    from it."""
    root = tmp_path_factory.mktemp("releases")
    with tarfile.open(RELEASES / f"{V020}.tar.gz") as archive:
        archive.extractall(root / V020, filter="data")
    shutil.copytree(root / V020, root / V010)
    shape_as_0_1_0(root / V010)
    return root


@pytest.fixture(scope="module")
def history(releases: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A template repository tagged 0.1.0 and 0.2.0 (releases) and 0.3.0 (the working tree)."""
    repo = tmp_path_factory.mktemp("template-history")
    git(repo, "init", "-q", "-b", "main")
    for version in (V010, V020):
        replace_tree(repo, releases / version)
        tag(repo, version)
    replace_tree(repo, ROOT)
    tag(repo, NEW)
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


def generate(
    history: Path, dst: Path, answers: Mapping[str, Any], ref: str, *, tasks: bool = False
) -> None:
    """`copier copy`, then the owner's first commit. The copy-time task (git init, uv lock)
    runs where a test checks it; elsewhere the test makes the repository itself, and the
    service's `uv sync` writes the lock (test_hooks.py covers the task)."""
    with renders_made_cheaper(in_repositories=True):
        copier.run_copy(
            str(history),
            str(dst),
            data={**BASE_ANSWERS, **answers},
            defaults=True,
            vcs_ref=ref,
            unsafe=True,
            quiet=True,
            skip_tasks=not tasks,
        )
    if not tasks:
        git(dst, "init", "-q", "-b", "main")
    commit_all(dst, "generated")


def update(dst: Path, ref: str | None = None, **data: Any) -> None:
    with renders_made_cheaper(in_repositories=True):
        copier.run_update(
            str(dst),
            data=data,
            defaults=True,
            overwrite=True,
            unsafe=True,
            quiet=True,
            conflict="inline",
            vcs_ref=ref,
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


def assert_clean_merge(dst: Path, touched: list[str]) -> None:
    """No .rej file anywhere, no conflict marker in any file the owner did not touch."""
    leftovers = [str(p.relative_to(dst)) for p in dst.rglob("*.rej")]
    assert leftovers == [], leftovers
    for path in tracked_files(dst) + changed_files(dst):
        file = dst / path
        if path in touched or not file.is_file():
            continue
        assert not CONFLICT.search(file.read_text()), f"conflict markers in untouched {path}"


def assert_no_conflicts(dst: Path) -> None:
    assert_clean_merge(dst, [])


# These tests check that updated code passes its own suite; the event-loop guard's own
# threshold is proven by test_generated.py and test_guards.py. Here the suite shares two
# cores with other renders' suites: judge the loop even more generously than toolchain.py.
SLOW_CALLBACK_SECONDS = str(max(2.0, float(os.environ.get("SLOW_CALLBACK_SECONDS", "0"))))


def service_env(database: str, request: pytest.FixtureRequest) -> dict[str, str]:
    # TEST_DATABASE_URL, when there is one, comes from toolchain.project_env.
    env = {"SLOW_CALLBACK_SECONDS": SLOW_CALLBACK_SECONDS}
    if database == "mongodb":
        env["TEST_MONGODB_URL"] = request.getfixturevalue("mongodb_url")
    return env


# What an updated service runs besides its owner's own tests when its template-kept code is
# proven identical to a fresh render (that code's whole suite runs in the covering set):
# the modules that exercise the owner's files (app.py, settings.py, items/, migrations).
OWNER_FACING = (
    "test_health.py",
    "test_settings.py",
    "test_items_api.py",
    "test_schema.py",
    "test_lifespan.py",
    "test_upstream.py",
    "test_upstream_live.py",
)
OWNER_TESTS = ("test_pricing.py",)


def template_kept(project: Path) -> dict[str, bytes]:
    """The files the template keeps current: the core and the generated tests."""
    roots = [project / "src" / PACKAGE / "core", project / "tests"]
    return {
        str(path.relative_to(project)): path.read_bytes()
        for root in roots
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def assert_core_is_a_fresh_render(
    dst: Path, request: pytest.FixtureRequest, owned: list[str]
) -> None:
    """Byte for byte what `copier copy` of the new version (the working tree, as a snapshot)
    renders with the same answers, but for the files the owner wrote or edited (`owned`)."""
    answers = {k: v for k, v in answers_of(dst).items() if not k.startswith("_")}
    fresh = request.getfixturevalue("tmp_path") / "fresh"
    with renders_made_cheaper():
        render(fresh, answers, source=request.getfixturevalue("template_snapshot"))
    updated, rendered = template_kept(dst), template_kept(fresh)
    for name in owned:
        updated.pop(name, None)
        rendered.pop(name, None)
    assert sorted(updated) == sorted(rendered)
    differ = [name for name in rendered if updated[name] != rendered[name]]
    assert not differ, f"template-kept files differ from a fresh render: {differ}"


def assert_suite_passes(
    dst: Path,
    database: str,
    request: pytest.FixtureRequest,
    *,
    whole: bool = False,
    owned: list[str] | None = None,
) -> None:
    """`whole`: lint, types and the whole suite, its owner's routes fuzzed too, but for the
    signal tests (the process's drain and exit on SIGTERM and SIGINT: core code that the
    owner's growth does not change, tested by the covering set). Otherwise the core and
    generated tests must equal a fresh render (whose suite the covering set runs), and lint
    plus the owner-facing and owner's own tests run."""
    if whole:
        output = verify(
            dst, BASE_ANSWERS["python_version"], service_env(database, request),
            ("--ignore=tests/test_signals.py",),
        )  # fmt: skip
    else:
        assert_core_is_a_fresh_render(dst, request, owned or [])
        chosen = tuple(
            f"tests/{name}"
            for name in OWNER_FACING + OWNER_TESTS
            if (dst / "tests" / name).exists()
        )
        output = verify(
            dst, BASE_ANSWERS["python_version"], service_env(database, request), chosen,
            types=False,
        )  # fmt: skip
    assert re.search(r"\d+ passed", output), output[-3000:]


# ---- from a release before 0.3.0 (the old layout) --------------------------------------

PRICING = f"""\"\"\"Prices with VAT: the owner's own module, added after generation.\"\"\"

from fastapi import APIRouter

from {PACKAGE}.deps import SettingsDep
from {PACKAGE}.errors import NotFoundError

router = APIRouter(prefix="/pricing", tags=["pricing"])


def with_vat(cents: int, rate_percent: int) -> int:
    \"\"\"The gross price in cents, rounded half up.\"\"\"
    return cents + (cents * rate_percent + 50) // 100


@router.get("/vat/{{cents}}", responses={{404: {{"description": "No such price"}}}})
async def vat(cents: int, settings: SettingsDep) -> dict[str, int]:
    if cents > 10**9:
        raise NotFoundError("no such price")
    return {{"cents": cents, "with_vat": with_vat(cents, settings.pricing_vat_percent)}}
"""
# The same module after 0.3.0: its imports point at the modules' new places.
PRICING_AFTER = PRICING.replace(
    f"from {PACKAGE}.deps import SettingsDep\nfrom {PACKAGE}.errors import NotFoundError\n",
    f"from {PACKAGE}.core.errors import NotFoundError\nfrom {PACKAGE}.settings import SettingsDep\n",
)

PRICING_TEST = f"""\"\"\"The owner's own tests: the module, its setting and its route.\"\"\"

from httpx import AsyncClient

from {PACKAGE}.pricing import with_vat
from {PACKAGE}.settings import Settings


def test_with_vat_rounds_half_up() -> None:
    assert with_vat(1000, 20) == 1200
    assert with_vat(3, 20) == 4


def test_vat_rate_is_a_setting() -> None:
    assert Settings(_env_file=None, pricing_vat_percent=7).pricing_vat_percent == 7


async def test_route_is_mounted(client: AsyncClient) -> None:
    response = await client.get("/pricing/vat/1000")
    assert response.json() == {{"cents": 1000, "with_vat": 1200}}
"""


def alembic_revision(title: str, upgrade: str, downgrade: str = "pass") -> str:
    """A revision file as `db revision` writes it: 0002, after the template's 0001."""
    return f"""\"\"\"{title}

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
\"\"\"

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    {upgrade}


def downgrade() -> None:
    {downgrade}
"""


OWNER_REVISION = alembic_revision(
    "Trim item names (the owner's own revision, after the template's 0001).",
    'op.execute(sa.text("UPDATE items SET name = trim(name)"))',
)
OWNER_README = "\n## On call\n\nPage #orders-oncall; runbook in the wiki.\n"
OWNER_SCHEMA_NOTE = "# Owner: run `uv run orders db revision` after changing a model.\n"
VAT_FIELD = "    pricing_vat_percent: int = Field(default=20, ge=0, le=100)\n"


def grow_old_layout(dst: Path, *, sql: bool, version: str) -> list[str]:
    """What a team does to a service of the old layout; returns the paths it touched."""
    code = dst / "src" / PACKAGE
    app = code / "app.py"
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
    settings = code / "settings.py"
    anchor = '    service_name: str = "orders"\n'
    assert anchor in settings.read_text()
    settings.write_text(settings.read_text().replace(anchor, anchor + VAT_FIELD))
    (code / "pricing.py").write_text(PRICING)
    (dst / "tests" / "test_pricing.py").write_text(PRICING_TEST)
    with (dst / "README.md").open("a") as readme:
        readme.write(OWNER_README)
    touched = [f"src/{PACKAGE}/pricing.py", "tests/test_pricing.py", "README.md"]
    if sql:
        revision = code / "migrations" / "versions" / "0002_trim_item_names.py"
        revision.write_text(OWNER_REVISION)
        touched.append(str(revision.relative_to(dst)))
    if sql and version == V010:
        # An edit inside the module that 0.2.0 renames (that migration carries it over).
        renamed = dst / "tests" / "test_migrations.py"
        renamed.write_text(renamed.read_text() + "\n\n" + OWNER_SCHEMA_NOTE)
        touched += ["tests/test_migrations.py", "tests/test_schema.py"]
    commit_all(dst, "owner edits")
    return touched


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql", "mongodb", "none"])
@pytest.mark.parametrize("version", [V010, V020])
def test_update_from_a_release_moves_into_the_new_layout_keeping_owner_edits(
    history: Path,
    tmp_path: Path,
    version: str,
    database: str,
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
) -> None:
    dst = tmp_path / "orders"
    sql = database in {"sqlite", "postgresql"}
    tasks = (version, database) == (V020, "sqlite")
    generate(history, dst, {"database": database}, ref=version, tasks=tasks)
    err = capfd.readouterr().err
    assert ("post-copy: initialised a git repository" in err) == tasks
    assert answers_of(dst)["_commit"] == version
    touched = grow_old_layout(dst, sql=sql, version=version)

    update(dst)

    err = capfd.readouterr().err
    assert "post-copy:" not in err, "copy-time tasks must not run on update"
    assert_clean_merge(dst, touched)
    assert answers_of(dst)["_commit"] == NEW
    assert answers_of(dst)["database"] == database
    code = dst / "src" / PACKAGE
    # The new layout: the template's code under core/, the old modules gone.
    assert (code / "core" / "app.py").is_file()
    assert not (code / "lifespan.py").exists()
    assert (dst / CHECK_UPDATE_WORKFLOW).exists()
    assert README_NEW in (dst / "README.md").read_text()
    # The owner's router and setting moved into the service's new app.py and settings.py.
    carried = "carried your edits over: app.py -> app.py, settings.py -> settings.py"
    assert f"{carried}; pointed imports at the new modules in: src/{PACKAGE}/pricing.py" in err
    app = (code / "app.py").read_text()
    assert f"from {PACKAGE}.pricing import router as pricing_router" in app
    assert re.search(r"routers=\[.*pricing_router\]", app), app
    assert VAT_FIELD in (code / "settings.py").read_text()
    # The owner's own files survived as they were.
    assert (dst / "README.md").read_text().endswith(OWNER_README)
    assert PRICING_AFTER != PRICING
    assert (code / "pricing.py").read_text() == PRICING_AFTER
    assert (dst / "tests" / "test_pricing.py").read_text() == PRICING_TEST
    assert not (dst / "tests" / "test_migrations.py").exists()
    if sql:
        revision = code / "migrations" / "versions" / "0002_trim_item_names.py"
        assert revision.read_text() == OWNER_REVISION
    if sql and version == V010:
        merged = "merged your edits of tests/test_migrations.py into tests/test_schema.py"
        assert f"migration 0.2.0: {merged}\n" in err
        schema = (dst / "tests" / "test_schema.py").read_text()
        assert not CONFLICT.search(schema)
        assert schema.endswith(OWNER_SCHEMA_NOTE)

    assert_suite_passes(dst, database, request, owned=touched)

    if version == V010:
        # Updating again with no new template version changes nothing. (From 0.2.0 the
        # service arrives at the same 0.3.0 files, less the 0.2.0 migration's merge.)
        commit_all(dst, f"update to {NEW}")
        update(dst)
        assert git(dst, "status", "--porcelain", "--untracked-files=all") == ""


# ---- a service of the new layout, grown by its team, across two core-changing releases ----

ORDERS_OPENER = f"""\"\"\"A resource of the service's own: a price list opened at startup.\"\"\"

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from {PACKAGE}.core.deps import resource_dependency
from {PACKAGE}.core.resources import Resources


@dataclass
class PriceList:
    cents: dict[str, int] = field(default_factory=dict)
    closed: bool = False


async def open_price_list(stack: AsyncExitStack, resources: Resources) -> None:
    prices = PriceList({{"widget": 250}})

    async def close() -> None:
        prices.closed = True

    stack.push_async_callback(close)
    resources.add(prices)


PriceListDep = Annotated[PriceList, Depends(resource_dependency(PriceList))]
"""

ORDERS_ROUTER = f"""\"\"\"The service's own slice: quotes from its price list and its VAT setting.\"\"\"

from fastapi import APIRouter

from {PACKAGE}.core.errors import NotFoundError
from {PACKAGE}.orders.prices import PriceListDep
from {PACKAGE}.settings import SettingsDep

router = APIRouter(prefix="/orders", tags=["orders"])


# Every answer a route can give is declared: the service's fuzz test checks them.
@router.get("/quote/{{product}}", responses={{404: {{"description": "No such product"}}}})
async def quote(product: str, prices: PriceListDep, settings: SettingsDep) -> dict[str, int]:
    net = prices.cents.get(product)
    if net is None:
        raise NotFoundError(f"no price for {{product!r}}")
    return {{"net": net, "gross": net + net * settings.orders_vat_percent // 100}}
"""

ORDERS_TEST = """\"\"\"The service's own slice, its resource and its setting.\"\"\"

from httpx import AsyncClient


async def test_quote_uses_the_price_list_and_the_vat_setting(client: AsyncClient) -> None:
    response = await client.get("/orders/quote/widget")
    assert response.json() == {"net": 250, "gross": 300}


async def test_items_are_stored_with_the_new_column(client: AsyncClient) -> None:
    created = await client.post("/items", json={"name": "w", "quantity": 1})
    assert created.status_code == 201, created.text
"""

COLOUR_REVISION = alembic_revision(
    "Items get a colour (the service's own revision).",
    'op.add_column("items", sa.Column("colour", sa.String(32), nullable=True))',
    'op.drop_column("items", "colour")',
)
ORM_ANCHOR = '    __tablename__ = "items"\n'
COLOUR_COLUMN = "    colour: Mapped[str | None] = mapped_column(String(32), default=None)\n"
OWN_DEPENDENCY = '    "six>=1.16",\n'


def uv_add_own_dependency(dst: Path) -> None:
    """As a team adds one: uv puts it below the template's marked lines (--frozen: no lock)."""
    python = find_python(BASE_ANSWERS["python_version"])
    added = run(dst, UV, "add", "--frozen", "--python", python, OWN_DEPENDENCY.strip(' ",\n'))
    assert added.returncode == 0, added.stderr
    assert "    # with them.\n" + OWN_DEPENDENCY in (dst / "pyproject.toml").read_text()


def grow_new_layout(dst: Path) -> None:
    """What a team does with a service of the new layout, each in the room made for it."""
    code = dst / "src" / PACKAGE
    (code / "orders").mkdir()
    (code / "orders" / "__init__.py").write_text("")
    (code / "orders" / "prices.py").write_text(ORDERS_OPENER)
    (code / "orders" / "router.py").write_text(ORDERS_ROUTER)
    (dst / "tests" / "test_orders.py").write_text(ORDERS_TEST)
    app = code / "app.py"
    text = app.read_text()
    text = text.replace(
        f"from {PACKAGE}.items.router import router as items_router\n",
        f"from {PACKAGE}.items.router import router as items_router\n"
        f"from {PACKAGE}.orders.prices import open_price_list\n"
        f"from {PACKAGE}.orders.router import router as orders_router\n",
    )
    text = text.replace("routers=[items_router", "routers=[items_router, orders_router")
    text = text.replace("    resources=[],\n", "    resources=[open_price_list],\n")
    assert "orders_router," in text and "open_price_list]" in text
    app.write_text(text)
    settings = code / "settings.py"
    anchor = 'naming the variable."""\n'
    assert anchor in settings.read_text()
    settings.write_text(
        settings.read_text().replace(anchor, anchor + "\n    orders_vat_percent: int = 20\n")
    )
    uv_add_own_dependency(dst)
    orm = code / "items" / "orm.py"
    assert ORM_ANCHOR in orm.read_text()
    text = orm.read_text().replace(ORM_ANCHOR, ORM_ANCHOR + "\n" + COLOUR_COLUMN)
    assert "String," in text, "the column's type is imported already"
    orm.write_text(text)
    (code / "migrations" / "versions" / "0002_item_colour.py").write_text(COLOUR_REVISION)
    commit_all(dst, "the team's growth")


# Template changes of the kind that broke grown services before 0.3.0: the core's router
# mounting, settings, lifespan and dependency list, and the seams' own template files.
CORE_CHANGES = {
    "0.3.1": [
        (
            "template/src/{{package_name}}/core/app.py.jinja",
            "        mount_routers(app, (*self.routers, health_router))\n",
            (
                "        # The service's routers, in its order.\n"
                "        mount_routers(app, (*self.routers, health_router))\n"
            ),
        ),
        (
            "template/src/{{package_name}}/core/settings.py.jinja",
            "    access_log: bool = True\n",
            (
                "    access_log: bool = True\n    # Template 0.3.1: a core setting.\n"
                "    trace_headers: bool = False\n"
            ),
        ),
        (
            # A new setting gets its README row (tests/test_settings.py in the service).
            "template/README.md.jinja",
            "| one structured line per request |\n",
            (
                "| one structured line per request |\n"
                "| `{{ package_name | upper }}_TRACE_HEADERS` | `false` | template 0.3.1 |\n"
            ),
        ),
        (
            "template/pyproject.toml.jinja",
            '    "uvicorn[standard]>=0.32",\n',
            '    "uvicorn[standard]>=0.33",  # template 0.3.1\n',
        ),
        (
            # The template's last dependency line, right above the service's own.
            "template/_parts/dependencies/observability-prometheus.toml",
            '"prometheus-client>=0.21",  # /metrics',
            '"prometheus-client>=0.21",  # template 0.3.1: /metrics',
        ),
        (
            "template/src/{{package_name}}/app.py.jinja",
            "service = Service(\n",
            "# Template 0.3.1 changed this file; services keep theirs.\nservice = Service(\n",
        ),
    ],
    "0.4.0": [
        (
            "template/src/{{package_name}}/core/lifespan.py.jinja",
            "        tune_garbage_collector(settings)\n",
            "        tune_garbage_collector(settings)  # template 0.4.0\n",
        ),
        (
            "template/src/{{package_name}}/core/app.py.jinja",
            "        app.state.inflight = InFlightRequests()\n",
            "        app.state.inflight = InFlightRequests()  # template 0.4.0: in flight\n",
        ),
        (
            "template/src/{{package_name}}/settings.py.jinja",
            "class Settings(ServiceSettings):\n",
            "class Settings(ServiceSettings):  # template 0.4.0\n",
        ),
    ],
}


@pytest.fixture(scope="module")
def later_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.3.0 (the working tree), then 0.3.1 and 0.4.0 that change the core."""
    repo = tmp_path_factory.mktemp("template-later")
    git(repo, "init", "-q", "-b", "main")
    replace_tree(repo, ROOT)
    tag(repo, NEW)
    for version, changes in CORE_CHANGES.items():
        for path, anchor, replacement in changes:
            file = repo / path
            assert anchor in file.read_text(), f"{path}: the template changed; update {version}"
            file.write_text(file.read_text().replace(anchor, replacement, 1))
        tag(repo, version)
    return repo


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite"])
def test_grown_service_takes_core_updates_without_conflicts(
    later_history: Path, tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    dst = tmp_path / "orders"
    generate(later_history, dst, {"database": database}, ref=NEW)
    grow_new_layout(dst)
    code = dst / "src" / PACKAGE
    owned = {path: (code / path).read_text() for path in ("app.py", "settings.py")}
    grown = {path: (dst / path).read_text() for path in tracked_files(dst)}

    for version in CORE_CHANGES:
        update(dst, ref=version)
        assert answers_of(dst)["_commit"] == version
        assert_no_conflicts(dst)
        commit_all(dst, f"update to {version}")

    # The seams are never touched; the template's changes reached the core and pyproject.
    assert {path: (code / path).read_text() for path in owned} == owned
    assert "trace_headers: bool = False" in (code / "core" / "settings.py").read_text()
    assert "# template 0.4.0: in flight" in (code / "core" / "app.py").read_text()
    pyproject = (dst / "pyproject.toml").read_text()
    assert '"uvicorn[standard]>=0.33",  # template 0.3.1' in pyproject
    assert OWN_DEPENDENCY in pyproject
    # Every file the team added or changed is as the team left it.
    for path in ("src/orders/orders/prices.py", "src/orders/orders/router.py"):
        assert (dst / path).read_text() == grown[path]
    for path in ("tests/test_orders.py", "src/orders/migrations/versions/0002_item_colour.py"):
        assert (dst / path).read_text() == grown[path]
    assert COLOUR_COLUMN in (code / "items" / "orm.py").read_text()

    assert_suite_passes(dst, database, request, whole=True)


OWN_FIXTURES = """\"\"\"The orders slice's fixtures (README: its fixtures go in tests/fixtures_orders.py).\"\"\"

import pytest


@pytest.fixture
def order_quota() -> int:
    return 3
"""
OWN_FIXTURES_TEST = """\"\"\"The orders slice's test, on a fixture of its own module.\"\"\"


def test_the_slices_fixture_is_found(order_quota: int) -> None:
    assert order_quota == 3
"""


@pytest.mark.slow
def test_a_slices_fixtures_module_is_loaded_without_editing_conftest(
    history: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """conftest.py is the template's (an option switch rewrites its plugins), so registering
    a slice's fixtures there was a conflict waiting for the next update."""
    dst = tmp_path / "orders"
    generate(history, dst, {}, ref=NEW)
    (dst / "tests" / "fixtures_orders.py").write_text(OWN_FIXTURES)
    (dst / "tests" / "test_orders.py").write_text(OWN_FIXTURES_TEST)

    sync(dst, BASE_ANSWERS["python_version"])
    pytest_run = (UV, "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider")
    output = check(dst, *pytest_run, "tests/test_orders.py", env=service_env("sqlite", request))
    assert "1 passed" in output, output[-3000:]


# ---- changing an option on update --------------------------------------------------------

PLAIN_MODULE = '''"""The owner's own module, added after generation."""


def double(value: int) -> int:
    return 2 * value
'''


@pytest.mark.slow
@pytest.mark.parametrize(
    ("before", "after"),
    [("sqlite", "postgresql"), ("sqlite", "none")],
    ids=["sqlite-to-postgresql", "sqlite-to-none"],
)
def test_changing_the_database_on_update_swaps_its_files(
    history: Path, tmp_path: Path, before: str, after: str, request: pytest.FixtureRequest
) -> None:
    """`copier update --data database=...`; app.py is the team's, so dropping the database
    (and with it the items example) is followed by removing items from app.py."""
    dst = tmp_path / "orders"
    generate(history, dst, {"database": before}, ref=NEW)
    (dst / "src" / PACKAGE / "plain.py").write_text(PLAIN_MODULE)
    commit_all(dst, "owner module")

    update(dst, database=after)

    assert_no_conflicts(dst)
    assert answers_of(dst)["database"] == after
    src = dst / "src" / PACKAGE
    present = {
        "tests/test_postgresql.py": after == "postgresql",
        "tests/test_schema.py": after != "none",
        "tests/fixtures_database.py": True,
        f"src/{PACKAGE}/core/db": after != "none",
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
        app = src / "app.py"
        app.write_text(
            app.read_text()
            .replace(f"from {PACKAGE}.items.router import router as items_router\n", "")
            .replace("routers=[items_router, gateway_router]", "routers=[gateway_router]")
        )

    assert_suite_passes(dst, after, request)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("before", "after"),
    [("none", "httpx"), ("httpx", "aiohttp")],
    ids=["none-to-httpx", "httpx-to-aiohttp"],
)
def test_changing_the_http_client_on_update_swaps_its_files(
    history: Path, tmp_path: Path, before: str, after: str, request: pytest.FixtureRequest
) -> None:
    """`copier update --data http_client=...`: the client's core modules and dependencies
    change; the team mounts the gateway example in its app.py if it wants it."""
    dst = tmp_path / "gateway"
    generate(history, dst, {"database": "none", "http_client": before}, ref=NEW)

    update(dst, http_client=after)

    assert_no_conflicts(dst)
    assert answers_of(dst)["http_client"] == after
    core = dst / "src" / PACKAGE / "core"
    for path in (core / "http.py", core / "upstream.py", dst / "tests" / "test_upstream.py"):
        assert path.exists(), path
    http_module = (core / "http.py").read_text()
    assert ("import aiohttp" in http_module) == (after == "aiohttp")
    assert ("import httpx" in http_module) == (after == "httpx")
    dependencies = tomllib.loads((dst / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ;]", dep, maxsplit=1)[0] for dep in dependencies}
    assert after in names
    assert before not in names
    app = dst / "src" / PACKAGE / "app.py"
    if "gateway_router" not in app.read_text():
        app.write_text(
            app.read_text()
            .replace(
                f"from {PACKAGE}.settings import Settings\n",
                f"from {PACKAGE}.gateway import router as gateway_router\n"
                f"from {PACKAGE}.settings import Settings\n",
            )
            .replace("routers=[]", "routers=[gateway_router]")
        )

    assert_suite_passes(dst, "none", request)


@pytest.mark.slow
@pytest.mark.parametrize("observability", ["prometheus", "otel"])
def test_uv_add_then_dropping_the_last_option_on_update_does_not_conflict(
    history: Path, tmp_path: Path, observability: str
) -> None:
    """`uv add` drops any blank line above the marker comment, so a template line right
    above it would be the owner's neighbour: dropping observability removes that line."""
    dst = tmp_path / "orders"
    generate(history, dst, {"observability": observability}, ref=NEW)
    uv_add_own_dependency(dst)
    commit_all(dst, "own dependency")

    update(dst, observability="none")

    assert_no_conflicts(dst)
    pyproject = (dst / "pyproject.toml").read_text()
    assert "prometheus-client" not in pyproject
    assert "    # with them.\n" + OWN_DEPENDENCY in pyproject


@pytest.mark.slow
def test_dropping_the_example_on_update_keeps_its_applied_revision(
    history: Path, tmp_path: Path
) -> None:
    """`--data example_resource=no` no longer renders items' 0001, but a database that
    applied it, and the team's revision after it, need it: without it `db upgrade` fails
    with "Can't locate revision identified by '0001'"."""
    dst = tmp_path / "orders"
    generate(history, dst, {}, ref=NEW)
    versions = dst / "src" / PACKAGE / "migrations" / "versions"
    (versions / "0002_item_colour.py").write_text(COLOUR_REVISION)
    commit_all(dst, "own revision")
    first = (versions / "0001_create_items.py").read_text()

    update(dst, example_resource=False)

    assert not (dst / "src" / PACKAGE / "items").exists()
    assert (versions / "0001_create_items.py").read_text() == first
    assert (versions / "0002_item_colour.py").read_text() == COLOUR_REVISION
    assert_no_conflicts(dst)


OWN_DEV_DEPENDENCY = "pytest-mock"


@pytest.mark.slow
def test_uv_add_dev_then_switching_an_option_on_update_does_not_conflict(
    history: Path, tmp_path: Path
) -> None:
    """`uv add --dev` puts a team's test tool where it sorts among the dev group's lines:
    aiohttp instead of httpx drops respx, the line right after it."""
    dst = tmp_path / "orders"
    generate(history, dst, {}, ref=NEW)
    python = find_python(BASE_ANSWERS["python_version"])
    added = run(dst, UV, "add", "--frozen", "--python", python, "--dev", OWN_DEV_DEPENDENCY)
    assert added.returncode == 0, added.stderr
    commit_all(dst, "own dev dependency")

    update(dst, http_client="aiohttp")

    assert_no_conflicts(dst)
    groups = tomllib.loads((dst / "pyproject.toml").read_text())["dependency-groups"]
    assert OWN_DEV_DEPENDENCY in groups["dev"]
    lines = [line for group in groups.values() for line in group if isinstance(line, str)]
    assert not [line for line in lines if line.startswith("respx")]


OWN_SETTING = f"# The most units one order may take.\n{PACKAGE.upper()}_ORDERS_MAX_QUANTITY=100\n"
ENV_FILES = (".env.example", "deploy/kubernetes/base/settings.env")


@pytest.mark.slow
def test_own_setting_values_then_dropping_the_last_option_on_update_do_not_conflict(
    history: Path, tmp_path: Path
) -> None:
    """A team writes its setting's value where the template's are (README: below the
    "service's own settings" comment, the files' last lines): dropping observability
    removes the template's settings at the end of both files."""
    dst = tmp_path / "orders"
    generate(history, dst, {}, ref=NEW)
    for name in ENV_FILES:
        with (dst / name).open("a") as env:
            env.write(OWN_SETTING)
    commit_all(dst, "own setting")

    update(dst, observability="none")

    assert_no_conflicts(dst)
    for name in ENV_FILES:
        text = (dst / name).read_text()
        assert "METRICS_PORT" not in text, name
        assert text.endswith(OWN_SETTING), name


CHECK_UPDATE = "uvx copier=={} check-update --output-format json ."


@pytest.mark.parametrize("ci", ["github", "gitlab"])
@pytest.mark.parametrize("available", [True, False])
def test_scheduled_check_update_job_fails_only_when_a_newer_version_is_out(
    tmp_path: Path, ci: str, available: bool, template_snapshot: Path
) -> None:
    """The generated job's script, run with `copier check-update`'s JSON report in place of
    the real call (which needs the template repository)."""
    dst = tmp_path / "svc"
    with renders_made_cheaper():
        render(dst, {**BASE_ANSWERS, "ci": ci}, source=template_snapshot)
    if ci == "github":
        job = yaml.safe_load((dst / CHECK_UPDATE_WORKFLOW).read_text())["jobs"]["check-update"]
        script = job["steps"][-1]["run"]
    else:
        job = yaml.safe_load((dst / ".gitlab-ci.yml").read_text())["template-update"]
        assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
        script = "\n".join(job["script"])
    minimum = yaml.safe_load((ROOT / "copier.yml").read_text())["_min_copier_version"]
    assert CHECK_UPDATE.format(minimum) in script
    report = {"update_available": available, "current_version": V020, "latest_version": NEW}
    fake = f"echo '{json.dumps(report)}'"
    result = run(tmp_path, "bash", "-e", "-c", script.replace(CHECK_UPDATE.format(minimum), fake))
    assert result.returncode == (1 if available else 0), result.stdout + result.stderr
    if available and ci == "github":
        assert f"::error title=Template update available::template {NEW} is out" in result.stdout
    elif available:
        assert "A newer template version is out: run 'copier update --trust'" in result.stdout
