"""`async-service fleet status` on a fleet built from the synthetic template history."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from async_service.__main__ import main as console_script
from async_service.cli import app
from async_service.fleet import run_all
from async_service.repos import RepoSpec
from tests.fleet_fixtures import (
    FleetPaths,
    copy_fleet,
    git,
    run_all_elsewhere,
    shared_fleet,
    write_policy,
)

ALL = ["current", "behind", "conflict", "rogue", "noanswers", "notgit"]


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> FleetPaths:
    return shared_fleet(tmp_path_factory.getbasetemp() / "cli-fleet")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def status(cache: Path, *args: str) -> Result:
    # Wide enough that rich folds no tmp path over two rows.
    env = {"COLUMNS": "320"}
    return CliRunner().invoke(app, ["fleet", "status", "--cache-dir", str(cache), *args], env=env)


def by_repo(result: Result) -> dict[str, dict[str, Any]]:
    return {Path(row["repo"]).name: row for row in json.loads(result.stdout)}


def test_status_json_gives_every_field_of_every_repository(
    fleet: FleetPaths, cache: Path, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.toml", fleet.template)
    repos = [str(fleet[name]) for name in ALL]
    result = status(cache, *repos, "--policy", str(policy), "--json")
    assert result.exit_code == 1, result.output  # two repositories cannot be inspected
    rows = by_repo(result)
    assert list(rows) == ALL  # input order, whatever order the threads finished in
    template = str(fleet.template)

    current = rows["current"]
    assert current == {
        "repo": str(fleet["current"]),
        "note": None,
        "skipped": False,
        "template": template,
        "template_version": "2.0.0",
        "latest_version": "2.0.0",  # 2.1.0rc1 is a pre-release
        "behind": 0,
        "changelog": [],
        "policy_violations": [],
        "drifted_files": [],  # .copier-answers.yml is never drift
        "error": None,
    }
    behind = rows["behind"]
    assert (behind["template_version"], behind["latest_version"], behind["behind"]) == (
        "1.1.0",
        "2.0.0",
        1,
    )
    assert behind["changelog"] == ["2.0.0"]
    assert behind["policy_violations"] == []
    # One line added to a rendered file; src/own.py is the service's own, not drift.
    assert behind["drifted_files"] == [
        {"path": "db.txt", "added": 1, "removed": 0, "deleted": False}
    ]
    conflict = rows["conflict"]
    assert (conflict["template_version"], conflict["behind"]) == ("1.0.0", 2)
    assert conflict["changelog"] == ["2.0.0", "1.1.0"]
    assert conflict["drifted_files"] == [
        {"path": "app.py", "added": 1, "removed": 1, "deleted": False}
    ]
    rogue = rows["rogue"]
    assert rogue["policy_violations"] == [
        "ci=github, but policy.toml [answers.fixed] requires gitlab",
        "database=mongodb is forbidden by policy.toml [answers.forbidden]",
    ]
    # README.md deleted (all 7 lines of 1.1.0's render removed); .env is _skip_if_exists.
    assert rogue["drifted_files"] == [
        {"path": "README.md", "added": 0, "removed": 7, "deleted": True}
    ]
    assert rogue["error"] is None
    assert rows["noanswers"]["error"] == (
        "no .copier-answers.yml committed: not a Copier-generated service"
    )
    assert rows["noanswers"]["behind"] is None
    assert rows["notgit"]["error"] == "not a git repository"
    # One clear line per failing repository, naming it.
    assert result.stderr.splitlines() == [
        f"error: {fleet['noanswers']}: no .copier-answers.yml committed: not a Copier-generated service",
        f"error: {fleet['notgit']}: not a git repository",
    ]


def test_status_table_shows_versions_behind_policy_and_drift(
    fleet: FleetPaths, cache: Path, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.toml", fleet.template)
    result = status(cache, *(str(fleet[n]) for n in ALL), "--policy", str(policy))
    lines = result.stdout.splitlines()

    def row(name: str) -> str:
        (found,) = [line for line in lines if f"{fleet[name]} " in line]
        return " ".join(found.replace("│", " ").split())

    assert row("current") == f"{fleet['current']} 2.0.0 2.0.0 0 ok none"
    assert row("behind") == f"{fleet['behind']} 1.1.0 2.0.0 1 ok db.txt +1 -0 2.0.0"
    assert row("conflict") == f"{fleet['conflict']} 1.0.0 2.0.0 2 ok app.py +1 -1 2.0.0, 1.1.0"
    assert "ci=github, but policy.toml [answers.fixed] requires gitlab" in row("rogue")
    assert "README.md deleted" in row("rogue")
    assert "error" in row("notgit") and "not a git repository" in row("notgit")


def test_prereleases_count_only_when_asked(fleet: FleetPaths, cache: Path) -> None:
    plain = by_repo(status(cache, str(fleet["current"]), "--json"))["current"]
    assert (plain["latest_version"], plain["behind"]) == ("2.0.0", 0)
    pre = by_repo(status(cache, str(fleet["current"]), "--json", "--prereleases"))["current"]
    assert (pre["latest_version"], pre["behind"], pre["changelog"]) == ("2.1.0rc1", 1, ["2.1.0rc1"])


@pytest.mark.parametrize(
    ("repos", "fail_on", "code"),
    [
        (["current", "behind"], [], 0),
        (["current", "behind"], ["behind"], 1),
        (["current"], ["behind", "policy", "drift"], 0),
        (["current", "rogue"], ["policy"], 1),
        (["current", "behind"], ["policy"], 0),
        (["current", "behind"], ["drift"], 1),
        (["current", "notgit"], [], 1),  # a repository that cannot be inspected
    ],
)
def test_fail_on_sets_the_exit_code(
    fleet: FleetPaths, cache: Path, tmp_path: Path, repos: list[str], fail_on: list[str], code: int
) -> None:
    policy = write_policy(tmp_path / "policy.toml", fleet.template)
    flags = [arg for item in fail_on for arg in ("--fail-on", item)]
    result = status(cache, *(str(fleet[r]) for r in repos), "--policy", str(policy), *flags)
    assert result.exit_code == code, result.output


def test_a_policy_range_matching_no_release_is_exit_2(
    fleet: FleetPaths, cache: Path, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.toml", fleet.template, versions=">=5")
    result = status(cache, str(fleet["current"]), "--policy", str(policy), "--fail-on", "behind")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "error: policy.toml: no release matches >=5 (the template has: 1.0.0, 1.1.0, 2.0.0, 2.1.0rc1)"
    ]


def test_a_policy_range_without_source_matching_no_release_fails_each_repository(
    fleet: FleetPaths, cache: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[template]\nversions = ">=5"\n')
    result = status(cache, str(fleet["current"]), "--policy", str(policy))
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"error: {fleet['current']}: policy.toml: no release matches >=5 (the template has: 1.0.0, 1.1.0, 2.0.0, 2.1.0rc1)"
    ]


def test_a_policy_typo_without_source_fails_each_repository_naming_it(
    fleet: FleetPaths, cache: Path, tmp_path: Path
) -> None:
    """Checked against each repository's own template: not silently no violation."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[answers.fixed]\ncii = "gitlab"\n')
    result = status(cache, str(fleet["current"]), "--policy", str(policy), "--fail-on", "policy")
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {fleet['current']}: policy.toml: answers.fixed.cii: unknown")


