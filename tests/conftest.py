"""Fixtures shared by the template's tests."""

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import copier
import pytest
import pytest_copie.plugin
from pytest_copie.plugin import Copie

from tests.matrix import renders_made_cheaper, snapshot
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
def copie(
    copie: Copie, template_snapshot: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Copie]:
    """pytest-copie's fixture on the snapshot, rendered as cheaply as the matrix renders,
    without the post-copy task (git init, uv lock: seconds per copy), which
    tests/test_hooks.py tests; these tests check answers."""
    copie.default_template_dir = template_snapshot
    monkeypatch.setattr(
        pytest_copie.plugin, "run_copy", functools.partial(copier.run_copy, skip_tasks=True)
    )
    with renders_made_cheaper():
        yield copie


@pytest.fixture(scope="session")
def mongodb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TEST_MONGODB_URL when given, else a secantusdb started for this worker's session."""
    given = os.environ.get("TEST_MONGODB_URL")
    if given:
        yield given
        return
    with secantus_server(tmp_path_factory.mktemp("secantus")) as url:
        yield url


# The slow tests' known costs, heaviest first (worker-seconds, from `--durations`): a whole
# generated suite after two updates, the deep variants' suites, the other variants, updates.
HEAVIEST_FIRST = (
    "test_grown_service",
    "-deep]",
    "test_variant_passes_its_own_checks",
    "test_update_from_a_release",
)


# The many short checks of single renders, last: they fill in while the long tests end.
CHEAPEST_LAST = ("tests/test_render.py::", "test_variant_is_ruff_clean[")


def cost_rank(item: pytest.Item) -> int:
    if any(part in item.nodeid for part in CHEAPEST_LAST):
        return len(HEAVIEST_FIRST) + 2
    if item.get_closest_marker("slow") is None:
        return len(HEAVIEST_FIRST) + 1
    return next(
        (i for i, part in enumerate(HEAVIEST_FIRST) if part in item.nodeid), len(HEAVIEST_FIRST)
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heaviest first, and xdist hands out tests one at a time in this order (`--dist load
    --maxschedchunk 1`, each worker holding its test and the next): the longest tests start
    at once on every worker and the many short ones fill in at the end, so the workers end
    together. With chunks of 2 a worker running short tests got two for each one it
    finished, piled up a hundred, and ran them alone for the last 80 s behind a slow one.
    (`worksteal` gave one worker the whole first half of the list: every slow test, then
    stolen back late.)"""
    items.sort(key=cost_rank)
