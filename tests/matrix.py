"""Every combination of the template's options, rendered once per template tree and grouped
into variants whose rendered code (src/, tests/, pyproject.toml) is byte-identical.

A combination is rendered when a test first asks for it (`RENDERS`), under a file lock of its
own, so pytest-xdist workers share one set of renders; the cache key is a hash of the
template tree, so any edit renders again.
"""

from __future__ import annotations

import copy
import fcntl
import functools
import hashlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import copier
import copier._main as copier_main
import copier._subproject as copier_subproject
import copier._template as copier_template
import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COPIER_YML = ROOT / "copier.yml"
# The rendered files that make up a variant's code; everything else (CI, Docker, README)
# is checked by the render tests but needs no toolchain run of its own.
CODE_PATHS = ("src", "tests", "pyproject.toml")
BASE_ANSWERS = {"project_name": "Matrix Service"}


def questions() -> dict[str, Any]:
    data = yaml.safe_load(COPIER_YML.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _choices(spec: dict[str, Any]) -> list[Any]:
    choices = spec["choices"]
    return list(choices.values()) if isinstance(choices, dict) else list(choices)


def combinations() -> list[dict[str, Any]]:
    """Every answer combination of the choice and bool questions, honouring `when`."""
    qs = questions()
    axes = {
        name: _choices(spec) if "choices" in spec else [True, False]
        for name, spec in qs.items()
        if spec.get("when") is not False and ("choices" in spec or spec.get("type") == "bool")
    }
    combos = []
    for values in itertools.product(*axes.values()):
        combo = dict(zip(axes, values, strict=True))
        # example_resource is only asked when there is a database.
        if combo["database"] == "none" and combo.get("example_resource") is False:
            continue
        if combo["database"] == "none":
            combo.pop("example_resource", None)
        combos.append(combo)
    return combos


def combo_id(combo: dict[str, Any]) -> str:
    return "-".join(f"{k}={v}" for k, v in combo.items())


def tree_hash() -> str:
    """Hash of everything Copier reads: copier.yml and the template tree."""
    digest = hashlib.sha256()
    paths = [COPIER_YML, *sorted(p for p in (ROOT / "template").rglob("*") if p.is_file())]
    for path in paths:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def code_hash(project: Path) -> str:
    digest = hashlib.sha256()
    for top in CODE_PATHS:
        root = project / top
        found = root.rglob("*") if root.is_dir() else [root]
        files = sorted(p for p in found if p.is_file() and "__pycache__" not in p.parts)
        for path in files:
            digest.update(str(path.relative_to(project)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def render(dst: Path, answers: dict[str, Any], source: Path = ROOT) -> None:
    """Render the working tree (HEAD plus uncommitted changes), never the latest tag.

    `source` may be a snapshot() of it: a plain directory, which Copier renders as it is.
    """
    copier.run_copy(
        str(source),
        str(dst),
        data={**BASE_ANSWERS, **answers},
        defaults=True,
        vcs_ref="HEAD" if source == ROOT else None,
        unsafe=True,
        quiet=True,
        skip_tasks=True,
    )


def snapshot(into: Path) -> Path:
    """The working tree's template as a plain directory: rendering the repository itself
    makes Copier clone it (and copy the uncommitted changes) for every render."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv")
    for name in ("template", "hooks"):
        shutil.copytree(ROOT / name, into / name, ignore=ignore)
    shutil.copy2(COPIER_YML, into / "copier.yml")
    return into


def renderer_process() -> None:
    """Make this process's renders cheaper for good (a render pool's initializer)."""
    cheaper_renders(pytest.MonkeyPatch())


@contextmanager
def renders_made_cheaper(*, in_repositories: bool = False) -> Iterator[None]:
    """The same, for the block only (a test that renders in the test process).

    `in_repositories`: for `copier copy` and `copier update` between git repositories (a
    tagged template history, a service's own repository), which keep every git call that
    decides what gets rendered and merged."""
    with pytest.MonkeyPatch.context() as patch:
        cheaper_renders(patch, in_repositories=in_repositories)
        yield


def cheaper_renders(patch: pytest.MonkeyPatch, *, in_repositories: bool = False) -> None:
    """Make renders cheaper without changing what they produce."""
    # With git on PATH Copier asks it about every rendered file's index entry, to copy an
    # executable bit into the index where core.fileMode is false: a process per file. It is
    # true (git's default here) in every repository these tests make, where the call is a
    # no-op; and renders into temporary directories are in no repository at all.
    patch.setattr(copier_main, "is_git_available", lambda: False)
    if not in_repositories:
        # The template (a snapshot: plain files, never a repository or a bundle) and the
        # destination (a temporary directory): two more git processes per render.
        patch.setattr(copier_template, "is_git_available", lambda: False)
        patch.setattr(copier_subproject, "is_in_git_repo", lambda path: False)
    # Copier builds a new Jinja environment per render and compiles every file, name and
    # path part again: two thirds of a render. One compiled code object serves every render
    # of the same source under the same compile-time settings (two template versions may
    # set different delimiters or extensions).
    compile_source = jinja2.Environment.compile
    compiled: dict[tuple[Any, ...], Any] = {}

    def compile_once(
        self: jinja2.Environment,
        source: Any,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> Any:
        if not isinstance(source, str):
            return compile_source(self, source, name, filename, raw, defer_init)
        key = (source, name, filename, raw, defer_init, _compile_settings(self))
        if key not in compiled:
            compiled[key] = compile_source(self, source, name, filename, raw, defer_init)
        return compiled[key]

    patch.setattr(jinja2.Environment, "compile", compile_once)
    # Most of the strings Copier renders are plain path parts (`src`, `tests`, `core`): a
    # string without a Jinja delimiter, or a newline (Jinja may drop a trailing one), renders
    # as itself, without a template and a context built for it.
    render_string = copier_main.Worker._render_string

    def render_plain_as_is(self: Any, string: Any, extra_context: Any = None) -> Any:
        if isinstance(string, str) and not any(mark in string for mark in _NOT_PLAIN):
            return string
        return render_string(self, string, extra_context)

    patch.setattr(copier_main.Worker, "_render_string", render_plain_as_is)
    _render_context_once(patch)
    _config_parsed_once(patch)


_NOT_PLAIN = ("{{", "{%", "{#", "\n")


def _compile_settings(env: jinja2.Environment) -> tuple[Any, ...]:
    """What Jinja reads from the environment while compiling (its lexer and extensions)."""
    return (
        env.block_start_string, env.block_end_string, env.variable_start_string,
        env.variable_end_string, env.comment_start_string, env.comment_end_string,
        env.line_statement_prefix, env.line_comment_prefix, env.trim_blocks,
        env.lstrip_blocks, env.newline_sequence, env.keep_trailing_newline,
        tuple(sorted(env.extensions)), env.optimized, env.autoescape, env.undefined,
    )  # fmt: skip


def _render_context_once(patch: pytest.MonkeyPatch) -> None:
    """Copier rebuilds the whole Jinja context (every answer, merged and filtered) for each
    part of each path it renders, and the answers file's path with it: about a third of a
    render. While the files are written the answers no longer change, so one context per
    render serves every file."""
    worker = copier_main.Worker
    render_template = worker._render_template
    render_context = worker._render_context
    answers_relpath = worker.answers_relpath.fget  # type: ignore[attr-defined]

    def render_template_with_one_context(self: Any) -> None:
        self.__dict__["_matrix_context"] = {}
        try:
            render_template(self)
        finally:
            del self.__dict__["_matrix_context"]

    def cached_context(self: Any) -> Any:
        cache = self.__dict__.get("_matrix_context")
        if cache is None or cache.get("computing"):
            return render_context(self)
        if "context" not in cache:
            cache["context"] = render_context(self)
        return cache["context"]

    def cached_answers_relpath(self: Any) -> Any:
        cache = self.__dict__.get("_matrix_context")
        if cache is None:
            return answers_relpath(self)
        if "answers_relpath" not in cache:
            # Copier blanks a key of the context it renders this with: a private one.
            cache["computing"] = True
            try:
                cache["answers_relpath"] = answers_relpath(self)
            finally:
                del cache["computing"]
        return cache["answers_relpath"]

    patch.setattr(worker, "_render_template", render_template_with_one_context)
    patch.setattr(worker, "_render_context", cached_context)
    patch.setattr(worker, "answers_relpath", property(cached_answers_relpath))


def _config_parsed_once(patch: pytest.MonkeyPatch) -> None:
    """copier.yml is parsed again (PyYAML, pure Python) for every render."""
    load = copier_template.load_template_config
    parsed: dict[tuple[str, bytes, bool], Any] = {}

    def load_once(conf_path: Path, quiet: bool = False) -> Any:
        key = (str(conf_path), Path(conf_path).read_bytes(), quiet)
        if key not in parsed:
            parsed[key] = load(conf_path, quiet)
        return copy.deepcopy(parsed[key])

    patch.setattr(copier_template, "load_template_config", load_once)


def renders_dir() -> Path:
    base = Path(os.environ.get("TEMPLATE_RENDERS_DIR", Path(tempfile.gettempdir())))
    return base / "copier-async-service-renders" / tree_hash()


@contextmanager
def locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _source(target: Path) -> Path:
    """The snapshot every render of this tree comes from, taken once."""
    source, done = target / "template-source", target / "template-source.done"
    if not done.exists():
        with locked(target / "template-source.lock"):
            if not done.exists():
                shutil.rmtree(source, ignore_errors=True)
                snapshot(source)
                done.touch()
    return source


def _render_if_missing(job: tuple[str, int, dict[str, Any]]) -> None:
    """Render one combination unless a process already did (its code hash is written last)."""
    target, index, combo = Path(job[0]), job[1], job[2]
    dst, code = target / f"c{index:04d}", target / f"c{index:04d}.code"
    if code.exists():
        return
    with locked(target / f"c{index:04d}.lock"):
        if code.exists():
            return
        shutil.rmtree(dst, ignore_errors=True)
        render(dst, combo, _source(target))
        # Others take the file's existence, unlocked, for "rendered": it appears whole.
        written = code.with_suffix(".tmp")
        written.write_text(code_hash(dst))
        written.replace(code)


class Renders:
    """Every combination, each rendered from the working tree the first time a test asks for
    it, once per template tree: pytest-xdist workers and later runs share the renders (the
    cache key is a hash of the template tree, so any edit renders again). A test that needs
    one combination renders one (about 0.15 s), not all of them."""

    def __init__(self) -> None:
        self.answers = {combo_id(c): c for c in combinations()}
        self._index = {cid: n for n, cid in enumerate(self.answers)}
        self._pool: ProcessPoolExecutor | None = None
        self._target: Path | None = None

    def _job(self, cid: str) -> tuple[str, int, dict[str, Any]]:
        if self._target is None:  # hashing the tree reads every template file: once
            self._target = renders_dir()
            self._target.mkdir(parents=True, exist_ok=True)
        return str(self._target), self._index[cid], self.answers[cid]

    def project(self, cid: str) -> Path:
        """The combination's rendered project (a shared render: copy it before changing it)."""
        target, index, _ = job = self._job(cid)
        if not (Path(target) / f"c{index:04d}.code").exists():
            # Copier, made cheaper by patches of its internals (renderer_process), renders
            # in a process of its own: this one runs Copier unpatched for other tests.
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=1, initializer=renderer_process)
            self._pool.submit(_render_if_missing, job).result()
        return Path(target) / f"c{index:04d}"

    def code(self, cid: str) -> str:
        """A hash of the combination's rendered src/, tests/ and pyproject.toml."""
        project = self.project(cid)
        return project.with_name(f"{project.name}.code").read_text()

    def projects(self, cids: list[str]) -> list[Path]:
        """Several combinations' projects, the missing ones rendered on every core (a render
        another process holds is waited for)."""
        jobs = [self._job(cid) for cid in cids]
        missing = [job for job in jobs if not Path(job[0], f"c{job[1]:04d}.code").exists()]
        if len(missing) > 1:
            workers = os.cpu_count() or 2
            with ProcessPoolExecutor(max_workers=workers, initializer=renderer_process) as pool:
                list(pool.map(_render_if_missing, missing, chunksize=8))
        return [self.project(cid) for cid in cids]

    def render_all(self) -> None:
        self.projects(list(self.answers))


RENDERS = Renders()


# The answers that change a rendered project's code; ci and docker change only CI, Docker
# and README files, which the render tests check for every combination.
CODE_AXES = ("python_version", "database", "example_resource", "http_client", "observability")


def code_key(answers: dict[str, Any]) -> tuple[Any, ...]:
    """The answers that change code: combinations that agree on them render the same code."""
    return tuple(answers.get(axis) for axis in CODE_AXES)


def _pairs(combo: dict[str, Any]) -> set[tuple[tuple[str, Any], tuple[str, Any]]]:
    # A database with the items slice counts as a value of its own: the slice's code differs
    # by database (the PostgreSQL driver reads), and each other option instruments or serves it.
    items = sorted(combo.items())
    if combo.get("example_resource"):
        items.append(("database with items", combo["database"]))
    return {(a, b) for i, a in enumerate(items) for b in items[i + 1 :]}


def covering_set(combos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Combinations whose full toolchain runs: every pair of option values that some valid
    combination has (pairwise), and every database on every Python version.

    Greedy and deterministic: each (python_version, database) pair first, then while a pair
    is uncovered, the combination that covers the most uncovered pairs (earliest on ties).
    """
    uncovered = set().union(*(_pairs(c) for c in combos))
    chosen: list[dict[str, Any]] = []

    def take(candidates: list[dict[str, Any]]) -> None:
        best = max(candidates, key=lambda c: len(_pairs(c) & uncovered))
        chosen.append(best)
        uncovered.difference_update(_pairs(best))

    for version in dict.fromkeys(c["python_version"] for c in combos):
        for database in dict.fromkeys(c["database"] for c in combos):
            take([c for c in combos if (c["python_version"], c["database"]) == (version, database)])
    while uncovered:
        take(combos)
    return chosen


# The generated modules that start real processes, send signals, fuzz the API or kill
# server connections: they test the core's machinery, not a pairing of options, so the
# deep set (below) runs them and the rest of the covering set leaves them out.
DEEP_MODULES = (
    "test_signals.py",
    "test_fuzz.py",
    "test_fuzz_gateway.py",
    "test_faults_postgresql.py",
)


def deep_set(chosen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The covering set's combinations that run the deep modules too: every value of every
    code answer, and every database with the items slice (whose deep modules are the
    stateful fuzzing and the server faults), at least once; greedy, deterministic."""

    def values(combo: dict[str, Any]) -> set[tuple[Any, ...]]:
        if combo.get("example_resource") is False:  # `none` has no slice to ask about
            return set(combo.items())
        return {*combo.items(), ("database with items", combo["database"])}

    uncovered: set[tuple[Any, ...]] = set().union(*(values(c) for c in chosen))
    deep: list[dict[str, Any]] = []
    while uncovered:
        best = max(chosen, key=lambda c: len(values(c) & uncovered))
        deep.append(best)
        uncovered -= values(best)
    return deep


@functools.cache
def quick_set() -> tuple[str, ...]:
    """The combinations the quick loop (`-m "not slow"`) renders and checks: every pair of
    values of every answer, ci and docker included, and every database on every Python."""
    return tuple(combo_id(c) for c in covering_set(combinations()))


def params(ids: list[str]) -> list[Any]:
    """Combination ids as test parameters: the quick set's run in the quick loop
    (`-m "not slow"`), every other combination in a full run only."""
    quick = frozenset(quick_set())
    return [
        pytest.param(c, id=short_id(c), marks=() if c in quick else pytest.mark.slow)
        for c in sorted(ids)
    ]


def short_id(cid: str) -> str:
    """A test id of a combination's values: `3.12-sqlite-httpx-items-github-docker-otel`."""
    answers = RENDERS.answers[cid]
    return "-".join(
        (name if value else f"no{name}") if isinstance(value, bool) else str(value)
        for name, value in (
            ("items" if k == "example_resource" else k, v) for k, v in answers.items()
        )
    )
