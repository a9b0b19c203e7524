"""Every combination of options renders; unchosen options leave no files behind; no Jinja
survives; config files parse."""

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.matrix import CODE_PATHS, RENDERS, code_key, combinations, params, quick_set

QUICK = frozenset(quick_set())
PACKAGE = "matrix_service"
JINJA = re.compile(r"(?<!\$)\{\{[^}]*\}\}|\{%-?\s|\s-?%\}")


def test_quick_loop_renders_every_pair_of_answers() -> None:
    """The quick loop's renders meet every pair of values of every answer (ci and docker
    included) that a valid combination has; a full run checks every combination."""

    def pairs(combo: dict[str, Any]) -> set[tuple[tuple[str, Any], tuple[str, Any]]]:
        return {(a, b) for a in combo.items() for b in combo.items() if a[0] < b[0]}

    needed = set().union(*(pairs(c) for c in combinations()))
    assert needed - set().union(*(pairs(RENDERS.answers[c]) for c in QUICK)) == set()
    assert len(QUICK) < len(combinations()) / 10


def expected_presence(answers: dict[str, Any]) -> dict[str, bool]:
    database, http = answers["database"], answers["http_client"]
    metrics = answers["observability"] != "none"
    traces = answers["observability"] == "otel"  # the same metrics, and traces
    sql = database in {"sqlite", "postgresql"}
    items = database != "none" and answers.get("example_resource", False)
    src, core = f"src/{PACKAGE}", f"src/{PACKAGE}/core"
    return {
        # The service's own rooms and the template's core.
        f"{src}/app.py": True,
        f"{src}/settings.py": True,
        f"{core}/app.py": True,
        f"{core}/options.py": True,
        f"{src}/lifespan.py": False,  # moved into core/ in 0.3.0 (hooks/migrations/)
        f"{src}/deps.py": False,
        f"{src}/db": False,
        f"{core}/db": database != "none",
        f"{core}/db/engine.py": sql,
        f"{core}/db/sql.py": sql,
        f"{core}/db/mongo.py": database == "mongodb",
        f"{core}/db/greenlets.py": database == "postgresql",
        "tests/test_greenlets.py": database == "postgresql",
        f"{src}/migrations/env.py": sql,
        f"{src}/items": items,
        f"{src}/items/repository_sql.py": items and sql,
        f"{src}/items/repository_mongo.py": items and database == "mongodb",
        f"{src}/items/reader_pg.py": items and database == "postgresql",
        f"{src}/items/writer_pg.py": items and database == "postgresql",
        "tests/test_item_writer.py": items and database == "postgresql",
        f"{src}/items/deps.py": items,
        f"{core}/http.py": http != "none",
        f"{core}/upstream.py": http != "none",
        f"{core}/fanout.py": http != "none",
        f"{src}/gateway.py": http != "none",
        "tests/upstream_server.py": http != "none",
        "tests/test_fuzz_gateway.py": http != "none",
        "tests/fuzzing.py": True,
        f"{core}/links.py": True,
        "tests/test_upstream.py": http != "none",
        "tests/test_upstream_live.py": http != "none",
        "tests/test_fanout.py": http != "none",
        "tests/test_settings_http.py": http != "none",
        "tests/test_options.py": database != "none" or http != "none",
        "tests/test_items_api.py": items,
        "tests/fakes.py": items,
        "tests/test_schema.py": sql,
        "tests/test_timeouts_sql.py": sql,
        "tests/test_migrations.py": False,  # renamed in 0.2.0 (hooks/migrations/)
        "tests/fixtures_database.py": True,
        "tests/test_cli_database.py": database != "none",
        "tests/test_postgresql.py": database == "postgresql",
        "tests/fixtures_items.py": items,
        "tests/test_items_concurrency_sql.py": items and sql,
        "tests/test_mongo.py": database == "mongodb",
        f"{core}/metrics.py": metrics,
        "tests/scrape.py": metrics,
        "tests/test_metrics.py": metrics,
        "tests/test_metrics_port.py": metrics,
        "tests/test_metrics_pool.py": metrics and sql,
        "tests/test_metrics_upstream.py": metrics and http != "none",
        "tests/test_dashboard.py": metrics,
        "observability/prometheus.yml": metrics,
        "observability/grafana/dashboards/service.json": metrics,
        f"{core}/tracing.py": traces,
        f"{core}/server_spans.py": traces,
        f"{core}/traced_db.py": False,  # traced_sql.py, traced_reads.py, traced_mongo.py
        f"{core}/traced_sql.py": traces and sql,
        f"{core}/traced_reads.py": traces and database == "postgresql",
        f"{core}/traced_mongo.py": traces and database == "mongodb",
        f"{core}/traced_http.py": traces and http != "none",
        "tests/fixtures_tracing.py": traces,
        "tests/test_tracing.py": traces,
        "tests/test_tracing_items.py": traces and items,
        "tests/test_tracing_upstream.py": traces and http != "none",
        "Dockerfile": answers["docker"],
        "compose.yaml": answers["docker"],
        ".github/workflows/ci.yml": answers["ci"] == "github",
        ".github/workflows/template-update.yml": answers["ci"] == "github",
        ".gitlab-ci.yml": answers["ci"] == "gitlab",
        "_parts": False,  # included by the README and pyproject, never copied
    }