def test_registry_notes_skips_and_relative_paths(fleet: FleetPaths, cache: Path) -> None:
    registry = fleet.root / "fleet.toml"
    registry.write_text(
        '[[repos]]\nrepo = "current"\nnote = "payments team"\n\n'
        '[[repos]]\nrepo = "noanswers"\nskip = true\nnote = "archived"\n'
    )
    try:
        result = status(cache, "--registry", str(registry), "--json")
    finally:
        registry.unlink()
    assert result.exit_code == 0, result.output  # the broken one is skipped, not an error
    rows = by_repo(result)
    assert rows["current"]["note"] == "payments team"
    assert rows["current"]["behind"] == 0
    assert rows["noanswers"]["skipped"] is True
    assert rows["noanswers"]["error"] is None


def test_status_reads_the_default_branch_not_the_checked_out_one(
    fleet: FleetPaths, cache: Path, tmp_path: Path
) -> None:
    repo = copy_fleet(fleet, tmp_path / "fleet")["behind"]
    git(repo, "remote", "add", "origin", str(tmp_path / "nowhere.git"))
    git(repo, "update-ref", "refs/remotes/origin/trunk", "main")
    git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/trunk")
    # Local main and the checked-out branch both differ from origin's default branch.
    answers = (repo / ".copier-answers.yml").read_text()
    (repo / ".copier-answers.yml").write_text(answers.replace("_commit: 1.1.0", "_commit: 2.0.0"))
    (repo / "README.md").unlink()
    git(repo, "commit", "--quiet", "--all", "-m", "on main, not pushed")
    git(repo, "checkout", "--quiet", "-b", "wip-feature")
    (repo / "app.py").write_text("WIP\n")
    git(repo, "commit", "--quiet", "--all", "-m", "WIP")
    row = by_repo(status(cache, str(repo), "--json"))["behind"]
    assert (row["template_version"], row["behind"]) == ("1.1.0", 1)
    assert [drifted["path"] for drifted in row["drifted_files"]] == ["db.txt"]


