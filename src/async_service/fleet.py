"""What every fleet command shares: caches, the policy, which template a repository must use."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

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
        with ctrl_c_sets(cancel):
            futures = [pool.submit(work, spec) for spec in specs]
            for future in futures:
                # Wake twice a second: Python runs a signal's handler only in the main
                # thread, and only when it runs bytecode.
                while not wait([future], timeout=0.5).done and not cancel.is_set():
                    pass
                if cancel.is_set():
                    raise KeyboardInterrupt
        results = [future.result() for future in futures]
    except BaseException:
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


@contextlib.contextmanager
def ctrl_c_sets(cancel: threading.Event) -> Iterator[None]:
    """Inside, SIGINT sets `cancel` instead of raising KeyboardInterrupt wherever the main
    thread happens to be (inside concurrent.futures, a raise can leave a lock held). Only
    where Ctrl-C would raise: not off the main thread, not where SIGINT is ignored."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    signal.signal(signal.SIGINT, lambda _signum, _frame: cancel.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
