"""Renders for the container, CI and Kubernetes checks (tests/test_deploy.py).

Those files read only a few answers (database, example_resource, ci, docker,
python_version); `DEPLOY_VARIABLES` below lists what they may read, and a test keeps the
templates to it. So every combination of those answers is rendered, and nothing else is:
the other questions keep their defaults. The renders come from a copy of the working tree
(copier.yml and template/ without UNREAD below, which these files never
read), so they are quick, include uncommitted edits and are never a tag.

Rendered once per template tree, under a file lock, so pytest-xdist workers and later runs
share them; the cache key is a hash of the files copied.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import copier
import yaml

from tests.matrix import renderer_process

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template"
# The longest name the template accepts (64 characters): Kubernetes limits names and label
# values to 63, so the renders check the names it derives at their longest.
PROJECT_NAME = " ".join(["Deploy Check"] * 5)
PACKAGE = "_".join(["deploy_check"] * 5)
SLUG = "-".join(["deploy-check"] * 5)

# The template files this module checks, as globs under template/.
DEPLOY_GLOBS = (
    "*Dockerfile*",
    "*.dockerignore*",
    "*compose.yaml*",
    "*.github*/workflows/*",
    "*.gitlab-ci.yml*",
    "*deploy*/**/*",
    "docs/*",
    "_parts/shutdown_budget.jinja",
    "_parts/deploy/*",
    "_parts/compose/*",
)
# What those templates may read: the answers varied here, the computed flags derived from
# them, and names that change text but not structure.
VARIED = ("database", "example_resource", "ci", "docker", "python_version", "observability")
DEPLOY_VARIABLES = frozenset(
    {*VARIED, "use_sql", "use_mongo", "use_db", "use_items", "use_metrics", "use_secrets", "k8s_name"}
    | {"package_name", "project_slug", "project_name"}
)
# Files of a render, by kind.
KINDS = {
    "dockerfile": "Dockerfile",
    "compose": "compose.yaml",
    "github": ".github/workflows/ci.yml",
    "github_update": ".github/workflows/template-update.yml",
    "gitlab": ".gitlab-ci.yml",
    "renovate": "docs/renovate.json5",
    "deploy_readme": "deploy/README.md",
}
KUBERNETES = "deploy/kubernetes"
OVERLAYS = ("staging", "production")


def deploy_templates() -> list[Path]:
    found = {p for pattern in DEPLOY_GLOBS for p in TEMPLATE.glob(pattern) if p.is_file()}
    return sorted(found)


def _questions() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "copier.yml").read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def choices(question: str) -> list[Any]:
    spec = _questions()[question]
    if "choices" not in spec:
        return [True, False]
    given = spec["choices"]
    return list(given.values()) if isinstance(given, dict) else list(given)


def combinations() -> list[dict[str, Any]]:
    """Every combination of the answers the deploy files read (CI 'none' has no CI file,
    and its Dockerfile, compose and manifests are those of the other CI choices)."""
    combos = []
    for database, ci, docker, python, observability in itertools.product(
        choices("database"),
        [c for c in choices("ci") if c != "none"],
        [True, False],
        choices("python_version"),
        choices("observability"),
    ):
        for items in [True, False] if database != "none" else [None]:
            combo = {
                "database": database,
                "ci": ci,
                "docker": docker,
                "python_version": python,
                "observability": observability,
            }
            if items is not None:
                combo["example_resource"] = items
            combos.append(combo)
    return combos


def combo_id(combo: dict[str, Any]) -> str:
    return "-".join(f"{k}={v}" for k, v in combo.items())


# Template files the deploy files never read, left out of the renders to keep them quick:
# the Python code and the service's main README (the slowest template to render).
UNREAD = frozenset({"src", "tests", "README.md.jinja"})


def _source_files() -> list[Path]:
    files = [ROOT / "copier.yml"]
    for path in sorted(TEMPLATE.rglob("*")):
        top = path.relative_to(TEMPLATE).parts[0]
        if path.is_file() and top not in UNREAD:
            files.append(path)
    return files


def source_hash() -> str:
    digest = hashlib.sha256(PROJECT_NAME.encode())
    for path in _source_files():
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _copy_source(target: Path) -> None:
    for path in _source_files():
        dst = target / path.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dst)


def _render_one(args: tuple[str, str, dict[str, Any]]) -> None:
    source, dst, combo = args
    copier.run_copy(
        source,
        dst,
        data={"project_name": PROJECT_NAME, **combo},
        defaults=True,
        unsafe=True,
        quiet=True,
        skip_tasks=True,
    )


def renders() -> dict[str, dict[str, Any]]:
    """{combo id: {"answers": ..., "dir": ...}}, rendered once per template tree."""
    base = Path(os.environ.get("TEMPLATE_RENDERS_DIR", tempfile.gettempdir()))
    target = base / "copier-async-service-deploy" / source_hash()
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f"{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = target / "manifest.json"
        if manifest.exists():
            loaded: dict[str, dict[str, Any]] = json.loads(manifest.read_text())
            return loaded
        shutil.rmtree(target, ignore_errors=True)
        source = target / "template-source"
        _copy_source(source)
        jobs = [
            (str(source), str(target / f"r{n:03d}"), combo)
            for n, combo in enumerate(combinations())
        ]
        workers = min(2, os.cpu_count() or 1)
        with ProcessPoolExecutor(max_workers=workers, initializer=renderer_process) as pool:
            list(pool.map(_render_one, jobs, chunksize=6))
        result = {combo_id(c): {"answers": c, "dir": d} for _, d, c in jobs}
        manifest.write_text(json.dumps(result, indent=1))
        return result


def distinct(paths: list[Path]) -> dict[str, list[Path]]:
    """Content hash -> the rendered files with exactly that content (first one lints)."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), []).append(path)
    return groups


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "secrets.env"):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
