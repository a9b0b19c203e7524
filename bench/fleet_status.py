"""Wall time of `async-service fleet status` over 50 local services, cold and warm cache.

Not a test: builds the synthetic template history of tests/fleet_fixtures.py and 50 service
repositories from it (three versions, both CI choices, three databases, each its own name and
some with owner edits), then runs the CLI twice on a registry of them: first with an empty
cache (every pristine render made), then warm (none). Target: warm under 10 s on 2 cores.

    uv run python bench/fleet_status.py [--repos 50] [--jobs 4] [--keep DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fleet_fixtures import build_template, make_service


def build(base: Path, count: int) -> Path:
    template = build_template(base / "template")
    options = itertools.cycle(
        itertools.product(
            ["1.0.0", "1.1.0", "2.0.0"], ["gitlab", "github"], ["postgresql", "sqlite"]
        )
    )
    lines = []
    for index, (version, ci, database) in zip(range(count), options, strict=False):
        name = f"svc-{index:02d}"
        edits = {"db.txt": f"database: {database}\npool: {index}\n"} if index % 3 == 0 else {}
        data = {"project_name": name, "ci": ci, "database": database}
        make_service(template, base / "fleet" / name, version, data, edits)
        lines.append(f'[[repos]]\nrepo = "fleet/{name}"\n')
    registry = base / "registry.toml"
    registry.write_text("\n".join(lines))
    return registry


def run(registry: Path, cache: Path, jobs: int) -> tuple[float, list[dict[str, object]]]:
    command = [
        sys.executable, "-m", "async_service", "fleet", "status",
        "--registry", str(registry), "--cache-dir", str(cache), "--jobs", str(jobs), "--json",
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"fleet status exited {done.returncode}: {done.stderr}")
    return elapsed, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="build here and keep it (default: a tmp dir)")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    try:
        start = time.perf_counter()
        registry = build(base, args.repos)
        print(f"built {args.repos} repositories in {time.perf_counter() - start:.1f} s")
        cache = base / "cache"
        cold, rows = run(registry, cache, args.jobs)
        warm, _ = run(registry, cache, args.jobs)
        warm2, _ = run(registry, cache, args.jobs)
        behind = sum(1 for row in rows if row["behind"])
        drifted = sum(1 for row in rows if row["drifted_files"])
        print(
            f"{len(rows)} repositories ({behind} behind, {drifted} with drift), --jobs {args.jobs}"
        )
        print(f"fleet status, cold cache: {cold:.2f} s")
        print(f"fleet status, warm cache: {warm:.2f} s, {warm2:.2f} s (target: under 10 s)")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
