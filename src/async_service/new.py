"""`new`: render a service with the policy applied; refuse before writing anything."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import copier

from . import versions
from .policy import Policy
from .template import COPIER_LOCK, Template


class BadInput(Exception):
    """Usage error: an unknown question or version, a destination in the way (exit code 2)."""


class Refused(Exception):
    """The answers break the policy; each line names the rule (exit code 1)."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("\n".join(reasons))
        self.reasons = list(reasons)


@dataclass(frozen=True)
class Plan:
    tag: str
    version: str
    data: dict[str, Any]  # --data with the policy's fixed answers on top
    user_defaults: dict[str, Any]  # the policy's defaults: Copier's own notion of them


def plan(
    template: Template,
    policy: Policy,
    dest: Path,
    raw_data: Sequence[str],
    version: str | None,
    prereleases: bool,
) -> Plan:
    """Everything checked, nothing written: the policy, the answers, the version, DEST."""
    if version is not None:
        tag = template.tag_for(version)
        if tag is None:
            known = versions.format_versions(list(template.versions(prereleases=True)))
            raise BadInput(f"unknown template version {version} (the template has: {known})")
        chosen = versions.parse(tag)
    else:
        tagged = template.versions(prereleases)
        chosen = versions.latest(tagged, policy.versions, prereleases)
        if chosen is None:
            raise BadInput(f"{template.source}: no released version matches {policy.name}")
        tag = tagged[chosen]
    spec = policy.versions
    if spec is not None and chosen is not None and not spec.contains(chosen, prereleases=True):
        raise Refused(
            [f"version {chosen} is outside {policy.name} [template] versions {policy.versions}"]
        )
    questions = template.questions(tag)
    policy.validate_questions(questions)

    data: dict[str, Any] = {}
    for item in raw_data:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise BadInput(f"--data {item!r}: expected QUESTION=VALUE")
        if name not in questions:
            raise BadInput(
                f"--data {name}: unknown question; the template asks: {', '.join(questions)}"
            )
        value = questions[name].coerce(text)
        if problem := questions[name].check(value):
            raise BadInput(f"--data {name}: {problem}")
        data[name] = value
    if reasons := policy.refuse(data):
        raise Refused(reasons)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BadInput(f"{dest} exists and is not an empty directory")
    return Plan(tag, str(chosen), {**data, **policy.fixed}, dict(policy.defaults))


def render(source: str, dest: Path, planned: Plan, trust: bool, skip_tasks: bool) -> None:
    with COPIER_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(
            source,
            dest,
            data=planned.data,
            user_defaults=planned.user_defaults,
            vcs_ref=planned.tag,
            defaults=True,
            quiet=True,
            unsafe=trust,
            skip_tasks=skip_tasks,
        )
