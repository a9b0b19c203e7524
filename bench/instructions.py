"""Instructions per request, for bench/run.py --instructions: load-independent figures.

Run by run.py under `valgrind --tool=callgrind --instr-atstart=no` with the rendered
project's interpreter. It builds one app (the service or the baseline), runs its lifespan,
sends warm-up requests through the ASGI app in-process, then touches SIGNAL.ready and
waits for SIGNAL.go; run.py switches instrumentation on, so only the N measured requests
are counted. It touches SIGNAL.done, run.py switches instrumentation off and touches
SIGNAL.stop, and the app shuts down.

python instructions.py service|baseline health|get|list N SIGNAL
"""

import sys
import time
from pathlib import Path
from typing import Any

from asgi_lifespan import LifespanManager

PATHS = {
    "health": ("/health/live", b""),
    "get": ("/items/{}", b""),
    "list": ("/items", b"limit=10"),
}
WARMUP = 100
N_ITEMS = 200  # ids rotate over 1..N_ITEMS, seeded by run.py (--items is at least this)


def scope(path: str, query: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


def wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.05)  # blocking on purpose: instrumentation is off while we wait


async def main(app_name: str, endpoint: str, n: int, signal: str) -> None:
    if app_name == "service":
        from bench_service.app import create_app  # type: ignore[import-not-found]
    else:
        from baseline import create_app  # type: ignore[import-not-found]
    path, query = PATHS[endpoint]
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    # manager.app adds the lifespan state to each scope, as uvicorn does. Under valgrind on
    # a busy machine startup takes far longer than asgi-lifespan's default 5 s.
    async with LifespanManager(create_app(), startup_timeout=120, shutdown_timeout=120) as manager:
        for i in range(WARMUP + n):
            if i == WARMUP:
                Path(signal + ".ready").touch()
                wait_for(Path(signal + ".go"))
            await manager.app(scope(path.format(i * 7919 % N_ITEMS + 1), query), receive, send)
        Path(signal + ".done").touch()
        wait_for(Path(signal + ".stop"))
    if set(statuses) != {200}:
        raise SystemExit(f"{app_name} {endpoint}: statuses {sorted(set(statuses))}, expected 200")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    try:  # the event loop uvicorn runs the apps on
        from uvloop import run
    except ImportError:
        from asyncio import run
    run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
