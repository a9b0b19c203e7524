"""Concurrent writes on a rendered SQLite service, at two template revisions side by side.

    uv run python bench/sqlite_writes.py [--base REF] [--duration 8] [--connections 10,100]

Renders `database=sqlite` (items on) from this repository at HEAD and, with --base, at REF
too; syncs each with uv, migrates a throwaway database file, starts each with its own
`serve` (access log off) and loads `POST /items` with wrk (bench/load.lua, names unique per
run), interleaved revision by revision, each point repeated. Prints req/s, p50 and p99 per
revision and point: how long concurrent writers wait for SQLite's one write lock.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

from run import ROOT, Run, Server, check_call, clean_env, log, start_server, wrk


def render(dest: Path, ref: str) -> None:
    from copier import run_copy  # the template's dev env has Copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DirtyLocalWarning: a dirty tree is rendered as is
        run_copy(
            str(ROOT),
            str(dest),
            data={"project_name": "Bench Service", "database": "sqlite", "example_resource": True},
            vcs_ref=ref,
            defaults=True,
            unsafe=True,
            skip_tasks=True,
            quiet=True,
        )


def start(ref: str, workdir: Path) -> Server:
    project = workdir / f"project-{ref.replace('/', '_')}"
    log(f"rendering {ref} into {project}")
    render(project, ref)
    check_call(["uv", "sync", "--quiet"], cwd=project)
    env = clean_env(
        BENCH_SERVICE_DATABASE_URL=f"sqlite+aiosqlite:///{project / 'bench.db'}",
        BENCH_SERVICE_ACCESS_LOG="false",
        BENCH_SERVICE_LOG_LEVEL="WARNING",
    )
    command = str(project / ".venv" / "bin" / "bench_service")
    check_call([command, "db", "upgrade"], cwd=project, env=env)
    server = start_server(ref, [command, "serve"], project, env, workdir, uvicorn_cli=False)
    server.wait_ready()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="a second revision to compare with HEAD")
    parser.add_argument("--duration", type=int, default=8, help="seconds per point (default 8)")
    parser.add_argument("--connections", default="10,100", help="comma-separated (default 10,100)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per point (default 2)")
    args = parser.parse_args(argv)
    refs = [ref for ref in (args.base, "HEAD") if ref]
    connections = [int(c) for c in args.connections.split(",")]
    runs: dict[tuple[str, int], list[Run]] = {(r, c): [] for r in refs for c in connections}
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as tmp:
        servers = {ref: start(ref, Path(tmp)) for ref in refs}
        try:
            for _ in range(args.repeat):
                for count in connections:
                    for ref, server in servers.items():  # interleaved: drift hits both
                        run = wrk(
                            server, "create", count, args.duration, threads=1, timeout=30,
                            prefix=secrets.token_hex(4), n_items=1, hold_ms=0,
                        )  # fmt: skip
                        runs[ref, count].append(run)
                        log(f"{ref} c={count}: {run.rps:,.0f} req/s, p99 {run.p99_ms:,.1f} ms")
        finally:
            for server in servers.values():
                server.stop()
    print("| revision | conns | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for (ref, count), points in runs.items():
        rps = statistics.median(run.rps for run in points)
        p50 = statistics.median(run.p50_ms for run in points)
        p99 = statistics.median(run.p99_ms for run in points)
        errors = sum(run.errors + run.timeouts for run in points)
        print(f"| {ref} | {count} | {rps:,.0f} | {p50:,.1f} | {p99:,.1f} | {errors} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