def test_an_unreachable_url_names_git_s_fatal_line(cache: Path, tmp_path: Path) -> None:
    url = (tmp_path / "nope.git").as_uri()
    result = status(cache, url)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {url}: cannot fetch {url}: git fetch: fatal: ")
    assert "does not appear to be a git repository" in line


def test_a_repository_of_one_branch_not_named_main_is_read_at_it(
    fleet: FleetPaths, cache: Path, tmp_path: Path
) -> None:
    repo = copy_fleet(fleet, tmp_path / "fleet")["behind"]
    git(repo, "branch", "--move", "main", "trunk")
    row = by_repo(status(cache, str(repo), "--json"))["behind"]
    assert (row["error"], row["behind"]) == (None, 1)
    git(repo, "branch", "other")
    row = by_repo(status(cache, str(repo), "--json"))["behind"]
    assert row["error"] == (
        "cannot tell the default branch: no origin/HEAD, main or master, and 2 branches "
        "(other, trunk); git remote set-head origin --auto sets origin/HEAD"
    )


@pytest.mark.parametrize("fetched", ["main", "trunk"])
def test_a_ci_checkout_detached_without_local_branches_is_read(
    fleet: FleetPaths, cache: Path, tmp_path: Path, fetched: str
) -> None:
    """What actions/checkout leaves: origin's branch fetched, HEAD detached, no branches."""
    checkout = tmp_path / "ci"
    checkout.mkdir()
    git(checkout, "init", "--quiet")
    git(checkout, "remote", "add", "origin", str(fleet["behind"]))
    git(checkout, "fetch", "--quiet", "origin", f"+refs/heads/main:refs/remotes/origin/{fetched}")
    git(checkout, "checkout", "--quiet", "--detach", f"origin/{fetched}")
    assert git(checkout, "for-each-ref", "refs/heads") == ""
    row = by_repo(status(cache, str(checkout), "--json"))["ci"]
    assert (row["error"], row["template_version"], row["behind"]) == (None, "1.1.0", 1)


