"""Rendered projects pass their own checks.

Every distinct variant (combinations whose rendered src/, tests/ and pyproject.toml are
byte-identical) is formatted and linted with ruff. The full toolchain (uv sync, ruff, mypy
and the project's own pytest suite) runs on the covering set (tests/matrix.py): every pair
of option values that a valid combination has, and every database on every Python version.
"""

import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.matrix import (
    CODE_AXES,
    DEEP_MODULES,
    RENDERS,
    code_key,
    combinations,
    covering_set,
    deep_set,
    quick_set,
)
from tests.toolchain import verify

RUFF = (sys.executable, "-m", "ruff")
# pytest's last line with -q, e.g. "120 passed, 2 deselected in 9.81s".
SUMMARY = re.compile(r"^(?P<counts>\d+ \w+.*) in [\d.]+s", re.MULTILINE)


# A variant: the combinations that agree on the answers that change code, which render the
# same src/, tests/ and pyproject.toml (a test below proves it); the first one stands for all.
VARIANTS: dict[tuple[Any, ...], list[str]] = {}
for _cid, _answers in RENDERS.answers.items():
    VARIANTS.setdefault(code_key(_answers), []).append(_cid)


def representative(key: tuple[Any, ...]) -> str:
    return VARIANTS[key][0]


def variant_id(key: tuple[Any, ...]) -> str:
    first = RENDERS.answers[representative(key)]
    short = f"py{first['python_version']}-{first['database']}-{first['http_client']}"
    if "example_resource" in first:
        short += "-items" if first["example_resource"] else "-noitems"
    short += f"-{first['observability']}"
    if key in DEEP_VARIANTS:
        short += "-deep"
    return short


def _covering() -> list[dict[str, Any]]:
    return covering_set([{k: c[k] for k in CODE_AXES if k in c} for c in combinations()])


