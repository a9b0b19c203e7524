"""Drift: template-rendered files a service changed or deleted, against a cached pristine render."""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import shutil
import threading
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import copier

from . import git
from .repos import ANSWERS_FILE, Repo
from .template import COPIER_LOCK, Template, cache_key


@dataclass(frozen=True)
class DriftedFile:
    path: str
    added: int  # lines the service has that the pristine render has not
    removed: int  # lines of the pristine render the service lacks (all of them when deleted)
    deleted: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "added": self.added,
            "removed": self.removed,
            "deleted": self.deleted,
        }


@dataclass(frozen=True)
class Render:
    tree: Path
    blobs: dict[str, str]  # path -> git blob id, so unchanged files are never read


class RenderCache:
    """Pristine renders on disk, keyed by (template, version's commit, answers).

    A fleet on few versions with few option sets renders each combination once, ever: 50
    services on one version with one set of answers cost one render.
    """

    def __init__(self, cache_dir: Path, trust: bool = False) -> None:
        self.root = cache_dir / "renders"
        self.trust = trust
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}

    def get(self, template: Template, ref: str, answers: dict[str, Any]) -> Render:
        commit = template.commit(ref)
        answers_json = json.dumps(answers, sort_keys=True, default=str)
        key = cache_key(str(template.repo), commit, answers_json)
        final = self.root / key
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            manifest = final / "blobs.json"
            if not manifest.exists():
                self._render(template, commit, answers, final)
            blobs = json.loads(manifest.read_text())
        return Render(final / "tree", blobs)

    def _render(
        self, template: Template, commit: str, answers: dict[str, Any], final: Path
    ) -> None:
        staging = self.root / f".{final.name}.{uuid.uuid4().hex}"
        tree = staging / "tree"
        try:
            with COPIER_LOCK, warnings.catch_warnings():
                # A dirty local template only matters for HEAD renders; these are by commit.
                warnings.simplefilter("ignore")
                copier.run_copy(
                    template.copier_src,
                    tree,
                    data=answers,
                    vcs_ref=commit,
                    defaults=True,
                    overwrite=True,
                    quiet=True,
                    skip_tasks=True,
                    unsafe=self.trust,
                    # The user's own Copier defaults must not change what "pristine" means.
                    settings=copier.Settings(),
                )
            blobs = {path: _blob_id(tree / path) for path in _files(tree)}
            (staging / "blobs.json").write_text(json.dumps(blobs, sort_keys=True))
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _files(tree: Path) -> list[str]:
    found: list[str] = []
    for folder, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            found.append((Path(folder) / name).relative_to(tree).as_posix())
    return sorted(found)


def _read(path: Path) -> bytes:
    # A committed symlink's blob is its target: compare like with like.
    return os.readlink(path).encode() if path.is_symlink() else path.read_bytes()


def _blob_id(path: Path) -> str:
    return git.blob_id(_read(path))


def _line_counts(pristine: bytes, current: bytes) -> tuple[int, int]:
    old = pristine.decode(errors="replace").splitlines()
    new = current.decode(errors="replace").splitlines()
    added = removed = 0
    for line in difflib.unified_diff(old, new, lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return added, removed


def drifted_files(repo: Repo, render: Render, owned: list[str]) -> list[DriftedFile]:
    """Rendered files the service changed or deleted; `owned` globs (_skip_if_exists) excepted.

    Files only the service has are not drift: they are its own code, not a departure.
    """
    committed = git.tree_blobs(repo.git_dir, repo.rev)
    found: list[DriftedFile] = []
    for path, oid in sorted(render.blobs.items()):
        if path == ANSWERS_FILE or any(fnmatch.fnmatch(path, glob) for glob in owned):
            continue
        have = committed.get(path)
        if have == oid:
            continue
        pristine = _read(render.tree / path)
        current = git.cat_blob(repo.git_dir, have) if have else b""
        added, removed = _line_counts(pristine, current)
        found.append(DriftedFile(path, added, removed, deleted=have is None))
    return found
