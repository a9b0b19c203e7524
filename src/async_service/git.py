"""Git through subprocess with explicit argument lists (never a shell, never Copier's output)."""

from __future__ import annotations

import functools
import hashlib
import os
import string
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

# Fixed, English, non-interactive git: a prompt for credentials would hang a worker thread.
_ENV_OVERRIDES = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "",
    "LC_ALL": "C",
}
# Commits the CLI makes need an identity even where none is configured (CI runners).
_DEFAULT_IDENTITY = {
    "GIT_AUTHOR_NAME": "async-service",
    "GIT_AUTHOR_EMAIL": "async-service@localhost",
    "GIT_COMMITTER_NAME": "async-service",
    "GIT_COMMITTER_EMAIL": "async-service@localhost",
}


class GitError(Exception):
    """A git command failed; the message is git's first fatal:/error: line (else its last)."""


@functools.cache
def _has_identity() -> bool:
    configured = subprocess.run(
        ["git", "config", "--get", "user.email"], capture_output=True, check=False
    )
    return configured.returncode == 0 or "GIT_COMMITTER_EMAIL" in os.environ


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # The user's own identity wins; the fallback only keeps commits possible without one.
    env = {**({} if _has_identity() else _DEFAULT_IDENTITY), **os.environ, **_ENV_OVERRIDES}
    env.update(extra or {})
    return env


def run(
    args: Sequence[str],
    cwd: Path | None = None,
    *,
    check: bool = True,
    timeout: float = 300,
) -> subprocess.CompletedProcess[bytes]:
    """Run `git ARGS` in `cwd`; raise GitError with git's message when `check` and it fails."""
    command = ["git", *args]
    result = subprocess.run(
        command,
        cwd=cwd,
        env=git_env(),
        capture_output=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        # git's own verdict; a hint after it ("and the repository exists.") says nothing alone.
        verdicts = [line for line in lines if line.startswith(("fatal:", "error:"))]
        message = (
            verdicts[0] if verdicts else lines[-1] if lines else f"exit code {result.returncode}"
        )
        raise GitError(f"git {args[0]}: {message}")
    return result


def text(args: Sequence[str], cwd: Path | None = None) -> str:
    return run(args, cwd).stdout.decode(errors="replace").strip()


def is_work_tree(path: Path) -> bool:
    result = run(["rev-parse", "--is-inside-work-tree"], path, check=False)
    return result.returncode == 0 and result.stdout.strip() == b"true"


def toplevel(path: Path) -> Path:
    return Path(text(["rev-parse", "--show-toplevel"], path))


def show(repo: Path, rev: str, path: str) -> bytes | None:
    """The contents of `path` at `rev`, or None when it does not exist there."""
    result = run(["show", f"{rev}:{path}"], repo, check=False)
    return result.stdout if result.returncode == 0 else None


def tree_blobs(repo: Path, rev: str = "HEAD") -> dict[str, str]:
    """Path -> blob id of every file committed at `rev` (one git call for the whole tree)."""
    out = run(["ls-tree", "-r", "-z", "--full-tree", rev], repo).stdout
    blobs: dict[str, str] = {}
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, _, name = entry.partition(b"\t")
        _mode, kind, oid = meta.split(b" ")
        if kind == b"blob":
            blobs[name.decode(errors="surrogateescape")] = oid.decode()
    return blobs


def blob_id(data: bytes) -> str:
    """Git's SHA-1 object id of a blob, so rendered files compare with commits without reading them."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def cat_blob(repo: Path, oid: str) -> bytes:
    return run(["cat-file", "blob", oid], repo).stdout


def status_porcelain(repo: Path) -> str:
    return run(["status", "--porcelain"], repo).stdout.decode(errors="replace").strip()


def branch_exists(repo: Path, branch: str) -> bool:
    ref = f"refs/heads/{branch}"
    return run(["rev-parse", "--verify", "--quiet", ref], repo, check=False).returncode == 0


def rev_parse(repo: Path, rev: str) -> str | None:
    result = run(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], repo, check=False)
    return result.stdout.decode().strip() if result.returncode == 0 else None


def local_branches(repo: Path) -> list[str]:
    """The full refs of `repo`'s local branches (refs/heads/...)."""
    return text(["for-each-ref", "--format=%(refname)", "refs/heads"], repo).splitlines()


def default_ref(repo: Path) -> str | None:
    """The full ref of `repo`'s default branch, whatever branch its owner has checked out.

    origin's HEAD (refs/remotes/origin/HEAD, as `git clone` or `git remote set-head` set it),
    else the local `main`, `master` or `init.defaultBranch` branch, else origin's `main` or
    `master`, else the only local branch, else HEAD when there is no local branch at all (a
    CI checkout: detached, no branches); None when there are several branches and none of these.
    """
    found = run(["symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"], repo, check=False)
    candidates = [found.stdout.decode().strip()] if found.returncode == 0 else []
    candidates += ["refs/heads/main", "refs/heads/master"]
    configured = run(["config", "--get", "init.defaultBranch"], repo, check=False)
    if configured.returncode == 0 and configured.stdout.strip():
        candidates.append(f"refs/heads/{configured.stdout.decode().strip()}")
    candidates += ["refs/remotes/origin/main", "refs/remotes/origin/master"]
    for ref in candidates:
        if rev_parse(repo, ref) is not None:
            return ref
    # A repository of one branch (say `trunk`, never pushed): that branch is the default.
    branches = local_branches(repo)
    if not branches:
        return "HEAD"
    return branches[0] if len(branches) == 1 else None


def branch_template_problem(template: str) -> str | None:
    """Why a branch name template (`template/{version}`) cannot name a branch, or None."""
    try:
        fields = [
            field for _, field, _, _ in string.Formatter().parse(template) if field is not None
        ]
    except ValueError as error:
        return f"{template!r}: {error} (write {{version}} for the version)"
    others = [f"{{{field}}}" for field in fields if field != "version"]
    if others:
        return f"{template!r}: {{version}} is the only placeholder, not {', '.join(others)}"
    name = template.format(version="1.0.0")
    if run(["check-ref-format", "--branch", name], check=False).returncode != 0:
        return f"{template!r}: {name!r} is not a valid git branch name"
    return None


def remote_url(repo: Path, remote: str = "origin") -> str | None:
    result = run(["remote", "get-url", remote], repo, check=False)
    return result.stdout.decode().strip() if result.returncode == 0 else None


def remote_has_branch(remote: str, branch: str, cwd: Path | None = None) -> bool:
    """Whether `remote` (a URL, or a remote's name in the repository `cwd`) has `branch`."""
    args = ["ls-remote", "--heads", remote, f"refs/heads/{branch}"]
    result = run(args, cwd, check=False, timeout=120)
    return result.returncode == 0 and bool(result.stdout.strip())