def project_of(combo: str) -> Path:
    return RENDERS.project(combo)


def answers_of(combo: str) -> dict[str, Any]:
    return RENDERS.answers[combo]


# The render whose code (src/, tests/, pyproject.toml) the checks read for each combination:
# its own, or one of the same variant (the combinations that agree on the answers that change
# code), a quick-set one where there is one, so the quick loop reads every variant it renders.
# The others' code is byte-identical (each test compares the hashes): their checks read only
# the files outside it (CI, Docker, README). quick_set() is a list: every worker agrees.
_readers = {code_key(RENDERS.answers[cid]): cid for cid in quick_set()}
CODE_READ_IN = {
    cid: _readers.setdefault(code_key(answers), cid) for cid, answers in RENDERS.answers.items()
}


def files_to_read(project: Path, combo: str) -> list[Path]:
    """Every file of the render, or, where another render of the same code is read whole,
    the files outside the code once the two codes are shown to be the same."""
    found = [path for path in project.rglob("*") if path.is_file()]
    if CODE_READ_IN[combo] == combo:
        return found
    assert RENDERS.code(combo) == RENDERS.code(CODE_READ_IN[combo]), "same answers, other code"
    code = tuple(project / top for top in CODE_PATHS)
    return [path for path in found if not any(path.is_relative_to(top) for top in code)]


Check = Callable[[Path, dict[str, Any], list[Path]], None]
# What every rendered combination must satisfy; one test per combination runs them all and
# names each that fails (7,000 tests of a few milliseconds each cost more to run than to check).
CHECKS: list[Check] = []


def check(function: Check) -> Check:
    CHECKS.append(function)
    return function


@check
def files_of_chosen_options_only(project: Path, answers: dict[str, Any], _: list[Path]) -> None:
    expected = expected_presence(answers)
    assert {path: (project / path).exists() for path in expected} == expected


@check
def no_jinja_survives(project: Path, _: dict[str, Any], files: list[Path]) -> None:
    for path in files:
        if path.suffix != ".mako":
            text = path.read_text()
            assert not JINJA.search(text), f"Jinja syntax left in {path.relative_to(project)}"
        assert "{" not in path.name, f"unrendered file name {path.relative_to(project)}"
        assert not path.name.endswith(".jinja"), path


@check
def python_version_is_the_chosen_one(project: Path, answers: dict[str, Any], _: list[Path]) -> None:
    version = answers["python_version"]
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={version}"
    assert (project / ".python-version").read_text().strip() == version


@check
def answers_are_recorded(project: Path, answers: dict[str, Any], _: list[Path]) -> None:
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert {key: recorded.get(key) for key in answers} == answers


@check
def yaml_files_parse(project: Path, _: dict[str, Any], files: list[Path]) -> None:
    for path in files:
        # Kubernetes manifests (deploy/**/*.yaml) hold several documents: test_deploy.py.
        top_level = path.parent == project and path.suffix in {".yml", ".yaml"}
        if (top_level or path.suffix == ".yml") and path.name != ".copier-answers.yml":
            assert yaml.safe_load(path.read_text()), path.relative_to(project)


