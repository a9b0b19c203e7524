"""Tests that need more than uv and git: an OS tool or a real PostgreSQL server.

Where it is missing, such a test is skipped with the reason and the way to get it, so that
`uv run pytest` passes on a machine with only uv and git. Under CI (`CI` set), which
provides all of them (.ci/run installs the tools; the machine runs PostgreSQL), a missing
one fails the test instead: CI never skips silently.
"""

import os
import shutil
import socket
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

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


def server_answers(url: str) -> bool:
    """Whether anything accepts a TCP connection on the URL's host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2):
            return True
    except OSError:
        return False


def need_postgres(url: str, why: str) -> None:
    if not server_answers(url):
        unavailable(
            f"needs a PostgreSQL server at {urlsplit(url).netloc.rsplit('@', 1)[-1]} ({why}): "
            "start one, e.g. apt-get install -y postgresql"
        )
