"""Instructions per request, for bench/run.py --instructions: load-independent figures.

Run by run.py under `valgrind --tool=callgrind --instr-atstart=no` with the rendered
project's interpreter. It builds one app (the service or the baseline), runs its lifespan,
sends warm-up requests through the ASGI app in-process, then touches SIGNAL.ready and
waits for SIGNAL.go; run.py switches instrumentation on, so only the N measured requests
are counted. It touches SIGNAL.done, run.py switches instrumentation off and touches
SIGNAL.stop, and the app shuts down.

python instructions.py service|baseline|floor health|get|list|create N SIGNAL
"""

import os
import sys
import time
from pathlib import Path
from typing import Any

from asgi_lifespan import LifespanManager

PATHS = {
    "health": ("GET", "/health/live", b""),
    "get": ("GET", "/items/{}", b""),
    "list": ("GET", "/items", b"limit=10"),
    "create": ("POST", "/items", b""),
}
# create: a name unique per app, run and request (no 409s), as bench/load.lua sends.
CREATE_BODY = '{{"name":"cg-{}-{}-{}","description":"created by callgrind","quantity":{}}}'
EXPECTED = {"create": 201}
WARMUP = 100
N_ITEMS = 200  # ids rotate over 1..N_ITEMS, seeded by run.py (--items is at least this)


def scope(method: str, path: str, query: bytes) -> dict[str, Any]:
    headers = [(b"host", b"bench")]
    if method == "POST":
        headers.append((b"content-type", b"application/json"))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


def wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.05)  # blocking on purpose: instrumentation is off while we wait


async def main(app_name: str, endpoint: str, n: int, signal: str) -> None:
    if app_name == "service":
        from bench_service.app import create_app  # type: ignore[import-not-found]
    elif app_name == "floor":
        from floor import create_app  # type: ignore[import-not-found]
    else:
        from baseline import create_app  # type: ignore[import-not-found]
    method, path, query = PATHS[endpoint]
    statuses: list[int] = []
    body = b""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    # manager.app adds the lifespan state to each scope, as uvicorn does.
    # Under valgrind startup runs some 50x slower: asgi-lifespan's 5 s default is too short.
    async with LifespanManager(create_app(), startup_timeout=600, shutdown_timeout=600) as manager:
        for i in range(WARMUP + n):
            if i == WARMUP:
                Path(signal + ".ready").touch()
                wait_for(Path(signal + ".go"))
            if method == "POST":
                body = CREATE_BODY.format(app_name, os.getpid(), i, i % 100).encode()
            request = scope(method, path.format(i * 7919 % N_ITEMS + 1), query)
            await manager.app(request, receive, send)
        Path(signal + ".done").touch()
        wait_for(Path(signal + ".stop"))
    expected = EXPECTED.get(endpoint, 200)
    if set(statuses) != {expected}:
        raise SystemExit(
            f"{app_name} {endpoint}: statuses {sorted(set(statuses))}, expected {expected}"
        )


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    try:  # the event loop uvicorn runs the apps on
        from uvloop import run
    except ImportError:
        from asyncio import run
    run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
