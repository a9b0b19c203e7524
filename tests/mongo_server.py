"""A MongoDB wire-protocol server for the rendered mongodb projects' test suites.

No mongod package exists for the machines this template is tested on, so when
TEST_MONGODB_URL is not set the template's tests start secantusdb (a Python server on
WiredTiger, pinned in pyproject.toml; README.md says why and what it does not cover) on a
free loopback port. The rendered projects never depend on it: they only get the URL.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

STARTUP_SECONDS = 60
LISTENING = re.compile(r"secantus listening on (127\.0\.0\.1:\d+)")


@contextlib.contextmanager
def secantus_server(workdir: Path) -> Iterator[str]:
    """Run a throwaway secantusdb in `workdir`; yield its URL; stop it on exit.

    Port 0 lets the OS pick a free port (no race with other workers or developers); the
    server logs the port it bound, which is read back from its log.
    """
    config = workdir / "secantusd.toml"
    config.write_text("")  # --config turns off the search of ./, ~/.secantus and /etc
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "secantus",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--storage-path",
                str(workdir / "data"),
                "--log-level",
                "INFO",  # the "listening on" line is logged at INFO
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        try:
            yield f"mongodb://{_wait_until_listening(process, log_path)}"
        finally:
            process.terminate()  # a clean WiredTiger shutdown takes about 2 s
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_listening(process: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        found = LISTENING.search(log_path.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    log = log_path.read_text(errors="replace")[-3000:]
    state = f"exited with {process.returncode}" if process.poll() is not None else "is silent"
    msg = f"secantusdb {state} instead of listening within {STARTUP_SECONDS}s; its log:\n{log}"
    raise RuntimeError(msg)