@check
def opentelemetry_only_with_traces(
    project: Path, answers: dict[str, Any], files: list[Path]
) -> None:
    """Zero cost without `otel`: no dependency, no import, no middleware, no setting."""
    traced = answers["observability"] == "otel"
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    dependencies = pyproject["project"]["dependencies"]
    assert any(dep.startswith("opentelemetry-") for dep in dependencies) == traced
    code = [p for p in files if p.suffix == ".py" and p.is_relative_to(project / "src")]
    if not code:
        return  # the same code as a render whose checks read it
    code += [p for p in files if p.suffix == ".py" and p.is_relative_to(project / "tests")]
    mentions = [p.relative_to(project) for p in code if "opentelemetry" in p.read_text()]
    assert bool(mentions) == traced, mentions


SQL_OR_TEST_SERVER = re.compile(r"sqlalchemy|alembic|aiosqlite|asyncpg|secantus", re.IGNORECASE)


@check
def mongodb_render_has_no_sql_and_no_test_server(
    project: Path, answers: dict[str, Any], files: list[Path]
) -> None:
    """A Mongo service carries PyMongo and nothing of the SQL stack or the template's
    stand-in test server (the template's own tests start that one)."""
    if answers["database"] != "mongodb":
        return
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert any(dep.startswith("pymongo") for dep in pyproject["project"]["dependencies"])
    for path in files:
        found = SQL_OR_TEST_SERVER.search(path.read_text())
        assert not found, f"{found and found.group()} in {path.relative_to(project)}"


# What a service without a database must not be told about: its docs and deploy files.
DATABASE_WORDS = re.compile(
    r"migrations?\b|transaction|sqlite|\bpool gauges|connection pools|\bsession wiring",
    re.IGNORECASE,
)
DOCS_AND_DEPLOY = (
    "README.md",
    "deploy/README.md",
    "deploy/kubernetes/base/kustomization.yaml",
    ".gitlab-ci.yml",
    ".github/workflows/ci.yml",
    "Dockerfile",
)


def assert_docs_never_say(
    project: Path, words: re.Pattern[str], *, skip: str = "", ignore: str = ""
) -> None:
    """No file of DOCS_AND_DEPLOY (but `skip`) matches `words`, once `ignore` is taken out."""
    for name in DOCS_AND_DEPLOY:
        path = project / name
        if name == skip or not path.exists():
            continue
        found = words.search(path.read_text().replace(ignore, "") if ignore else path.read_text())
        assert not found, f"{found and found.group()} in {name}"


@check
def service_without_a_database_is_told_nothing_of_one(
    project: Path, answers: dict[str, Any], files: list[Path]
) -> None:
    """Its README, deploy notes and CI comments name no migration, transaction, pool or
    SQLite file (the Dockerfile's one mention of SQLite is an example: it is shared)."""
    if answers["database"] != "none":
        return
    # The update section's "the template's migrations" are Copier's, not a database's.
    assert_docs_never_say(
        project, DATABASE_WORDS, skip="Dockerfile", ignore="The template's migrations"
    )


# What only a SQL service's docs and CI may say: MongoDB has no migrations to run.
MIGRATIONS_RAN = re.compile(r"migrations did not run|schema is migrated|migrations first")


@check
def mongodb_service_is_told_of_no_migrations(
    project: Path, answers: dict[str, Any], files: list[Path]
) -> None:
    """Its deploy notes and CI steps claim no migration that the smoke test would prove."""
    if answers["database"] != "mongodb":
        return
    assert_docs_never_say(project, MIGRATIONS_RAN)


@pytest.mark.parametrize("combo", params(list(RENDERS.answers)))
def test_combination_renders_cleanly(combo: str) -> None:
    project, answers = project_of(combo), answers_of(combo)
    files = files_to_read(project, combo)
    failed = []
    for run in CHECKS:
        try:
            run(project, answers, files)
        except Exception as error:  # noqa: BLE001 - each check's failure is reported, all of them
            failed.append(f"{run.__name__}: {type(error).__name__}: {error}")
    assert not failed, "\n\n".join(failed)


TEMPLATE = Path(__file__).resolve().parents[1] / "template"
IF_BLOCK = re.compile(r"\{%-?\s*if\b")


@pytest.mark.parametrize(
    "path",
    sorted(str(p.relative_to(TEMPLATE)) for p in TEMPLATE.rglob("*") if p.is_file()),
)
def test_template_file_branches_at_most_five_times(path: str) -> None:
    """An option is a file, not a block: a file that branches more reads like a puzzle."""
    branches = len(IF_BLOCK.findall((TEMPLATE / path).read_text()))
    assert branches <= 5, f"{path} has {branches} if-blocks"
