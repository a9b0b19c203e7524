"""A Copier template source: where its git history is, its versions, questions and CHANGELOG."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from packaging.version import Version

from . import git, versions

# Copier's API is not thread-safe: it changes the process's working directory (plumbum's
# `local.cwd` calls os.chdir), so every run_copy/run_update in this process holds this lock.
COPIER_LOCK = threading.Lock()

_SHORTCUTS = {"gh:": "https://github.com/", "gl:": "https://gitlab.com/"}


# Copier's UnsafeTemplateError, in this CLI's words: its own text names Copier's command line.
UNSAFE_TEMPLATE = "the template runs tasks or migrations: pass --trust if you trust it"


class TemplateError(Exception):
    """The template source cannot be read (unreachable, not a git repository, no copier.yml)."""


def default_cache_dir() -> Path:
    if env := os.environ.get("ASYNC_SERVICE_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "async-service"


def is_url(source: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*://", source)) or source.startswith(
        ("git@", *_SHORTCUTS)
    )


def expand(source: str) -> str:
    for prefix, base in _SHORTCUTS.items():
        if source.startswith(prefix):
            rest = source.removeprefix(prefix)
            return base + (rest if rest.endswith(".git") else rest + ".git")
    return source


def same_source(a: str, b: str) -> bool:
    """Whether two spellings of a template source are the same template."""

    def norm(source: str) -> str:
        source = expand(source.strip())
        if source.startswith("file://"):
            source = source.removeprefix("file://")
        if not is_url(source):
            return str(Path(source).expanduser().resolve())
        return source.rstrip("/").removesuffix(".git")

    return norm(a) == norm(b)


def cache_key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


class _IgnoreTagsLoader(yaml.SafeLoader):
    """Reads copier.yml's plain YAML; Copier's own tags (`!include`) read as null."""


_IgnoreTagsLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@dataclass(frozen=True)
class Question:
    name: str
    type: str = "str"
    choices: tuple[Any, ...] | None = None  # None: free answer (or choices computed by Jinja)
    multiselect: bool = False
    default: Any = None

    def check(self, value: Any) -> str | None:
        """Why `value` is not a possible answer, or None."""
        if self.choices is None:
            return None
        values = value if self.multiselect and isinstance(value, list) else [value]
        bad = [v for v in values if v not in self.choices]
        if bad:
            allowed = ", ".join(str(c) for c in self.choices)
            return f"{bad[0]!r} is not one of the question's choices: {allowed}"
        return None

    def coerce(self, text: str) -> Any:
        """A `--data k=v` string as Copier would type it."""
        if self.type in {"bool", "int", "float", "yaml", "json"} or self.multiselect:
            return yaml.safe_load(text)
        return text


def _choices(raw: Any) -> tuple[Any, ...] | None:
    def value_of(item: Any) -> Any:
        if isinstance(item, dict):
            return item.get("value")
        if isinstance(item, list) and len(item) == 2:  # [label, value]
            return item[1]
        return item

    if isinstance(raw, dict):
        found = tuple(value_of(v) for v in raw.values())
    elif isinstance(raw, list):
        found = tuple(value_of(v) for v in raw)
    else:
        return None
    # Choices computed with Jinja cannot be known without rendering: do not validate them.
    if any(isinstance(v, str) and "{{" in v for v in found):
        return None
    return found


def parse_questions(config: dict[str, Any]) -> dict[str, Question]:
    questions: dict[str, Question] = {}
    for name, spec in config.items():
        if name.startswith("_"):
            continue
        if isinstance(spec, dict) and spec.get("when") is False:
            continue  # a computed value (`when: false`), never asked nor answered
        if isinstance(spec, dict):
            questions[name] = Question(
                name=name,
                type=str(spec.get("type", "str")),
                choices=_choices(spec.get("choices")),
                multiselect=bool(spec.get("multiselect", False)),
                default=spec.get("default"),
            )
        else:
            questions[name] = Question(name=name, default=spec)
    return questions


@dataclass
class Template:
    """A template's git history, read with git (tags, files at a tag) without rendering."""

    source: str  # as written in the policy or the answers file
    repo: Path  # a local git repository holding its history (the source, or a cache clone)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _questions: dict[str, dict[str, Question]] = field(default_factory=dict, repr=False)

    @cached_property
    def tags(self) -> list[str]:
        return git.text(["tag", "--list"], self.repo).splitlines()

    def versions(self, prereleases: bool = False) -> dict[Version, str]:
        return versions.tagged_versions(self.tags, prereleases)

    def tag_for(self, version: str, prereleases: bool = True) -> str | None:
        """The tag of `version` (`1.0` finds tag `1.0.0`), or None when there is none."""
        wanted = versions.parse(version)
        if wanted is None:
            return version if version in self.tags else None
        return self.versions(prereleases=True).get(wanted)

    def commit(self, ref: str) -> str:
        commit = git.rev_parse(self.repo, ref)
        if commit is None:
            raise TemplateError(f"{self.source}: no version {ref}")
        return commit

    def read(self, ref: str, path: str) -> str | None:
        data = git.show(self.repo, ref, path)
        return None if data is None else data.decode(errors="replace")

    def config(self, ref: str) -> dict[str, Any]:
        for name in ("copier.yml", "copier.yaml"):
            text = self.read(ref, name)
            if text is not None:
                loaded = yaml.load(text, Loader=_IgnoreTagsLoader)  # a SafeLoader subclass
                return loaded if isinstance(loaded, dict) else {}
        raise TemplateError(f"{self.source}: no copier.yml at {ref}")

    def questions(self, ref: str) -> dict[str, Question]:
        with self._lock:
            if ref not in self._questions:
                self._questions[ref] = parse_questions(self.config(ref))
            return self._questions[ref]

    def changelog(self, ref: str) -> str:
        return self.read(ref, "CHANGELOG.md") or ""

    @property
    def copier_src(self) -> str:
        """What to hand Copier: the local history (no network per render)."""
        return str(self.repo)


class Templates:
    """Template sources by spelling, each opened (cloned or fetched) once per process."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._opened: dict[str, Template | TemplateError] = {}
        self._source_locks: dict[str, threading.Lock] = {}

    def get(self, source: str) -> Template:
        key = expand(source)
        with self._lock:
            lock = self._source_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._opened:
                try:
                    self._opened[key] = self._open(source)
                except (TemplateError, git.GitError) as error:
                    self._opened[key] = TemplateError(str(error))
            found = self._opened[key]
        if isinstance(found, TemplateError):
            raise found
        return found

    def _open(self, source: str) -> Template:
        if not is_url(source):
            path = Path(source).expanduser().resolve()
            if not path.exists():
                raise TemplateError(f"template {source}: no such directory")
            if git.run(["rev-parse", "--git-dir"], path, check=False).returncode != 0:
                raise TemplateError(f"template {source}: not a git repository (no versions)")
            return Template(source=source, repo=path)
        url = expand(source)
        clone = self.cache_dir / "templates" / cache_key(url)
        if (clone / ".git").is_dir():
            git.run(["fetch", "--quiet", "--tags", "--force", "origin"], clone, timeout=600)
        else:
            clone.parent.mkdir(parents=True, exist_ok=True)
            partial = clone.with_name(clone.name + f".partial-{os.getpid()}")
            try:
                git.run(["clone", "--quiet", url, str(partial)], timeout=600)
            except git.GitError as error:
                raise TemplateError(f"template {source}: cannot clone ({error})") from None
            partial.rename(clone)
        return Template(source=source, repo=clone)
