"""copier.yml: defaults, every validator with good and bad answers, computed flags.

A bad answer must stop Copier with a message naming the problem and what is allowed, and
write no project.
"""

import re
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from pytest_copie.plugin import Copie

ROOT = Path(__file__).resolve().parents[1]


def answers(project: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return data


def test_defaults(copie: Copie) -> None:
    result = copie.copy(extra_answers={"project_name": "Order Service"})
    assert result.exit_code == 0, result.exception
    assert result.project_dir is not None
    given = answers(result.project_dir)
    assert given["project_slug"] == "order-service"
    assert given["package_name"] == "order_service"
    assert given["python_version"] == "3.12"
    assert given["database"] == "sqlite"
    assert given["http_client"] == "httpx"
    assert given["example_resource"] is True
    assert given["ci"] == "github"
    assert given["docker"] is True
    assert given["observability"] == "prometheus"
    # computed flags are never stored as answers
    computed = {"use_sql", "use_mongo", "use_db", "use_items", "use_http"}
    assert not {*computed, "use_metrics", "use_traces"} & given.keys()
    assert (result.project_dir / "src/order_service/items/router.py").is_file()
    assert (result.project_dir / "src/order_service/core/http.py").is_file()
    assert (result.project_dir / "src/order_service/core/metrics.py").is_file()
    assert not (result.project_dir / "src/order_service/core/tracing.py").exists()


@pytest.mark.parametrize(
    ("observability", "metrics", "traces"),
    [("prometheus", True, False), ("otel", True, True), ("none", False, False)],
)
def test_observability_choices_set_the_metrics_and_traces_flags(
    copie: Copie, observability: str, metrics: bool, traces: bool
) -> None:
    """`otel` is the Prometheus metrics plus OpenTelemetry traces."""
    result = copie.copy(
        extra_answers={"project_name": "Order Service", "observability": observability}
    )
    assert result.exit_code == 0, result.exception
    assert result.project_dir is not None
    core = result.project_dir / "src/order_service/core"
    assert (core / "metrics.py").is_file() == metrics
    assert (core / "tracing.py").is_file() == traces


def test_project_name_defaults_to_the_destination_folder(tmp_path: Path) -> None:
    """`copier copy --defaults <template> order-service` needs no --data at all."""
    destination = tmp_path / "order-service"
    copier.run_copy(
        str(ROOT),
        str(destination),
        defaults=True,
        vcs_ref="HEAD",
        unsafe=True,
        quiet=True,
        skip_tasks=True,
    )
    given = answers(destination)
    assert given["project_name"] == "Order Service"
    assert given["package_name"] == "order_service"


@pytest.mark.parametrize(
    ("name", "slug", "package"),
    [
        ("Order Service", "order-service", "order_service"),
        ("my_API v2", "my-api-v2", "my_api_v2"),
        ("A.B--C", "a-b-c", "a_b_c"),
    ],
)
def test_derived_names(copie: Copie, name: str, slug: str, package: str) -> None:
    result = copie.copy(extra_answers={"project_name": name, "database": "none"})
    assert result.exit_code == 0, result.exception
    assert result.project_dir is not None
    given = answers(result.project_dir)
    assert (given["project_slug"], given["package_name"]) == (slug, package)


def test_the_default_mongodb_database_name_fits_mongodb(copie: Copie) -> None:
    """The longest project name gives a 64-character package name; MongoDB refuses a
    database name longer than 63 (at the first write: startup would fail)."""
    name = "Inventory " * 6 + "Ship"
    result = copie.copy(extra_answers={"project_name": name, "database": "mongodb"})
    assert result.exit_code == 0, result.exception
    assert result.project_dir is not None
    package = answers(result.project_dir)["package_name"]
    assert len(package) == 64
    module = result.project_dir / "src" / package / "core" / "db" / "mongo.py"
    found = re.search(r'mongodb_database: str = Field\(default="([^"]*)"', module.read_text())
    assert found is not None
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,63}", found.group(1)), found.group(1)


