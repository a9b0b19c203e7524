"""Benchmark a rendered PostgreSQL service against a hand-written FastAPI + asyncpg baseline.

    uv run python bench/run.py [--duration 15] [--connections 10,100,500] [--repeat 2]

Renders `database=postgresql` from this working tree (Copier, vcs_ref HEAD), syncs it with
uv, creates and seeds a throwaway database (the service's migrations, then N items), starts
the service with its own `serve` command (as its image runs it) and bench/baseline.py with
uvicorn (1 worker each, access logs off unless --access-log) in the rendered project's
environment (same Python, FastAPI, uvicorn, uvloop, httptools, asyncpg), and loads them with
wrk, interleaved point by point, each point repeated. Prints a markdown table: req/s, p50,
p99, errors, timeouts, server RSS and the service/baseline ratios. --floor adds
bench/floor.py (one AsyncSession per request and nothing else of the service) beside them.
Both servers and the database are cleaned up at the end, also on failure or Ctrl-C.

    uv run python bench/run.py --instructions 400

counts instructions per request instead (valgrind's callgrind; bench/instructions.py): the
same work gives the same figure on a loaded or a quiet machine, so two builds compare.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
# The template's own helpers (interpreter lookup) serve the benchmark too.
sys.path.insert(0, str(ROOT))
from tests.toolchain import find_python

PACKAGE = os.environ.get("BENCH_PACKAGE", "bench_service")
ENV_PREFIX = PACKAGE.upper() + "_"
APPS = ("service", "baseline")
# With --observability other than none: the same service rendered with `none`, run beside it,
# so that the choice's cost is measured side by side in one run (not between two runs, on a
# machine whose speed drifts between minutes).
BARE = "bare"
# With --floor: bench/floor.py, the baseline's endpoints on one AsyncSession per request (the
# rule the service keeps), run beside the others: the least that rule lets any service cost.
FLOOR = "floor"
# The hand-written apps in bench/ (uvicorn module:create_app); the others are rendered services.
HAND_WRITTEN = ("baseline", FLOOR)
# The cost targets on get-by-id throughput, against the bare service.
OBSERVABILITY_COST_TARGETS = {"prometheus": 0.10, "otel": 0.20}
# How long each connection holds its first request, so that all are open before the load
# starts. Opened under load, they queue to be accepted: uvloop's libuv accepts one connection
# per loop iteration (libuv#3696), so the last of 100 waited 390 ms on the service and 200 ms
# on the baseline, and wrk's coordinated-omission correction counts each such wait many times
# over: that start-up burst, not the steady state, set the p99 of a 15 s point.
HOLD_MS = 300
# A server counts as idle (ready for the next point) after this long without using the CPU.
IDLE_WINDOW = 0.2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ENDPOINTS = {
    "health": "GET /health/live",
    "get": "GET /items/{id} (rotating ids)",
    "list": "GET /items?limit=10",
    "create": "POST /items",
}
# The uv next to this interpreter (the template's dev env): a bare `uv` may be a pyenv shim.
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv") or "uv"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTEST_"))}
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    env["UV_NO_PROGRESS"] = "1"
    env.update(extra)
    return env


def check_call(
    args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(
            f"command failed ({result.returncode}): {' '.join(args)}\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def render(dest: Path, observability: str = "none") -> None:
    from copier import run_copy  # the template's dev env has Copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DirtyLocalWarning: a dirty tree is rendered as is
        run_copy(
            str(ROOT),
            str(dest),
            data={
                "project_name": "Bench Service",
                "database": "postgresql",
                "example_resource": True,
                "ci": "none",
                "docker": False,
                "observability": observability,
            },
            vcs_ref="HEAD",
            defaults=True,
            unsafe=True,
            skip_tasks=True,
            quiet=True,
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"{self.name} exited at startup; log:\n{self.log_path.read_text()}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/health/live", timeout=1) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.2)
        raise SystemExit(
            f"{self.name} did not answer within {timeout}s; log:\n{self.log_path.read_text()}"
        )

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until the server has finished the work the last point left it: wrk closes
        its connections at the end, but requests queued inside the server still run, and the
        next point's first requests (not held when connected under load) would wait behind
        them. Idle: at most one clock tick of CPU over IDLE_WINDOW seconds."""
        deadline = time.monotonic() + timeout
        before = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(IDLE_WINDOW)
            now = self.cpu_seconds()
            if now - before <= 1 / CLOCK_TICKS:
                return
            before = now
        raise SystemExit(f"{self.name} was still busy {timeout}s after a point ended")

    def stop(self) -> None:
        log(f"stopping {self.name} (pid {self.process.pid})")
        if self.process.poll() is None:
            # The server runs in its own session: signal its whole group (uvicorn + children).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def start_server(
    name: str,
    args: list[str],
    cwd: Path,
    env: dict[str, str],
    workdir: Path,
    *,
    uvicorn_cli: bool = True,
    uvicorn_access_log: bool = False,
) -> Server:
    """`args` is uvicorn's command line (the hand-written apps) or the service's `serve`."""
    port = free_port()
    log_path = workdir / f"{name}.log"
    command = [*args, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    if uvicorn_cli:
        # uvicorn writes its access lines at INFO: on, they need that level.
        command += ["--factory"] + (
            ["--log-level", "info"] if uvicorn_access_log else ["--no-access-log", "--log-level", "warning"]
        )  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
        )
    return Server(name, process, port, log_path)


