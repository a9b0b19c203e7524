"""What every fleet command shares: caches, the policy, which template a repository must use."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self, TypeVar

from packaging.version import Version

from . import versions
from .drift import RenderCache
from .policy import Policy
from .repos import Answers, RepoError, RepoSpec
from .template import Template, Templates, same_source

T = TypeVar("T")


@dataclass
class Fleet:
    cache_dir: Path
    policy: Policy | None = None
    template_source: str | None = None  # --template, else the policy's [template] source
    prereleases: bool = False
    trust: bool = False
    templates: Templates = field(init=False)
    renders: RenderCache = field(init=False)

    def __post_init__(self) -> None:
        self.templates = Templates(self.cache_dir)
        self.renders = RenderCache(self.cache_dir, trust=self.trust)

    @property
    def expected_source(self) -> str | None:
        if self.template_source:
            return self.template_source
        return self.policy.source if self.policy else None

    def template_for(self, answers: Answers) -> Template:
        """The template a service must be checked against; another template's service is bad input."""
        expected = self.expected_source
        if expected is not None and not same_source(answers.src_path, expected):
            raise RepoError(
                f"answers file is from another template: {answers.src_path} (expected {expected})"
            )
        return self.templates.get(expected or answers.src_path)

    def newest(self, template: Template) -> tuple[Version, str] | None:
        """The newest released version in the policy's range, with its tag."""
        tagged = template.versions(self.prereleases)
        spec = self.policy.versions if self.policy else None
        newest = versions.latest(tagged, spec, self.prereleases)
        return None if newest is None else (newest, tagged[newest])


def no_release(policy: Policy, template: Template) -> str:
    """Why a policy's [template] versions range finds no release of `template`."""
    known = versions.format_versions(list(template.versions(prereleases=True))) or "no versions"
    return f"{policy.name}: no release matches {policy.versions} (the template has: {known})"


def recorded_version(answers: Answers) -> Version:
    version = versions.parse_recorded(answers.commit)
    if version is None:
        raise RepoError(f"recorded template version {answers.commit!r} is not a PEP 440 version")
    return version


def run_all(
    work: Callable[[RepoSpec], T], specs: Sequence[RepoSpec], jobs: int, cancel: threading.Event
) -> list[T]:
    """Run `work` for every repository on at most `jobs` threads; results in input order.

    Copier's API is synchronous and git runs as subprocesses, so threads overlap the waiting.
    Ctrl-C sets `cancel` (workers check it between steps and clean up after themselves),
    drops the repositories not started yet, waits for the running ones, then raises
    KeyboardInterrupt; a second Ctrl-C stops waiting.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="fleet")
    try:
        with CtrlC(cancel) as ctrl_c:
            futures = [pool.submit(work, spec) for spec in specs]
            pending = set(futures)
            while pending and not ctrl_c.pressed():
                pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED).not_done
            if cancel.is_set():
                raise KeyboardInterrupt
        results = [future.result() for future in futures]
    except BaseException:
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


class CtrlC:
    """Ctrl-C as a flag (`cancel`) that the main thread polls, never as an exception.

    KeyboardInterrupt raised wherever the main thread happens to be can leave a lock of
    concurrent.futures held. And when the kernel hands SIGINT to a worker thread, CPython
    may not run the handler in the main thread until much later; the byte the signal
    writes to the wakeup fd is seen at once. Off the main thread, or where SIGINT is
    ignored or handled by someone else, nothing changes.
    """

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel
        self._pipe: tuple[int, int] | None = None
        self._previous_fd = -1

    def __enter__(self) -> Self:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._pipe = os.pipe()
            for fd in self._pipe:
                os.set_blocking(fd, False)
            self._previous_fd = signal.set_wakeup_fd(self._pipe[1], warn_on_full_buffer=False)
            signal.signal(signal.SIGINT, lambda _signum, _frame: self.cancel.set())
        return self

    def pressed(self) -> bool:
        if self._pipe is not None:
            with contextlib.suppress(BlockingIOError):
                if signal.SIGINT in os.read(self._pipe[0], 64):
                    self.cancel.set()
        return self.cancel.is_set()

    def __exit__(self, *_: object) -> None:
        if self._pipe is not None:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.set_wakeup_fd(self._previous_fd)
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None
