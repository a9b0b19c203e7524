"""Each distinct variant's rendered project passes its own lint, types and test suite.

Combinations whose rendered code is byte-identical share one run; the test id names the
first combination of the group and how many it covers.
"""

import re
import shutil
from pathlib import Path

import pytest

from tests.matrix import manifest, variants
from tests.toolchain import verify

MANIFEST = manifest()
VARIANTS = variants(MANIFEST)


def variant_id(code: str) -> str:
    members = VARIANTS[code]
    first = MANIFEST["combos"][members[0]]["answers"]
    short = f"py{first['python_version']}-{first['database']}-{first['http_client']}"
    if "example_resource" in first:
        short += "-items" if first["example_resource"] else "-noitems"
    return f"{short}-x{len(members)}-{code}"


def test_every_combination_belongs_to_one_variant() -> None:
    covered = sorted(c for members in VARIANTS.values() for c in members)
    assert covered == sorted(MANIFEST["combos"])


@pytest.mark.slow
@pytest.mark.parametrize("code", sorted(VARIANTS, key=variant_id), ids=variant_id)
def test_variant_passes_its_own_checks(
    code: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    representative = MANIFEST["combos"][VARIANTS[code][0]]
    answers = representative["answers"]
    project = tmp_path / "service"
    shutil.copytree(representative["dir"], project)
    env: dict[str, str] = {}
    if answers["database"] == "mongodb":
        env["TEST_MONGODB_URL"] = request.getfixturevalue("mongodb_url")
    output = verify(project, answers["python_version"], env)
    summary = re.search(r"(\d+) passed", output)
    assert summary, output[-3000:]
    assert "failed" not in output.splitlines()[-1]