@dataclass
class Run:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx responses + socket errors (connect, read, write)
    timeouts: int
    rss_mib: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Point:
    endpoint: str
    connections: int
    runs: dict[str, list[Run]] = field(default_factory=lambda: {app: [] for app in APPS})

    def ratio_to(self, app: str, other: str, attribute: str) -> float:
        theirs = self.median(other, attribute)
        return self.median(app, attribute) / theirs if theirs else float("nan")

    def median(self, app: str, attribute: str) -> float:
        values = [getattr(run, attribute) for run in self.runs[app]]
        return statistics.median(values) if values else float("nan")

    def total(self, app: str, attribute: str) -> int:
        return sum(getattr(run, attribute) for run in self.runs[app])

    def ratio(self, attribute: str) -> float:
        return self.ratio_to("service", "baseline", attribute)


def wrk(
    server: Server,
    mode: str,
    connections: int,
    seconds: int,
    *,
    threads: int,
    timeout: int,
    prefix: str,
    n_items: int,
    hold_ms: int,
) -> Run:
    threads = min(threads, connections)
    server.wait_idle()
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout}s",
        "-s", str(BENCH / "load.lua"), server.url, "--", mode, prefix, str(n_items),
        str(hold_ms), str(connections // threads),  # wrk gives each thread connections // threads
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next(
        (line for line in result.stdout.splitlines() if line.startswith("BENCH_JSON ")), None
    )
    if result.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed: {' '.join(command)}\n{result.stdout}\n{result.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    if server.process.poll() is not None:
        raise SystemExit(f"{server.name} died under load; log:\n{server.log_path.read_text()}")
    return Run(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6 - hold_ms / 1000,  # no requests were sent while held
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["connect"] + data["read"] + data["write"] + data["status"],
        timeouts=data["timeout"],
        rss_mib=rss_mib(server.process.pid),
    )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def table(points: list[Point]) -> str:
    header = (
        "| endpoint | conns | service req/s | baseline req/s | ratio | p50 ms s / b "
        "| p99 ms s / b | p99 ratio | errors s / b | timeouts s / b | RSS MiB s / b | RSS ratio |"
    )
    lines = [header, "|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|"]
    for point in points:
        m = point.median
        lines.append(
            f"| {point.endpoint} | {point.connections} "
            f"| {fmt(m('service', 'rps'), 0)} | {fmt(m('baseline', 'rps'), 0)} "
            f"| {fmt(point.ratio('rps'), 2)} "
            f"| {fmt(m('service', 'p50_ms'))} / {fmt(m('baseline', 'p50_ms'))} "
            f"| {fmt(m('service', 'p99_ms'))} / {fmt(m('baseline', 'p99_ms'))} "
            f"| {fmt(point.ratio('p99_ms'), 2)} "
            f"| {point.total('service', 'errors')} / {point.total('baseline', 'errors')} "
            f"| {point.total('service', 'timeouts')} / {point.total('baseline', 'timeouts')} "
            f"| {fmt(max(r.rss_mib for r in point.runs['service']))} / "
            f"{fmt(max(r.rss_mib for r in point.runs['baseline']))} "
            f"| {fmt(point.ratio('rss_mib'), 2)} |"
        )
    return "\n".join(lines)


def targets(points: list[Point]) -> list[str]:
    """The issue's targets, each with the measured value: printed, never asserted."""
    lines = []
    for point in points:
        # Writes have targets of their own: half the baseline's rate, twice its p99.
        rate, p99 = (0.5, 2.0) if point.endpoint == "create" else (0.7, 1.5)
        name = f"{point.endpoint} @{point.connections}"
        if point.connections in (10, 100):
            lines.append(_target(f"{name} req/s ratio", point.ratio("rps"), ">=", rate))
        if point.connections == 100 or (point.endpoint == "create" and point.connections >= 500):
            lines.append(_target(f"{name} p99 ratio", point.ratio("p99_ms"), "<=", p99))
        if point.connections >= 500:
            bad = point.total("service", "errors") + point.total("service", "timeouts")
            lines.append(_target(f"{name} service errors+timeouts", bad, "<=", 0))
    if points:
        # RSS after all the load: the last point's, when both servers have seen everything.
        lines.append(_target("RSS ratio after load", points[-1].ratio("rss_mib"), "<=", 1.4))
    return lines


def cost_table(points: list[Point], choice: str) -> str:
    """The observability choice against the bare service, measured in the same points."""
    lines = [
        (
            f"| endpoint | conns | none req/s | {choice} req/s | throughput cost "
            f"| p99 ms none / {choice} | p99 ratio | errors none / {choice} |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for point in points:
        m = point.median
        lines.append(
            f"| {point.endpoint} | {point.connections} "
            f"| {fmt(m(BARE, 'rps'), 0)} | {fmt(m('service', 'rps'), 0)} "
            f"| {fmt(100 * (1 - point.ratio_to('service', BARE, 'rps')))}% "
            f"| {fmt(m(BARE, 'p99_ms'))} / {fmt(m('service', 'p99_ms'))} "
            f"| {fmt(point.ratio_to('service', BARE, 'p99_ms'), 2)} "
            f"| {point.total(BARE, 'errors')} / {point.total('service', 'errors')} |"
        )
    return "\n".join(lines)


def floor_table(points: list[Point]) -> str:
    """The session floor (bench/floor.py) in the same points: what one AsyncSession per
    request costs by itself against the baseline, and how close the service comes to it."""
    lines = [
        (
            "| endpoint | conns | floor req/s | floor / baseline | service / floor "
            "| p99 ms floor | floor p99 / baseline | service p99 / floor | errors floor "
            "| RSS MiB floor | floor RSS / baseline |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for point in points:
        m = point.median
        lines.append(
            f"| {point.endpoint} | {point.connections} | {fmt(m(FLOOR, 'rps'), 0)} "
            f"| {fmt(point.ratio_to(FLOOR, 'baseline', 'rps'), 2)} "
            f"| {fmt(point.ratio_to('service', FLOOR, 'rps'), 2)} "
            f"| {fmt(m(FLOOR, 'p99_ms'))} "
            f"| {fmt(point.ratio_to(FLOOR, 'baseline', 'p99_ms'), 2)} "
            f"| {fmt(point.ratio_to('service', FLOOR, 'p99_ms'), 2)} "
            f"| {point.total(FLOOR, 'errors') + point.total(FLOOR, 'timeouts')} "
            f"| {fmt(max(r.rss_mib for r in point.runs[FLOOR]))} "
            f"| {fmt(point.ratio_to(FLOOR, 'baseline', 'rss_mib'), 2)} |"
        )
    return "\n".join(lines)


def cost_targets(points: list[Point], choice: str) -> list[str]:
    """The issue's observability targets: get-by-id throughput lost against `none`."""
    limit = OBSERVABILITY_COST_TARGETS[choice]
    return [
        _target(
            f"{choice} get @{point.connections} throughput cost",
            1 - point.ratio_to("service", BARE, "rps"),
            "<=",
            limit,
        )
        for point in points
        if point.endpoint == "get" and point.connections in (10, 100)
    ]


def _target(name: str, value: float, op: str, limit: float) -> str:
    met = value >= limit if op == ">=" else value <= limit
    return f"- {'met ' if met else 'MISS'} {name}: {fmt(value, 2)} (target {op} {limit})"


INSTRUCTION_ENDPOINTS = ("health", "get", "list", "create")


def wait_for_file(path: Path, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 900  # valgrind runs Python 20-50x slower
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"instruction count failed; log:\n{log_path.read_text()}")
        time.sleep(0.1)


def count_instructions(
    python: str, app: str, endpoint: str, n: int, env: dict[str, str], workdir: Path
) -> int:
    """Instructions per request of `app` on `endpoint`: callgrind counts only the n
    requests that bench/instructions.py sends after its warm-up (see its docstring)."""
    signal_base = workdir / f"cg-{app}-{endpoint}"
    out = workdir / f"callgrind-{app}-{endpoint}.out"
    log_path = workdir / f"callgrind-{app}-{endpoint}.log"
    kind = app if app in HAND_WRITTEN else "service"  # the bare one is a service too
    command = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        python, str(BENCH / "instructions.py"), kind, endpoint, str(n), str(signal_base),
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        wait_for_file(Path(f"{signal_base}.ready"), process, log_path)
        check_call(["callgrind_control", "-i", "on", str(process.pid)])
        Path(f"{signal_base}.go").touch()
        wait_for_file(Path(f"{signal_base}.done"), process, log_path)
        check_call(["callgrind_control", "-i", "off", str(process.pid)])
        Path(f"{signal_base}.stop").touch()
        if process.wait(timeout=300) != 0:
            raise SystemExit(f"instruction count failed; log:\n{log_path.read_text()}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
    return int(totals[0].split()[1]) // n


def instructions_table(counts: dict[tuple[str, str], int], endpoints: list[str]) -> str:
    bare = any(app == BARE for _, app in counts)
    floor = any(app == FLOOR for _, app in counts)
    lines = [
        "| endpoint | service instr/request | baseline instr/request | ratio |"
        + (" none instr/request | cost against none |" if bare else "")
        + (" floor instr/request | floor ratio | service against floor |" if floor else ""),
        "|---|---|---|---|" + ("---|---|" if bare else "") + ("---|---|---|" if floor else ""),
    ]
    for endpoint in endpoints:
        service, baseline = counts[endpoint, "service"], counts[endpoint, "baseline"]
        line = f"| {endpoint} | {service:,} | {baseline:,} | {baseline / service:.2f} |"
        if bare:
            none = counts[endpoint, BARE]
            line += f" {none:,} | {100 * (service / none - 1):+.1f}% |"
        if floor:
            least = counts[endpoint, FLOOR]
            line += f" {least:,} | {baseline / least:.2f} | {least / service:.2f} |"
        lines.append(line)
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds per point (default 15)")
    parser.add_argument(
        "--connections", default="10,100,500", help="comma-separated (default 10,100,500)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per point and app (default 2)")
    parser.add_argument(
        "--endpoints", default=",".join(ENDPOINTS), help=f"subset of {','.join(ENDPOINTS)}"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--timeout",
        type=int,
        default=30,
        help="wrk request timeout in s (default 30, the service's request timeout)",
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="warm-up seconds per app and endpoint"
    )
    parser.add_argument("--items", type=int, default=10_000, help="seeded items (default 10000)")
    parser.add_argument("--python", default="3.12", help="Python of the rendered project")
    parser.add_argument(
        "--admin-dsn",
        default=os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="where to create the throwaway bench database",
    )
    parser.add_argument(
        "--project", type=Path, help="use this rendered project instead of rendering"
    )
    parser.add_argument(
        "--observability",
        choices=("none", "prometheus", "otel"),
        default="none",
        help="the service's observability answer (default none: the bare service); with "
        "another choice the same service rendered with none runs beside it in every point, "
        "and a second table gives the choice's cost against it. otel traces "
        f"{BENCH_TRACES_SAMPLE_RATIO} of the requests and exports them over OTLP/HTTP to a "
        "local sink that drops them",
    )
    parser.add_argument(
        "--instructions",
        type=int,
        metavar="N",
        help="instead of loading servers with wrk, count instructions per request over N "
        "in-process requests with valgrind's callgrind (independent of the machine's load)",
    )
    parser.add_argument(
        "--connect-under-load",
        action="store_true",
        help="open the connections while the first ones already load the server, as plain wrk "
        "does; by default each connection holds its first request until all are open",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="access logs on, as both apps ship: the service's own line (its default) against "
        "uvicorn's for the baseline (uvicorn's default); with --instructions only the service's "
        "is counted (uvicorn writes its line outside the ASGI app)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run bench/floor.py, the baseline's endpoints on one AsyncSession per request "
        "(the service's rule, nothing else of it), and print a table of it against both",
    )
    parser.add_argument("--keep", action="store_true", help="keep the rendered project and logs")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    args.connections = [int(c) for c in args.connections.split(",")]
    args.endpoints = args.endpoints.split(",")
    if args.instructions is not None and (args.instructions < 1 or args.items < 200):
        parser.error("--instructions needs N >= 1 and --items >= 200 (the ids it reads)")
    unknown = set(args.endpoints) - set(ENDPOINTS)
    if unknown:
        parser.error(f"unknown endpoints {sorted(unknown)}; choose from {list(ENDPOINTS)}")
    return args


# `--observability otel`: the share of requests traced, as a busy service would sample.
BENCH_TRACES_SAMPLE_RATIO = "0.1"


class _OtlpSinkHandler(BaseHTTPRequestHandler):
    """Accepts an OTLP/HTTP export (reads it whole) and drops it, as a collector would."""

    protocol_version = "HTTP/1.1"  # keep-alive, as with a collector

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    """A local OTLP/HTTP endpoint in this process's threads: the service really exports
    (protobuf encoding, HTTP) and the spans go nowhere."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpSinkHandler)
    thread = threading.Thread(target=sink.serve_forever, name="otlp-sink", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sink.server_address[1]}"
    finally:
        sink.shutdown()
        sink.server_close()


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def bench_database(python: str, admin_dsn: str) -> Iterator[str]:
    name = f"copier_bench_{os.getpid()}"
    check_call([python, str(BENCH / "db.py"), "create", admin_dsn, name])
    try:
        yield admin_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        check_call([python, str(BENCH / "db.py"), "drop", admin_dsn, name])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.instructions:
        if shutil.which("valgrind") is None:
            raise SystemExit("valgrind is not installed: apt-get install -y valgrind")
    elif shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (or your OS's package)")
    server = urllib.parse.urlsplit(args.admin_dsn)
    try:  # a real server: the baseline app needs one too, so the tests' embedded one won't do
        socket.create_connection((server.hostname or "127.0.0.1", server.port or 5432), 5).close()
    except OSError as error:
        raise SystemExit(
            f"no PostgreSQL server at {server.hostname}:{server.port or 5432} ({error}): the "
            "benchmark needs a real one; start it or pass --admin-dsn (BENCH_ADMIN_DSN)"
        ) from None
    # Both stop the run the same way (servers stopped, database dropped), even when a
    # non-interactive shell started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    load_before = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="copier-bench-"))
    servers: list[Server] = []
    try:
        project = args.project
        if project is None:
            project = workdir / "bench-service"
            log(f"rendering database=postgresql observability={args.observability} into {project}")
            render(project, args.observability)
            log("uv sync")
            check_call([UV, "sync", "--python", find_python(args.python)], cwd=project)
        python = str(project / ".venv" / "bin" / "python")
        apps = list(APPS)
        pythons = {"service": python, "baseline": python}
        if args.observability != "none":
            bare = workdir / "bare-service"
            log(f"rendering the same service with observability=none into {bare}")
            render(bare, "none")
            check_call([UV, "sync", "--python", find_python(args.python)], cwd=bare)
            apps.insert(1, BARE)
            pythons[BARE] = str(bare / ".venv" / "bin" / "python")
        if args.floor:
            apps.insert(-1, FLOOR)  # the baseline stays last
            pythons[FLOOR] = python
        with bench_database(python, args.admin_dsn) as dsn, otlp_sink() as sink_url:
            sa_url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
            traces = {
                f"{ENV_PREFIX}TRACES_SAMPLE_RATIO": BENCH_TRACES_SAMPLE_RATIO,
                "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url,
                "OTEL_SERVICE_NAME": "bench-service",
            }
            bare_env = clean_env(
                **{
                    f"{ENV_PREFIX}DATABASE_URL": sa_url,
                    f"{ENV_PREFIX}ACCESS_LOG": "true" if args.access_log else "false",
                    f"{ENV_PREFIX}LOG_JSON": "true",
                }
            )
            service_env = bare_env | (traces if args.observability == "otel" else {})
            envs = {
                "service": service_env,
                BARE: bare_env,
                "baseline": clean_env(BENCH_BASELINE_DSN=dsn),
                FLOOR: clean_env(BENCH_BASELINE_DSN=dsn),
            }
            log("migrating and seeding")
            check_call(
                [str(project / ".venv" / "bin" / PACKAGE), "db", "upgrade"],
                cwd=workdir,
                env=service_env,
            )
            check_call([python, str(BENCH / "db.py"), "seed", dsn, str(args.items)])

            if args.instructions:
                counts: dict[tuple[str, str], int] = {}
                endpoints = [e for e in args.endpoints if e in INSTRUCTION_ENDPOINTS]
                for endpoint in endpoints:
                    for app in apps:
                        counts[endpoint, app] = count_instructions(
                            pythons[app], app, endpoint, args.instructions, envs[app], workdir
                        )
                        log(
                            f"{endpoint:>6} {app:<8} {counts[endpoint, app]:,} instructions/request"
                        )
                print()
                print(
                    f"callgrind, {args.instructions} requests per app and endpoint through the "
                    "ASGI app in-process, one at a time, after 100 warm-up requests; ratio = "
                    "baseline / service (1.0 = the same work per request)"
                    + (
                        f"; cost = service ({args.observability}) / the same service with "
                        "observability=none, less 1"
                        if BARE in apps
                        else ""
                    )
                    + (
                        "; floor ratio = baseline / floor, service against floor = floor / "
                        "service (1.0 = the service does no more than the floor)"
                        if FLOOR in apps
                        else ""
                    )
                )
                print()
                print(instructions_table(counts, endpoints))
                return 0

            for app in apps:
                if app in HAND_WRITTEN:
                    module = ["-m", "uvicorn", f"{app}:create_app", "--app-dir", str(BENCH)]
                else:  # the service, and the bare one beside it, as their image runs them
                    module = ["-m", PACKAGE, "serve"]
                servers.append(start_server(
                    app, [pythons[app], *module], workdir, envs[app], workdir,
                    uvicorn_cli=app in HAND_WRITTEN,
                    # uvicorn's access line for the hand-written apps: what they ship with.
                    uvicorn_access_log=args.access_log and app in HAND_WRITTEN,
                ))  # fmt: skip
            for server in servers:
                server.wait_ready()
                log(f"{server.name} pid {server.process.pid} on {server.url}")
            by_name = {server.name: server for server in servers}
            common = {
                "threads": args.threads,
                "timeout": args.timeout,
                "n_items": args.items,
                "hold_ms": 0 if args.connect_under_load else HOLD_MS,
            }
            run_id = f"{os.getpid()}-{int(time.time())}"

            if args.warmup > 0:
                log(f"warm-up: {args.warmup}s per app and endpoint at 100 connections")
                for endpoint in args.endpoints:
                    for app in apps:
                        wrk(
                            by_name[app],
                            endpoint,
                            100,
                            args.warmup,
                            prefix=f"w{app}{run_id}",
                            **common,
                        )

            points: list[Point] = []
            for endpoint in args.endpoints:
                for connections in args.connections:
                    point = Point(endpoint, connections, {app: [] for app in apps})
                    points.append(point)
                    for repeat in range(args.repeat):
                        # Rotate who goes first, so drift on a shared machine hits all alike.
                        shift = repeat % len(apps)
                        order = apps[shift:] + apps[:shift]
                        for app in order:
                            prefix = f"{app}{run_id}-{connections}-{repeat}"
                            run = wrk(
                                by_name[app],
                                endpoint,
                                connections,
                                args.duration,
                                prefix=prefix,
                                **common,
                            )
                            point.runs[app].append(run)
                            log(
                                f"{endpoint:>6} c={connections:<4} #{repeat + 1} {app:<8} "
                                f"{run.rps:8.0f} req/s p50 {run.p50_ms:7.1f} ms p99 {run.p99_ms:7.1f} ms "
                                f"errors {run.errors} timeouts {run.timeouts} RSS {run.rss_mib:.0f} MiB"
                            )
    except KeyboardInterrupt:
        log("interrupted: stopping the servers")
        raise SystemExit(130) from None
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    load_after = load_average()
    print()
    print(
        f"wrk -t{args.threads} --timeout {args.timeout:g}s, {args.duration:g} s per point, "
        f"{args.repeat} run(s) per point and app (medians; errors/timeouts summed), "
        f"warm-up {args.warmup:g} s; {args.items} seeded items; 1 worker each, "
        + (
            "access logs on (the service's own, uvicorn's for the baseline); "
            if args.access_log
            else "access logs off; "
        )
        + (
            "connections opened under load"
            if args.connect_under_load
            else f"connections opened before the load ({HOLD_MS} ms hold, not counted)"
        )
    )
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {args.python}; "
        f"load average before {load_before}, after {load_after}"
    )
    print()
    print(table(points))
    print()
    print("Targets (service / baseline):")
    print("\n".join(targets(points)))
    if args.observability != "none":
        print()
        print(f"observability={args.observability} against the same service with none:")
        print()
        print(cost_table(points, args.observability))
        print()
        print(f"Targets ({args.observability} against none):")
        print("\n".join(cost_targets(points, args.observability)))
    if args.floor:
        print()
        print("The session floor (bench/floor.py: one AsyncSession per request, nothing else):")
        print()
        print(floor_table(points))
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {"endpoint": p.endpoint, "connections": p.connections,
                     "runs": {app: [r.__dict__ for r in runs] for app, runs in p.runs.items()}}
                    for p in points
                ],
                indent=2,
            )
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
