"""`fleet update`: one repository updated on a branch in a clone of its own, never in place.

The owner's working tree, index and checked-out branch are never written. The update runs in
a throw-away clone; the finished commit reaches the repository by `git fetch CLONE
BRANCH:BRANCH` (which creates the branch ref only once all its objects are there, so a
Ctrl-C cannot leave a half-made branch) and, with --push, by pushing to its `origin`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import copier
import yaml
from copier.errors import UnsafeTemplateError
from packaging.version import Version

from . import git, versions
from .fleet import Fleet, recorded_version
from .repos import ANSWERS_FILE, RepoError, RepoSpec, at_default_branch, open_local, open_repo
from .template import COPIER_LOCK, UNSAFE_TEMPLATE, Template, TemplateError, cache_key, expand

Result = Literal["updated", "conflicts", "up-to-date", "failed"]
Tests = Literal["passed", "failed", "skipped"]
_MARKER = re.compile(rb"^<<<<<<< ", re.MULTILINE)


class Cancelled(Exception):
    """Ctrl-C: stop this repository where it is; its clone is removed, nothing is fetched."""


@dataclass(frozen=True)
class UpdateOptions:
    to: str | None = None
    branch: str | None = None  # may contain {version}
    test: bool = False
    test_command: str | None = None
    push: bool = False
    test_timeout: float = 1800


@dataclass
class UpdateResult:
    repo: str
    result: Result = "failed"
    branch: str | None = None
    conflicted_files: list[str] = field(default_factory=list)
    tests: Tests = "skipped"
    from_version: str | None = None
    to_version: str | None = None
    pushed: bool = False
    note: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "result": self.result,
            "branch": self.branch,
            "conflicted_files": self.conflicted_files,
            "tests": self.tests,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "pushed": self.pushed,
            "note": self.note,
            "error": self.error,
        }


@dataclass
class Updater:
    fleet: Fleet
    options: UpdateOptions
    cancel: threading.Event = field(default_factory=threading.Event)

    def __call__(self, spec: RepoSpec) -> UpdateResult:
        """Never raises for a bad repository: the problem becomes `failed` with a reason."""
        result = UpdateResult(repo=spec.location)
        try:
            self._update(spec, result)
        except Cancelled:
            result.result, result.error = "failed", "interrupted (Ctrl-C): nothing was changed"
        except (RepoError, TemplateError, git.GitError) as error:
            result.result, result.error = "failed", str(error)
        except UnsafeTemplateError:
            result.result, result.error = "failed", UNSAFE_TEMPLATE
        except Exception as error:  # noqa: BLE001 (Copier's own errors: one line, not a traceback)
            result.result = "failed"
            result.error = f"{type(error).__name__}: {error}".strip().splitlines()[0]
        return result

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled

    def _update(self, spec: RepoSpec, result: UpdateResult) -> None:
        if spec.skip:
            result.result, result.note = "up-to-date", "skipped (registry)"
            return
        source_repo: Path | None = None
        if spec.is_url:
            if not self.options.push:
                raise RepoError("a URL repository needs --push: the branch has nowhere else to go")
            origin = expand(spec.location)
        else:
            source_repo = open_local(spec)
            if git.status_porcelain(source_repo):
                raise RepoError(
                    "working tree has uncommitted changes: commit or stash them (nothing was done)"
                )
            origin = str(source_repo)

        # Read what to do before cloning anything: current services cost one `git show`.
        # Local: the default branch, whatever the owner has checked out (answers and base both).
        repo = (
            at_default_branch(spec, source_repo)
            if source_repo
            else open_repo(spec, self.fleet.cache_dir)
        )
        answers = repo.answers()
        template = self.fleet.template_for(answers)
        recorded = recorded_version(answers)
        target, tag = self._target(template)
        result.from_version, result.to_version = answers.commit, str(target)
        if recorded >= target:
            result.result = "up-to-date"
            return
        branch = (self.options.branch or self._policy_branch() or "template/{version}").format(
            version=target
        )
        result.branch = branch
        if self._already_prepared(source_repo, spec, branch, tag, result):
            return

        with tempfile.TemporaryDirectory(prefix="async-service-update-") as work:
            clone = Path(work) / "clone"
            self._check_cancel()
            try:
                git.run(["clone", "--quiet", "--no-hardlinks", origin, str(clone)], timeout=600)
            except git.GitError as error:
                raise RepoError(f"cannot clone {origin}: {error}") from None
            self._check_cancel()
            if source_repo is not None:
                # The branch starts from the default branch the answers were read at, which
                # may be a remote-tracking ref of the source: clones get only its branches.
                git.run(["fetch", "--quiet", "origin", f"+{repo.rev}:refs/fleet/base"], clone)
                git.run(["checkout", "--quiet", "-b", branch, "refs/fleet/base"], clone)
            else:
                git.run(["checkout", "--quiet", "-b", branch], clone)
            # Copier resolves a relative _src_path from the working directory: the service's.
            # Other workers are not disturbed: the CLI made every path absolute beforehand.
            here = contextlib.chdir(source_repo) if source_repo else contextlib.nullcontext()
            with COPIER_LOCK, here, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                copier.run_update(
                    clone,
                    vcs_ref=tag,
                    defaults=True,  # the recorded answers, asked of no one
                    overwrite=True,
                    quiet=True,
                    conflict="inline",
                    unsafe=self.fleet.trust,
                )
            self._check_cancel()
            git.run(["add", "--all"], clone)
            touched = git.text(["diff", "--cached", "--name-only", "-z"], clone).split("\0")
            result.conflicted_files = conflicted(clone, [p for p in touched if p])
            if result.conflicted_files:
                result.tests = "skipped"
            elif self.options.test:
                result.tests = self._run_tests(clone)
            self._check_cancel()
            sections = versions.changelog_sections(template.changelog(tag), recorded, target)
            message = commit_message(template.source, answers.commit, str(target), sections, result)
            git.run(
                ["commit", "--quiet", "--no-verify", "--cleanup=verbatim", "-m", message], clone
            )
            self._check_cancel()
            # Only a complete commit is brought back: the fetch creates the ref atomically.
            if source_repo is not None:
                git.run(["fetch", "--quiet", str(clone), f"{branch}:{branch}"], source_repo)
            result.result = "conflicts" if result.conflicted_files else "updated"
            if self.options.push and source_repo is None and result.conflicted_files:
                # A URL's branch has no local repository to live in: keep the clone itself.
                kept = self._kept_clone(spec, branch)
                shutil.rmtree(kept, ignore_errors=True)  # not a git clone: nothing of anyone's
                kept.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(clone, kept)
                result.note = kept_note(kept, branch)
            elif self.options.push:
                self._push(source_repo, clone, branch, result)

    def _policy_branch(self) -> str | None:
        return self.fleet.policy.branch if self.fleet.policy else None

    def _target(self, template: Template) -> tuple[Version, str]:
        if self.options.to:
            tag = template.tag_for(self.options.to)
            known = versions.format_versions(list(template.versions(prereleases=True)))
            if tag is None:
                raise RepoError(
                    f"unknown template version {self.options.to} (the template has: {known})"
                )
            parsed = versions.parse(tag)
            if parsed is None:
                raise RepoError(f"--to {self.options.to} is not a PEP 440 version tag")
            policy = self.fleet.policy
            if (
                policy
                and policy.versions
                and not policy.versions.contains(parsed, prereleases=True)
            ):
                raise RepoError(
                    f"version {parsed} is outside {policy.name} [template] versions {policy.versions}"
                )
            return parsed, tag
        newest = self.fleet.newest(template)
        if newest is None:
            raise RepoError(f"template {template.source} has no released version in range")
        return newest

    def _already_prepared(
        self, source_repo: Path | None, spec: RepoSpec, branch: str, tag: str, result: UpdateResult
    ) -> bool:
        """A second run: the branch is there already. Report it, never overwrite it."""
        if source_repo is None:
            if git.remote_has_branch(expand(spec.location), branch):
                result.result, result.note = "up-to-date", f"branch {branch} already pushed"
                return True
            kept = self._kept_clone(spec, branch)
            if not (kept / ".git").is_dir():
                return False
            # An earlier run's conflicts, kept: report them again, or push once resolved.
            if not self._already_prepared(kept, spec, branch, tag, result):
                # Renamed or deleted by its owner: their work may be in it, so it is not redone.
                raise RepoError(
                    f"the clone kept at {kept} no longer has branch {branch}: commit the "
                    "resolution on that branch there, or delete the clone to update again"
                )
            if result.conflicted_files:
                result.note = kept_note(kept, branch)
            return True
        if not git.branch_exists(source_repo, branch):
            return False
        data = git.show(source_repo, branch, ANSWERS_FILE) or b""
        recorded = (yaml.safe_load(data) or {}).get("_commit") if data else None
        if str(recorded) != tag:
            raise RepoError(
                f"branch {branch} exists and is not this update (its template version is "
                f"{recorded}); delete it or pass --branch"
            )
        files = git.run(["grep", "-l", "-E", "^<<<<<<< ", branch, "--"], source_repo, check=False)
        marked = [line.split(":", 1)[1] for line in files.stdout.decode().splitlines()]
        rejects = [p for p in git.tree_blobs(source_repo, branch) if p.endswith(".rej")]
        result.conflicted_files = sorted({*marked, *rejects})
        result.result = "conflicts" if result.conflicted_files else "up-to-date"
        result.note = f"branch {branch} already prepared"
        # What a later run's tests of this very commit found, else what the run that made the
        # branch found, as its commit message recorded it.
        sha = git.text(["rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}"], source_repo)
        record = self.fleet.cache_dir / "tests" / cache_key(str(source_repo), sha)
        result.tests = read_tests(record) or recorded_tests(
            git.text(["log", "-1", "--format=%B", sha], source_repo)
        )
        if result.tests != "passed" and self.options.test and not result.conflicted_files:
            # Made without --test, changed since, or red: asked for tests now, it gets them, and
            # the outcome is kept so that a later --push without --test cannot skip it.
            result.tests = self._test_branch(source_repo, sha)
            write_tests(record, result.tests)
        if result.tests == "failed":
            # A red branch is never pushed; the exit code says so again, as the first run did.
            result.note += ", its tests failed"
            if self.options.push:
                result.note += ": not pushed (fix the branch, or delete it to update again)"
            return True
        if self.options.push and not result.conflicted_files:
            self._push(source_repo, source_repo, branch, result)
        return True

    def _test_branch(self, repo: Path, sha: str) -> Tests:
        """Run the tests on commit `sha` of `repo`, in a clone of its own."""
        with tempfile.TemporaryDirectory(prefix="async-service-test-") as work:
            clone = Path(work) / "clone"
            self._check_cancel()
            git.run(["clone", "--quiet", "--no-hardlinks", "--no-checkout", str(repo), str(clone)])
            git.run(["checkout", "--quiet", "--detach", sha], clone)
            return self._run_tests(clone)

    def _kept_clone(self, spec: RepoSpec, branch: str) -> Path:
        """Where a URL repository's conflicted update is kept for its owner to resolve."""
        url = expand(spec.location)
        name = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or "repo"
        return self.fleet.cache_dir / "conflicts" / f"{name}-{cache_key(url, branch)}"

    def _push(
        self, source_repo: Path | None, clone: Path, branch: str, result: UpdateResult
    ) -> None:
        if result.conflicted_files:
            # Conflict markers stay local: pushed, they would start CI and review on a broken branch.
            result.note = "not pushed: resolve the conflicts on the local branch first"
            return
        # A local repository pushes its own (just fetched) branch: its origin URL may be relative.
        where = clone if source_repo is None else source_repo
        if git.remote_url(where) is None:
            raise RepoError("--push: the repository has no origin remote")
        if git.remote_has_branch("origin", branch, cwd=where):
            result.pushed = True
            return
        self._check_cancel()
        try:
            git.run(
                ["push", "--quiet", "origin", f"refs/heads/{branch}:refs/heads/{branch}"], where
            )
        except git.GitError as error:
            raise RepoError(
                f"branch {branch} is ready locally but the push failed: {error}"
            ) from None
        result.pushed = True

    def _run_tests(self, clone: Path) -> Tests:
        command = self.options.test_command
        if command is None and self.fleet.policy is not None:
            command = self.fleet.policy.test_command
        # The service's environment, not this tool's: drop the CLI's own virtualenv.
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        try:
            # A process group of its own: Ctrl-C stops the suite and every server it started.
            process = subprocess.Popen(
                shlex.split(command or "uv run pytest"),
                cwd=clone,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            return "failed"
        deadline = time.monotonic() + self.options.test_timeout
        try:
            # Poll, so that Ctrl-C stops a suite at once rather than after its last test.
            while process.poll() is None:
                if self.cancel.wait(0.2):
                    raise Cancelled
                if time.monotonic() > deadline:
                    return "failed"
        finally:
            stop_group(process)
        return "passed" if process.returncode == 0 else "failed"


def kept_note(kept: Path, branch: str) -> str:
    return (
        f"not pushed: resolve the conflicts in the clone kept at {kept} (branch {branch}), "
        "commit, then run this again to push"
    )


def stop_group(process: subprocess.Popen[bytes], grace: float = 5) -> None:
    """SIGTERM the process's group, SIGKILL it after `grace` seconds; reap the process."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(process.pid, signal_number)
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def conflicted(clone: Path, paths: list[str]) -> list[str]:
    """Files the update left with Copier's inline conflict markers, and `.rej` files."""
    found: list[str] = []
    for path in paths:
        file = clone / path
        is_text = file.is_file() and not file.is_symlink()
        if path.endswith(".rej") or (is_text and _MARKER.search(file.read_bytes())):
            found.append(path)
    return sorted(found)


def read_tests(record: Path) -> Tests | None:
    """The outcome `write_tests` kept for one commit, or None when its tests never ran."""
    try:
        value = record.read_text().strip()
    except OSError:
        return None
    return _outcome(value)


def _outcome(value: str) -> Tests | None:
    """`passed` or `failed` as written by this CLI; None for anything else."""
    return "passed" if value == "passed" else "failed" if value == "failed" else None


def write_tests(record: Path, tests: Tests) -> None:
    """Keep the outcome of tests run on an existing commit (its message cannot change)."""
    record.parent.mkdir(parents=True, exist_ok=True)
    partial = record.with_name(f"{record.name}.partial-{os.getpid()}-{threading.get_ident()}")
    partial.write_text(f"{tests}\n")
    partial.replace(record)


def recorded_tests(message: str) -> Tests:
    """The `Tests:` line of a commit message written by `commit_message`; skipped if none."""
    for line in reversed(message.splitlines()):
        if line.startswith("Tests: "):
            return _outcome(line.removeprefix("Tests: ").strip()) or "skipped"
    return "skipped"


def commit_message(
    source: str, old: str, new: str, sections: list[str], result: UpdateResult
) -> str:
    """Names both versions and carries the template's CHANGELOG sections in between."""
    lines = [f"Update template from {old} to {new}", "", f"Template: {source}"]
    for section in sections:
        lines += ["", section]
    if result.conflicted_files:
        lines += ["", "CONFLICTS to resolve before merging (Copier's inline markers):"]
        lines += [f"- {path}" for path in result.conflicted_files]
    lines += ["", f"Tests: {result.tests}", "", "Prepared by async-service fleet update."]
    return "\n".join(lines)
