"""Tests that need more than uv and git: an OS tool or a real PostgreSQL server.

Where it is missing, such a test is skipped with the reason and the way to get it, so that
`uv run pytest` passes on a machine with only uv and git. Under CI (`CI` set), which
provides all of them (.ci/run installs the tools; the machine runs PostgreSQL), a missing
one fails the test instead: CI never skips silently.
"""

import os
import shutil
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

from tests.toolchain import answers

APT_TOOLS = "apt-get install -y wrk valgrind"


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(
            f"{reason} [CI is set, and CI provides it: failing, not skipping]", pytrace=False
        )
    pytest.skip(reason)


def need_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        unavailable(f"needs {' and '.join(missing)} (OS packages): {APT_TOOLS}")


def need_postgres(url: str, why: str) -> None:
    if not answers(url):
        unavailable(
            f"needs a PostgreSQL server at {urlsplit(url).netloc.rsplit('@', 1)[-1]} ({why}): "
            "start one, e.g. apt-get install -y postgresql"
        )