def _keys(chosen: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return list(dict.fromkeys(code_key(c) for c in chosen))


def covering_variants() -> list[tuple[Any, ...]]:
    """The covering set's variants, in covering-set order."""
    return _keys(_covering())


# The covering set's variants that also run the deep modules (tests/matrix.py).
DEEP_VARIANTS = frozenset(_keys(deep_set(_covering())))
# The variants of the quick set (tests/matrix.py), which the quick loop lints.
QUICK_VARIANTS = frozenset(code_key(RENDERS.answers[cid]) for cid in quick_set())


def test_deep_set_runs_every_value_of_every_code_answer() -> None:
    deep = [RENDERS.answers[representative(key)] for key in DEEP_VARIANTS]
    for axis in CODE_AXES:
        every = {c[axis] for c in combinations() if axis in c}
        assert {answers[axis] for answers in deep if axis in answers} == every, axis
    with_items = {c["database"] for c in combinations() if c.get("example_resource", True)}
    assert {a["database"] for a in deep if a.get("example_resource", True)} == with_items


@pytest.mark.slow
def test_code_depends_only_on_the_code_axes() -> None:
    """The covering set is drawn over CODE_AXES: combinations that agree on them must render
    the same code (else an answer that changes code is missing from CODE_AXES), and those
    that differ on them render different code (else a variant is checked twice)."""
    RENDERS.render_all()
    hashes: dict[tuple[Any, ...], set[str]] = {}
    for cid, answers in RENDERS.answers.items():
        hashes.setdefault(code_key(answers), set()).add(RENDERS.code(cid))
    differing = {key: codes for key, codes in hashes.items() if len(codes) > 1}
    assert differing == {}
    assert len({code for codes in hashes.values() for code in codes}) == len(hashes)


def test_covering_set_covers_every_pair_and_every_database_on_every_python() -> None:
    projected = [{k: c[k] for k in CODE_AXES if k in c} for c in combinations()]
    chosen = covering_set(projected)
    needed = {
        (a, b) for combo in projected for a in combo.items() for b in combo.items() if a[0] < b[0]
    }
    covered = {(a, b) for combo in chosen for a in combo.items() for b in combo.items()}
    assert needed - covered == set()

    # A database with the items slice meets every value of every other answer.
    def with_items(combos: list[dict[str, Any]]) -> set[tuple[str, tuple[str, Any]]]:
        return {(c["database"], o) for c in combos if c.get("example_resource") for o in c.items()}

    assert with_items(projected) - with_items(chosen) == set()
    versions = {c["python_version"] for c in projected}
    databases = {c["database"] for c in projected}
    assert {(c["python_version"], c["database"]) for c in chosen} == {
        (v, d) for v in versions for d in databases
    }
    assert len(covering_variants()) < len(VARIANTS)


RUFF_TEST = "test_variant_is_ruff_clean"


@pytest.fixture(scope="session")
def ruff_reports(request: pytest.FixtureRequest) -> dict[str, str]:
    """ruff's findings, by project, for every variant this session lints: one `ruff format
    --check` and one `ruff check` over all of them (each file under its own project's
    configuration), instead of two processes per variant; run by the first worker that
    asks, under a lock, and read by the others."""
    keys = [
        item.callspec.params["key"]
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname == RUFF_TEST
    ]
    projects = RENDERS.projects([representative(key) for key in keys])
    renders = projects[0].parent  # every render's directory
    names = sorted(project.name for project in projects)
    saved = renders / f"ruff-{hashlib.sha256(' '.join(names).encode()).hexdigest()[:12]}.json"
    with (renders / f"{saved.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not saved.exists():
            saved.write_text(json.dumps(_lint(renders, names)))
    reports: dict[str, str] = json.loads(saved.read_text())
    return reports


def _lint(renders: Path, names: list[str]) -> dict[str, str]:
    reports = dict.fromkeys(names, "")
    for args in (("format", "--check"), ("check", "--output-format", "concise")):
        # Run from the renders' directory: ruff names each file relative to it.
        result = subprocess.run(
            [*RUFF, *args, "--no-cache", *names],
            cwd=renders,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            continue
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        found = False
        for name in names:
            path = re.compile(rf"(?<![\w/.-]){re.escape(name)}/")
            mine = [line for line in lines if path.search(line)]
            if mine:
                found = True
                reports[name] += f"ruff {args[0]}:\n" + "\n".join(mine) + "\n"
        assert result.returncode == 1 and found, f"ruff {args[0]}:\n{result.stdout}{result.stderr}"
    return reports


@pytest.mark.parametrize(
    "key",
    [
        key if key in QUICK_VARIANTS else pytest.param(key, marks=pytest.mark.slow)
        for key in sorted(VARIANTS, key=variant_id)
    ],
    ids=variant_id,
)
def test_variant_is_ruff_clean(key: tuple[Any, ...], ruff_reports: dict[str, str]) -> None:
    assert ruff_reports[RENDERS.project(representative(key)).name] == ""


@pytest.mark.slow
@pytest.mark.parametrize("key", covering_variants(), ids=variant_id)
def test_variant_passes_its_own_checks(
    key: tuple[Any, ...], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    combo = representative(key)
    answers = RENDERS.answers[combo]
    project = tmp_path / "service"
    shutil.copytree(RENDERS.project(combo), project)
    env: dict[str, str] = {}
    if answers["database"] == "mongodb":
        env["TEST_MONGODB_URL"] = request.getfixturevalue("mongodb_url")
    skipped = () if key in DEEP_VARIANTS else tuple(f"--ignore=tests/{m}" for m in DEEP_MODULES)
    output = verify(project, answers["python_version"], env, skipped)
    summaries = SUMMARY.findall(output)
    assert summaries, output[-3000:]
    assert re.match(r"\d+ passed", summaries[-1]), summaries[-1]
    assert not re.search(r"failed|error", summaries[-1]), summaries[-1]
