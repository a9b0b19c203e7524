"""The `async-service` console script: `new`, `fleet status`, `fleet update`.

Exit codes, for every command: 0 ok; 1 what the command reports as a problem (a refused
answer, a --fail-on condition, a repository that failed, conflicts or failed tests); 2 bad
usage or input (a policy or registry with a typo, an unreadable template, no repositories);
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import sys
import threading
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
import yaml
from copier.errors import UnsafeTemplateError

from . import output
from .fleet import Fleet, no_release, run_all
from .git import branch_template_problem
from .new import BadInput, Refused, plan, render
from .policy import Policy, PolicyError, load
from .repos import ANSWERS_FILE, RegistryError, RepoSpec, load_registry
from .status import RepoStatus, inspect
from .template import UNSAFE_TEMPLATE, TemplateError, default_cache_dir, is_url
from .update import UpdateOptions, Updater

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(
    name="async-service",
    help="Start services from the copier-async-service template under a platform policy, "
    "and keep a fleet of them current. Exit codes: 0 ok, 1 a problem the command reports, "
    "2 bad usage or input, 130 interrupted.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
fleet_app = typer.Typer(
    help="Inspect and update many services generated from the template.", no_args_is_help=True
)
app.add_typer(fleet_app, name="fleet")


class FailOn(str, Enum):
    behind = "behind"
    policy = "policy"
    drift = "drift"


PolicyOpt = Annotated[
    Path | None,
    typer.Option(
        "--policy", help="Platform policy file (TOML; .yml/.yaml read as YAML).", dir_okay=False
    ),
]
TemplateOpt = Annotated[
    str | None,
    typer.Option(
        "--template",
        help="Template source (path or git URL); overrides the policy's \\[template] source.",
    ),
]
RegistryOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry", help="TOML file of \\[\\[repos]] tables: repo, note, skip.", dir_okay=False
    ),
]
ReposArg = Annotated[
    list[str] | None, typer.Argument(help="Local paths or git URLs of service repositories.")
]
JobsOpt = Annotated[int, typer.Option("--jobs", "-j", min=1, help="Repositories at a time.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per repository.")]
PrereleasesOpt = Annotated[
    bool, typer.Option("--prereleases", help="Count pre-release tags (2.1.0rc1) as versions.")
]
TrustOpt = Annotated[
    bool,
    typer.Option("--trust", help="Allow the template's tasks, migrations and Jinja extensions."),
]
CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        envvar="ASYNC_SERVICE_CACHE_DIR",
        help="Clones and pristine renders \\[default: $XDG_CACHE_HOME/async-service].",
        file_okay=False,
    ),
]


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def _absolute(location: str) -> str:
    """A local path made absolute now, on the main thread, before any worker starts.

    Copier changes the process's working directory while it renders (under COPIER_LOCK), so
    a relative path resolved later in another worker thread could land anywhere.
    """
    return location if is_url(location) else str(Path(location).expanduser().resolve())


def _cache_dir(cache_dir: Path | None) -> Path:
    return (cache_dir or default_cache_dir()).expanduser().resolve()


def _policy(path: Path | None) -> Policy | None:
    if path is None:
        return None
    try:
        return load(path)
    except PolicyError as error:
        _fail(str(error))


def _fleet(
    policy_path: Path | None,
    template: str | None,
    cache_dir: Path | None,
    prereleases: bool,
    trust: bool,
) -> Fleet:
    policy = _policy(policy_path)
    template = None if template is None else _absolute(template)
    fleet = Fleet(_cache_dir(cache_dir), policy, template, prereleases, trust)
    source = fleet.expected_source
    if policy is not None and source is not None:
        # A typo in the policy is found before any repository is looked at.
        try:
            opened = fleet.templates.get(source)
            newest = fleet.newest(opened)
            if newest is None and policy.versions is not None:
                # Else every repository would show a blank latest version, and exit 0.
                _fail(no_release(policy, opened))
            if newest is not None:
                policy.validate_questions(opened.questions(newest[1]))
        except (PolicyError, TemplateError) as error:
            _fail(str(error))
    return fleet


def _specs(repos: list[str] | None, registry: Path | None) -> list[RepoSpec]:
    specs = [RepoSpec(_absolute(location)) for location in repos or []]
    if registry is not None:
        try:
            specs += load_registry(registry)
        except RegistryError as error:
            _fail(str(error))
    if not specs:
        _fail("no repositories: name them as arguments or pass --registry FILE")
    return specs


@app.command()
def new(
    dest: Annotated[Path, typer.Argument(help="Directory to create (must not exist or be empty).")],
    policy_path: Annotated[
        Path, typer.Option("--policy", help="Platform policy file.", dir_okay=False)
    ],
    data: Annotated[
        list[str] | None,
        typer.Option("--data", "-d", help="An answer, QUESTION=VALUE; repeatable."),
    ] = None,
    template: TemplateOpt = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="Template version \\[default: newest in the policy range]."),
    ] = None,
    prereleases: PrereleasesOpt = False,
    trust: TrustOpt = False,
    skip_tasks: Annotated[
        bool, typer.Option("--skip-tasks", help="Do not run the template's post-copy tasks.")
    ] = False,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Render a new service with the policy's fixed answers and defaults applied.

    An answer that contradicts a fixed answer or that the policy forbids is refused, naming the rule, and nothing is written (exit 1). Bad input (an unknown question or version, a policy typo, DEST not empty) exits 2. Example:

    [bold]async-service new orders --policy platform.toml --data project_name=Orders --trust[/]
    """
    policy = _policy(policy_path)
    assert policy is not None
    source = _absolute(template) if template else policy.source
    if source is None:
        _fail(f"{policy.name}: no [template] source; pass --template")
    fleet = Fleet(_cache_dir(cache_dir), policy, source, prereleases, trust)
    try:
        opened = fleet.templates.get(source)
        planned = plan(opened, policy, dest, data or [], version, prereleases)
    except (PolicyError, TemplateError, BadInput) as error:
        _fail(str(error))
    except Refused as refused:
        for reason in refused.reasons:
            sys.stderr.write(f"refused: {reason}\n")
        sys.stderr.write(f"nothing was written to {dest}\n")
        raise typer.Exit(EXIT_PROBLEM) from None
    try:
        render(source, dest, planned, trust, skip_tasks)
    except UnsafeTemplateError:
        _fail(UNSAFE_TEMPLATE, EXIT_PROBLEM)
    except Exception as error:  # noqa: BLE001 (Copier's errors: one line; it removed DEST)
        _fail(
            f"copier: {str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}",
            EXIT_PROBLEM,
        )
    if as_json:
        # Every answer the service records (defaults included), as `fleet status` reads them.
        recorded = yaml.safe_load((dest / ANSWERS_FILE).read_text()) or {}
        answers = {key: value for key, value in recorded.items() if not key.startswith("_")}
        record = {"dest": str(dest), "template": source, "version": planned.version}
        sys.stdout.write(json.dumps({**record, "answers": answers}, indent=2) + "\n")
    else:
        output.console().print(f"created {dest} from {source} {planned.version}")