BAD_ANSWERS = [
    ({"project_name": "9lives"}, "project_name must start with a letter"),
    ({"project_name": "bad/name"}, "project_name must start with a letter"),
    ({"project_slug": "Not_Kebab"}, "project_slug must be lowercase kebab-case"),
    ({"project_slug": "trailing-"}, "project_slug must be lowercase kebab-case"),
    ({"package_name": "Order"}, "package_name must be a lowercase Python identifier"),
    ({"package_name": "1abc"}, "package_name must be a lowercase Python identifier"),
    ({"package_name": "class"}, "is a Python keyword"),
    ({"package_name": "async"}, "is a Python keyword"),
    ({"package_name": "json"}, "shadows the standard-library module"),
    ({"package_name": "asyncio"}, "shadows the standard-library module"),
    ({"package_name": "fastapi"}, "shadows a dependency"),
    ({"package_name": "sqlalchemy"}, "shadows a dependency"),
    ({"package_name": "pymongo"}, "shadows a dependency"),
    ({"package_name": "bson"}, "shadows a dependency"),
    ({"package_name": "aiohttp"}, "shadows a dependency"),
    ({"package_name": "stamina"}, "shadows a dependency"),
    ({"package_name": "opentelemetry"}, "shadows a dependency"),
    ({"package_name": "respx"}, "shadows a dependency"),
    ({"package_name": "test"}, "shadows a dependency"),
    ({"package_name": "tests"}, "shadows a dependency"),
    ({"author_email": "not-an-email"}, "author_email must be an address"),
    ({"author_email": "a@b"}, "author_email must be an address"),
    ({"author_name": "  "}, "author_name must be a non-empty single line"),
    ({"description": "x" * 201}, "description must be a single line"),
    ({"python_version": "3.9"}, "python_version"),
    ({"database": "oracle"}, "database"),
    ({"ci": "jenkins"}, "ci"),
    ({"http_client": "requests"}, "http_client"),
    ({"observability": "datadog"}, "observability"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_ANSWERS, ids=[str(b) for b, _ in BAD_ANSWERS])
def test_bad_answer_is_rejected_with_a_clear_message(
    copie: Copie, bad: dict[str, Any], message: str
) -> None:
    result = copie.copy(extra_answers={"project_name": "Good Name", **bad})
    assert result.exit_code != 0
    assert message in str(result.exception)


@pytest.mark.parametrize("exists", [False, True], ids=["new-dir", "empty-dir"])
@pytest.mark.parametrize(
    ("bad", "message"), BAD_ANSWERS[::4], ids=[str(b) for b, _ in BAD_ANSWERS[::4]]
)
def test_bad_answer_writes_nothing(
    tmp_path: Path, template_snapshot: Path, bad: dict[str, Any], message: str, exists: bool
) -> None:
    """pytest-copie reports no project_dir on a failed copy, so look at the destination."""
    destination = tmp_path / "service"
    if exists:
        destination.mkdir()
    with pytest.raises(ValueError, match=re.escape(message)):
        copier.run_copy(
            str(template_snapshot),
            str(destination),
            data={"project_name": "Good Name", **bad},
            defaults=True,
            unsafe=True,
            quiet=True,
            skip_tasks=True,
        )
    written = sorted(destination.rglob("*")) if destination.exists() else None
    assert written == ([] if exists else None)


@pytest.mark.parametrize(
    "good",
    [
        {"package_name": "orders"},
        {"package_name": "json_api"},
        {"package_name": "my_fastapi_service"},
        {"author_email": "first.last+tag@sub.example.co.uk"},
        {"project_slug": "svc-2"},
    ],
    ids=str,
)
def test_good_answers_are_accepted(copie: Copie, good: dict[str, Any]) -> None:
    result = copie.copy(extra_answers={"project_name": "Good Name", "database": "none", **good})
    assert result.exit_code == 0, result.exception


def test_example_resource_is_not_offered_without_a_database(copie: Copie) -> None:
    result = copie.copy(
        extra_answers={"project_name": "Gateway", "database": "none", "example_resource": True}
    )
    assert result.exit_code == 0, result.exception
    assert result.project_dir is not None
    assert not (result.project_dir / "src/gateway/items").exists()
    assert not (result.project_dir / "src/gateway/db").exists()
