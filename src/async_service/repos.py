"""Service repositories: the registry file, local paths and URLs, and their recorded answers."""

from __future__ import annotations

import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import git
from .template import cache_key, expand, is_url

ANSWERS_FILE = ".copier-answers.yml"
_REGISTRY_KEYS = {"repo": str, "note": str, "skip": bool}


class RegistryError(Exception):
    """The registry file is unreadable or breaks its schema."""


class RepoError(Exception):
    """One repository cannot be inspected or updated; the message says why in one line."""


@dataclass(frozen=True)
class RepoSpec:
    """A repository as the user named it: a local path or a git URL."""

    location: str
    note: str | None = None
    skip: bool = False

    @property
    def is_url(self) -> bool:
        return is_url(self.location)


@dataclass(frozen=True)
class Answers:
    src_path: str
    commit: str
    values: dict[str, Any]  # the questions' answers, without Copier's `_` keys


def load_registry(path: Path) -> list[RepoSpec]:
    """`[[repos]]` tables with `repo` (path or URL; paths relative to the file), `note`, `skip`."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as error:
        raise RegistryError(f"{path}: cannot read ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise RegistryError(f"{path.name}: not valid TOML: {error}") from None
    unknown = sorted(set(raw) - {"repos"})
    if unknown:
        raise RegistryError(f"{path.name}: {unknown[0]}: unknown key; allowed: repos")
    entries = raw.get("repos", [])
    if not isinstance(entries, list):
        raise RegistryError(f"{path.name}: repos: must be an array of tables ([[repos]])")
    specs: list[RepoSpec] = []
    for index, entry in enumerate(entries):
        where = f"{path.name}: repos[{index}]"
        if not isinstance(entry, dict):
            raise RegistryError(f"{where}: must be a table")
        for key, value in entry.items():
            if key not in _REGISTRY_KEYS:
                raise RegistryError(f"{where}.{key}: unknown key; allowed: repo, note, skip")
            if not isinstance(value, _REGISTRY_KEYS[key]):
                kind = _REGISTRY_KEYS[key].__name__
                raise RegistryError(f"{where}.{key}: must be a {kind}")
        if "repo" not in entry:
            raise RegistryError(f"{where}: missing key repo (a path or git URL)")
        location = entry["repo"]
        if not is_url(location):
            location = str((path.parent / location).resolve())
        specs.append(RepoSpec(location, entry.get("note"), entry.get("skip", False)))
    return specs


@dataclass(frozen=True)
class Repo:
    """A repository opened for reading: a git dir and the revision that stands for it."""

    spec: RepoSpec
    git_dir: Path  # the local repository, or the cache's shallow clone of a URL
    rev: str

    def answers(self) -> Answers:
        data = git.show(self.git_dir, self.rev, ANSWERS_FILE)
        if data is None:
            raise RepoError(f"no {ANSWERS_FILE} committed: not a Copier-generated service")
        try:
            loaded = yaml.safe_load(data)
        except yaml.YAMLError as error:
            raise RepoError(f"{ANSWERS_FILE} is not valid YAML: {error}") from None
        if not isinstance(loaded, dict) or "_src_path" not in loaded or "_commit" not in loaded:
            raise RepoError(f"{ANSWERS_FILE} has no _src_path/_commit: not written by Copier")
        values = {k: v for k, v in loaded.items() if not str(k).startswith("_")}
        src_path = str(loaded["_src_path"])
        if self.spec.is_url and not is_url(src_path) and not Path(src_path).is_absolute():
            # Relative to a checkout of the owner's that is not here; never to this process's
            # working directory (which Copier moves while other workers run).
            raise RepoError(
                f"relative _src_path {src_path} in a remote repository: record the template's "
                f"URL or absolute path in {ANSWERS_FILE}"
            )
        if not self.spec.is_url and not is_url(src_path):
            # `copier copy ../template svc` records `../template`: relative to the service's
            # top directory (where `copier update` runs), not to wherever this CLI runs.
            src_path = str((self.git_dir / Path(src_path).expanduser()).resolve())
        return Answers(src_path, str(loaded["_commit"]), values)


_clone_locks: dict[str, threading.Lock] = {}
_clone_locks_lock = threading.Lock()


def open_local(spec: RepoSpec) -> Path:
    """The top of the local repository `spec` names, or a RepoError saying what it is instead."""
    path = Path(spec.location).expanduser()
    if not path.is_dir():
        raise RepoError("no such directory")
    if not git.is_work_tree(path):
        raise RepoError("not a git repository")
    top = git.toplevel(path)
    if git.rev_parse(top, "HEAD") is None:
        raise RepoError("git repository has no commits")
    return top


def at_default_branch(spec: RepoSpec, top: Path) -> Repo:
    """The local repository `top` read at its default branch, not at the branch checked out."""
    ref = git.default_ref(top)
    if ref is None:
        names = [name.removeprefix("refs/heads/") for name in git.local_branches(top)]
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise RepoError(
            f"cannot tell the default branch: no origin/HEAD, main or master, and "
            f"{len(names)} branches ({shown}); git remote set-head origin --auto sets origin/HEAD"
        )
    return Repo(spec, top, ref)


def open_repo(spec: RepoSpec, cache_dir: Path) -> Repo:
    """Open for reading. URLs are fetched shallow into the cache (refreshed on every call)."""
    if not spec.is_url:
        return at_default_branch(spec, open_local(spec))
    clone = cache_dir / "repos" / cache_key(spec.location)
    with _clone_locks_lock:
        lock = _clone_locks.setdefault(str(clone), threading.Lock())
    with lock:
        if not (clone / "HEAD").exists():
            clone.mkdir(parents=True, exist_ok=True)
            git.run(["init", "--quiet", "--bare", str(clone)])
        # Only the default branch's newest commit: status needs its files, not its history.
        ref = "refs/fleet/head"
        try:
            git.run(
                ["fetch", "--quiet", "--depth", "1", expand(spec.location), f"+HEAD:{ref}"],
                clone,
                timeout=600,
            )
        except git.GitError as error:
            raise RepoError(f"cannot fetch {spec.location}: {error}") from None
    return Repo(spec, clone, ref)