@fleet_app.command("status")
def status(
    repos: ReposArg = None,
    registry: RegistryOpt = None,
    policy_path: PolicyOpt = None,
    template: TemplateOpt = None,
    prereleases: PrereleasesOpt = False,
    fail_on: Annotated[
        list[FailOn] | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 when a repository is behind, breaks the policy or has drift; repeatable.",
        ),
    ] = None,
    jobs: JobsOpt = 4,
    cache_dir: CacheOpt = None,
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Versions, CHANGELOG gap, policy violations and drift of every repository.

    Exit 1 when a repository cannot be inspected (one error line each) or a --fail-on condition holds; 2 for a bad policy or registry. Example:

    [bold]async-service fleet status --registry fleet.toml --policy platform.toml --fail-on behind[/]
    """
    fleet = _fleet(policy_path, template, cache_dir, prereleases, trust)
    specs = _specs(repos, registry)
    try:
        rows = run_all(lambda spec: inspect(spec, fleet), specs, jobs, threading.Event())
    except KeyboardInterrupt:
        _fail("interrupted: nothing was changed", EXIT_INTERRUPTED)
    if as_json:
        output.print_json([row.as_json() for row in rows])
    else:
        output.status_table(rows)
    output.error_lines([f"{row.repo}: {row.error}" for row in rows if row.error])
    raise typer.Exit(_status_exit(rows, set(fail_on or [])))


def _status_exit(rows: list[RepoStatus], fail_on: set[FailOn]) -> int:
    live = [row for row in rows if not row.skipped]
    failing = any(row.error for row in live)
    failing |= FailOn.behind in fail_on and any(row.behind for row in live)
    failing |= FailOn.policy in fail_on and any(row.policy_violations for row in live)
    failing |= FailOn.drift in fail_on and any(row.drifted_files for row in live)
    return EXIT_PROBLEM if failing else EXIT_OK


@fleet_app.command("update")
def update(
    repos: ReposArg = None,
    registry: RegistryOpt = None,
    policy_path: PolicyOpt = None,
    template: TemplateOpt = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Target version \\[default: newest in the policy range]."),
    ] = None,
    branch: Annotated[
        str | None,
        typer.Option(
            "--branch", help="Branch name; {version} is replaced \\[default: template/{version}]."
        ),
    ] = None,
    test: Annotated[
        bool, typer.Option("--test", help="Run the test command on the updated clone.")
    ] = False,
    test_command: Annotated[
        str | None,
        typer.Option(
            "--test-command",
            help="Implies --test \\[default: the policy's \\[update] test_command, else 'uv run pytest'].",
        ),
    ] = None,
    push: Annotated[
        bool, typer.Option("--push", help="Push each clean branch to the repository's origin.")
    ] = False,
    prereleases: PrereleasesOpt = False,
    jobs: JobsOpt = 4,
    cache_dir: CacheOpt = None,
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Update every repository on a branch of its own, in a clone: never in its working tree.

    Per repository: updated, conflicts (files listed; the branch is committed locally with Copier's markers, never pushed; for a URL, in a clone kept under the cache directory), up-to-date, or failed (reason). Exit 1 unless every repository is updated or up-to-date with no failed tests; 2 for a bad policy or registry; 130 on Ctrl-C. Example:

    [bold]async-service fleet update --registry fleet.toml --policy platform.toml --trust --test --push[/]
    """
    if branch is not None and (problem := branch_template_problem(branch)):
        _fail(f"--branch {problem}")
    fleet = _fleet(policy_path, template, cache_dir, prereleases, trust)
    specs = _specs(repos, registry)
    options = UpdateOptions(to, branch, test or test_command is not None, test_command, push)
    updater = Updater(fleet, options)
    try:
        rows = run_all(updater, specs, jobs, updater.cancel)
    except KeyboardInterrupt:
        _fail(
            "interrupted: running updates stopped, their clones removed; "
            "branches exist only for repositories whose commit was complete",
            EXIT_INTERRUPTED,
        )
    if as_json:
        output.print_json([row.as_json() for row in rows])
    else:
        output.update_table(rows)
    output.error_lines([f"{row.repo}: {row.error}" for row in rows if row.error])
    ok = all(r.result in ("updated", "up-to-date") and r.tests != "failed" for r in rows)
    raise typer.Exit(EXIT_OK if ok else EXIT_PROBLEM)


def main() -> None:
    app()