def test_origin_main_is_the_default_when_origin_has_no_head_and_main_is_not_local(
    fleet: FleetPaths, cache: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "behind"
    git(tmp_path, "clone", "--quiet", str(fleet["behind"]), str(repo))
    git(repo, "remote", "set-head", "origin", "--delete")
    git(repo, "branch", "--move", "main", "develop")
    git(repo, "branch", "feature")
    # develop claims the update is done: origin's main, not develop, is what is read.
    answers = (repo / ".copier-answers.yml").read_text()
    (repo / ".copier-answers.yml").write_text(answers.replace("_commit: 1.1.0", "_commit: 2.0.0"))
    git(repo, "commit", "--quiet", "--all", "-m", "on develop")
    row = by_repo(status(cache, str(repo), "--json"))["behind"]
    assert (row["error"], row["template_version"], row["behind"]) == (None, "1.1.0", 1)


def test_a_relative_src_path_in_a_url_repository_is_one_error(
    fleet: FleetPaths, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It is relative to the owner's checkout; from here, `../template` means nothing."""
    work = tmp_path / "work"
    git(tmp_path, "clone", "--quiet", str(fleet["behind"]), str(work))
    here = tmp_path / "here"  # where the relative path does reach the template: not used
    here.mkdir()
    relative = os.path.relpath(fleet.template, here)
    answers = work / ".copier-answers.yml"
    answers.write_text(answers.read_text().replace(str(fleet.template), relative))
    git(work, "commit", "--quiet", "--all", "-m", "as copier copy ../template wrote it")
    bare = tmp_path / "rel.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(work), str(bare))
    monkeypatch.chdir(here)
    result = status(cache, bare.as_uri())
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert line == (
        f"error: {bare.as_uri()}: relative _src_path {relative} in a remote repository: "
        "record the template's URL or absolute path in .copier-answers.yml"
    )


@pytest.mark.parametrize(
    ("registry", "message"),
    [
        (
            '[[repos]]\nrepo = "current"\nskipp = true\n',
            "fleet.toml: repos[0].skipp: unknown key; allowed: repo, note, skip",
        ),
        (
            '[[repos]]\nrepo = "current"\nskip = "yes"\n',
            "fleet.toml: repos[0].skip: must be a bool",
        ),
        ('[[repos]]\nnote = "x"\n', "fleet.toml: repos[0]: missing key repo (a path or git URL)"),
        ('[[repo]]\nrepo = "current"\n', "fleet.toml: repo: unknown key; allowed: repos"),
    ],
)
def test_a_registry_typo_is_exit_2_naming_the_key(
    cache: Path, tmp_path: Path, registry: str, message: str
) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(registry)
    result = status(cache, "--registry", str(path))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {message}"


def test_no_repositories_is_exit_2(cache: Path) -> None:
    result = status(cache)
    assert result.exit_code == 2
    assert "no repositories" in result.stderr


def test_url_repositories_are_cloned_into_the_cache(
    fleet: FleetPaths, cache: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "behind.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(fleet["behind"]), str(bare))
    url = bare.as_uri()
    missing = (tmp_path / "nowhere.git").as_uri()
    result = status(cache, url, missing, str(fleet["current"]), "--json")
    assert result.exit_code == 1
    rows = {row["repo"]: row for row in json.loads(result.stdout)}
    assert rows[url]["behind"] == 1
    assert rows[url]["drifted_files"][0]["path"] == "db.txt"
    assert rows[url]["error"] is None
    assert rows[missing]["error"].startswith(f"cannot fetch {missing}: git fetch:")
    assert rows[str(fleet["current"])]["error"] is None  # the others are still processed
    assert len(list((cache / "repos").iterdir())) == 2
    # A new commit upstream is seen on the next run (the cache is refreshed, not reused).
    work = tmp_path / "work"
    git(tmp_path, "clone", "--quiet", str(bare), str(work))
    (work / "db.txt").write_text("database: sqlite\n")
    git(work, "commit", "--quiet", "-am", "back to the template's db.txt")
    git(work, "push", "--quiet", "origin", "HEAD")
    again = {row["repo"]: row for row in json.loads(status(cache, url, "--json").stdout)}
    assert again[url]["drifted_files"] == []


def test_template_given_as_a_url_is_cloned_and_the_answers_file_is_no_drift(
    fleet: FleetPaths, cache: Path
) -> None:
    # Rendered from the cache's clone, the pristine answers file records another _src_path.
    url = fleet.template.as_uri()
    result = status(cache, str(fleet["current"]), str(fleet["behind"]), "--template", url, "--json")
    assert result.exit_code == 0, result.output
    rows = by_repo(result)
    assert rows["current"]["drifted_files"] == []
    assert [f["path"] for f in rows["behind"]["drifted_files"]] == ["db.txt"]
    assert rows["behind"]["changelog"] == ["2.0.0"]
    assert len(list((cache / "templates").iterdir())) == 1


def test_answers_from_another_template_is_one_error_line(
    fleet: FleetPaths, cache: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-template"
    git(tmp_path, "clone", "--quiet", str(fleet.template), str(other))
    result = status(cache, str(fleet["behind"]), "--template", str(other), "--json")
    assert result.exit_code == 1
    (row,) = json.loads(result.stdout)
    assert row["error"] == (
        f"answers file is from another template: {fleet.template} (expected {other})"
    )


def test_pristine_renders_are_shared_by_services_on_one_version(
    fleet: FleetPaths, cache: Path, tmp_path: Path
) -> None:
    copies = [tmp_path / f"current-{i}" for i in range(3)]
    for copy in copies:
        shutil.copytree(fleet["current"], copy)
    result = status(cache, *map(str, copies), str(fleet["behind"]), "--json")
    assert result.exit_code == 0, result.output
    # Three services on (2.0.0, same answers) and one on 1.1.0: two renders, not four.
    assert len([p for p in (cache / "renders").iterdir() if not p.name.startswith(".")]) == 2


def test_repositories_are_handled_at_most_jobs_at_a_time() -> None:
    lock = threading.Lock()
    running, peak = 0, 0

    def work(spec: RepoSpec) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return spec.location

    specs = [RepoSpec(f"repo-{i}") for i in range(8)]
    assert run_all(work, specs, 3, threading.Event()) == [s.location for s in specs]
    assert peak == 3


def test_ctrl_c_that_lands_on_a_worker_thread_still_cancels_the_running_work() -> None:
    """The kernel may hand SIGINT to any thread: the main thread must still notice it while
    the work runs, set `cancel`, and re-raise. Here the second repository's work sends it to
    its own thread (the first's has let the pool's thread start, so it is joined)."""
    cancel = threading.Event()
    saw_cancel: list[bool] = []

    def work(spec: RepoSpec) -> str:
        if spec.location == "second":
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            saw_cancel.append(cancel.wait(10))  # the main thread reacts, or 10 s pass
        return spec.location

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_all(work, [RepoSpec("first"), RepoSpec("second")], 1, cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert saw_cancel == [True]


def test_ctrl_c_while_the_cli_imports_exits_130_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class InterruptedImport:
        def find_spec(self, name: str, *_: object) -> None:
            if name == "async_service.cli":
                raise KeyboardInterrupt

    monkeypatch.delitem(sys.modules, "async_service.cli")
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport(), *sys.meta_path])
    with pytest.raises(SystemExit) as exited:
        console_script()
    assert exited.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_relative_paths_are_resolved_before_any_worker_starts(
    fleet: FleetPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative repositories, read while the workers run elsewhere (run_all_elsewhere)."""
    elsewhere = run_all_elsewhere(monkeypatch, tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path)
    repos = [os.path.relpath(fleet[name], tmp_path) for name in ("current", "behind", "rogue")]
    template = os.path.relpath(fleet.template, tmp_path)
    args = ["fleet", "status", *repos, "--template", template, "--cache-dir", "relcache"]
    result = CliRunner().invoke(app, [*args, "--jobs", "3", "--json"])
    assert result.exit_code == 0, result.output
    rows = by_repo(result)
    assert [rows[name]["error"] for name in ("current", "behind", "rogue")] == [None] * 3
    assert rows["current"]["repo"] == str(fleet["current"])
    assert rows["behind"]["drifted_files"][0]["path"] == "db.txt"
    assert (tmp_path / "relcache").is_dir()
    assert list(elsewhere.iterdir()) == []
