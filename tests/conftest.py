"""Fixtures shared by the template's tests."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_copie.plugin import Copie

from tests.matrix import snapshot
from tests.mongo_server import secantus_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def template_dir() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def template_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree's template as plain files: Copier renders it without cloning the
    repository (and copying its uncommitted changes) for every copy, 4 s each."""
    return snapshot(tmp_path_factory.mktemp("template"))


@pytest.fixture
def copie(copie: Copie, template_snapshot: Path) -> Copie:
    copie.default_template_dir = template_snapshot
    return copie


@pytest.fixture(scope="session")
def mongodb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TEST_MONGODB_URL when given, else a secantusdb started for this worker's session."""
    given = os.environ.get("TEST_MONGODB_URL")
    if given:
        yield given
        return
    with secantus_server(tmp_path_factory.mktemp("secantus")) as url:
        yield url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests (a rendered project's toolchain, 10 s to 2 min each) first: the two
    xdist workers then end together instead of one waiting on a long test collected late."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
