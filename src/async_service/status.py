"""`fleet status`: one repository's versions, CHANGELOG gap, policy violations and drift."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from copier.errors import UnsafeTemplateError

from . import git, versions
from .drift import DriftedFile, drifted_files
from .fleet import Fleet, no_release, recorded_version
from .policy import PolicyError
from .repos import RepoError, RepoSpec, open_repo
from .template import UNSAFE_TEMPLATE, TemplateError


@dataclass
class RepoStatus:
    repo: str
    note: str | None = None
    skipped: bool = False
    template: str | None = None
    template_version: str | None = None
    latest_version: str | None = None
    behind: int | None = None
    changelog: list[str] = field(default_factory=list)
    policy_violations: list[str] = field(default_factory=list)
    drifted_files: list[DriftedFile] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "note": self.note,
            "skipped": self.skipped,
            "template": self.template,
            "template_version": self.template_version,
            "latest_version": self.latest_version,
            "behind": self.behind,
            "changelog": self.changelog,
            "policy_violations": self.policy_violations,
            "drifted_files": [f.as_json() for f in self.drifted_files],
            "error": self.error,
        }


def inspect(spec: RepoSpec, fleet: Fleet) -> RepoStatus:
    """Never raises for a bad repository: the problem becomes `error`, in one line."""
    status = RepoStatus(repo=spec.location, note=spec.note, skipped=spec.skip)
    if spec.skip:
        return status
    try:
        _inspect(spec, fleet, status)
    except (RepoError, TemplateError, PolicyError, git.GitError) as error:
        status.error = str(error)
    except UnsafeTemplateError:
        status.error = UNSAFE_TEMPLATE
    except Exception as error:  # noqa: BLE001 (Copier's own errors: one line, not a traceback)
        status.error = f"{type(error).__name__}: {error}".splitlines()[0]
    return status


def _inspect(spec: RepoSpec, fleet: Fleet, status: RepoStatus) -> None:
    repo = open_repo(spec, fleet.cache_dir)
    answers = repo.answers()
    status.template = answers.src_path
    status.template_version = answers.commit
    template = fleet.template_for(answers)
    recorded = recorded_version(answers)
    newest = fleet.newest(template)
    if newest is None and fleet.policy is not None and fleet.policy.versions is not None:
        raise RepoError(no_release(fleet.policy, template))
    if newest is not None:
        latest, tag = newest
        status.latest_version = str(latest)
        released = template.versions(fleet.prereleases)
        status.behind = versions.behind(recorded, released, latest)
        if status.behind:
            status.changelog = versions.changelog_headings(
                template.changelog(tag), recorded, latest
            )
    if fleet.policy is not None:
        if fleet.expected_source is None:
            # No [template] source to check the policy against up front: each repository's
            # own template tells a typo (answers.fixed.cii) from a question.
            fleet.policy.validate_questions(
                template.questions(newest[1] if newest is not None else answers.commit)
            )
        status.policy_violations = fleet.policy.violations(answers.values, recorded)
    render = fleet.renders.get(template, answers.commit, answers.values)
    owned = template.config(answers.commit).get("_skip_if_exists") or []
    status.drifted_files = drifted_files(repo, render, [str(glob) for glob in owned])
