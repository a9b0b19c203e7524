"""`async-service fleet update`: branches in clones, results per repository, nothing in place."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from async_service.cli import app
from tests.fleet_fixtures import (
    COPIER_YML,
    FleetPaths,
    build_template,
    copy_fleet,
    git,
    head,
    make_service,
    run_all_elsewhere,
    shared_fleet,
    write_policy,
)

# Passes only where the update really happened: settings.py is new in template 2.0.0.
HAS_SETTINGS = "sh -c 'test -f settings.py'"
BRANCH = "template/2.0.0"
NO_ANSWERS = "no .copier-answers.yml committed: not a Copier-generated service"


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> FleetPaths:
    return shared_fleet(tmp_path_factory.getbasetemp() / "cli-fleet")


@pytest.fixture
def fleet(shared: FleetPaths, tmp_path: Path) -> FleetPaths:
    """A private copy: updates create branches."""
    return copy_fleet(shared, tmp_path / "fleet")


def update(fleet: FleetPaths, *args: str) -> Result:
    cache = fleet.root.parent / "cache"
    env = {"COLUMNS": "320"}
    return CliRunner().invoke(app, ["fleet", "update", "--cache-dir", str(cache), *args], env=env)


def rows(result: Result) -> dict[str, dict[str, Any]]:
    return {Path(row["repo"]).name: row for row in json.loads(result.stdout)}


def message(repo: Path, rev: str = BRANCH) -> str:
    return git(repo, "log", "-1", "--format=%B", rev)


def test_update_reports_each_repository_and_never_touches_the_working_tree(
    fleet: FleetPaths,
) -> None:
    names = ["current", "behind", "conflict", "rogue", "noanswers", "notgit"]
    git_repos = ["current", "behind", "conflict", "rogue", "noanswers"]
    before = {name: head(fleet[name]) for name in git_repos}
    result = update(
        fleet, *(str(fleet[n]) for n in names), "--test-command", HAS_SETTINGS, "--json"
    )
    assert result.exit_code == 1, result.output  # conflicts and failures
    found = rows(result)
    assert list(found) == names

    assert found["current"] == {
        "repo": str(fleet["current"]),
        "result": "up-to-date",
        "branch": None,
        "conflicted_files": [],
        "tests": "skipped",
        "from_version": "2.0.0",
        "to_version": "2.0.0",
        "pushed": False,
        "note": None,
        "error": None,
    }
    assert git(fleet["current"], "branch", "--list", "template/*") == ""

    behind = found["behind"]
    assert (behind["result"], behind["branch"], behind["tests"]) == ("updated", BRANCH, "passed")
    assert (behind["from_version"], behind["to_version"]) == ("1.1.0", "2.0.0")
    assert behind["conflicted_files"] == [] and behind["error"] is None
    text = message(fleet["behind"])
    assert text.startswith("Update template from 1.1.0 to 2.0.0\n")
    assert "## 2.0.0\n\n- TIMEOUT is 10 seconds; new settings.py." in text
    assert "## 1.1.0" not in text  # already had it
    assert "Tests: passed" in text
    # The branch is one commit on top of main, with the update and the owner's edits in it.
    assert git(fleet["behind"], "rev-parse", f"{BRANCH}~1") == before["behind"][1]
    assert git(fleet["behind"], "show", f"{BRANCH}:settings.py") == "DEBUG = False"
    assert git(fleet["behind"], "show", f"{BRANCH}:db.txt") == "database: sqlite\npool: 10"

    conflict = found["conflict"]
    assert (conflict["result"], conflict["branch"]) == ("conflicts", BRANCH)
    assert conflict["conflicted_files"] == ["app.py"]
    assert conflict["tests"] == "skipped"  # markers in the code: nothing to test yet
    text = message(fleet["conflict"])
    assert text.startswith("Update template from 1.0.0 to 2.0.0\n")
    assert "## 2.0.0" in text and "## 1.1.0" in text
    assert "CONFLICTS to resolve before merging" in text and "- app.py" in text
    assert "<<<<<<< before updating" in git(fleet["conflict"], "show", f"{BRANCH}:app.py")

    assert (found["rogue"]["result"], found["rogue"]["tests"]) == ("updated", "passed")
    assert found["noanswers"]["result"] == "failed"
    assert found["noanswers"]["error"] == NO_ANSWERS
    assert (found["notgit"]["result"], found["notgit"]["error"]) == (
        "failed",
        "not a git repository",
    )
    assert result.stderr.splitlines() == [
        f"error: {fleet['noanswers']}: {NO_ANSWERS}",
        f"error: {fleet['notgit']}: not a git repository",
    ]
    # Checked-out branch, its commit and `git status` are exactly as before, everywhere.
    assert {name: head(fleet[name]) for name in git_repos} == before
    assert not (fleet["behind"] / "settings.py").exists()


def test_table_names_results_tests_and_conflicts(fleet: FleetPaths) -> None:
    result = update(fleet, str(fleet["behind"]), str(fleet["conflict"]), "--test-command", "true")
    assert result.exit_code == 1
    text = " ".join(result.stdout.replace("│", " ").split())
    assert f"{fleet['behind']} updated 1.1.0 2.0.0 {BRANCH} passed" in text
    assert f"{fleet['conflict']} conflicts 1.0.0 2.0.0 {BRANCH} skipped conflict: app.py" in text


def test_second_run_is_up_to_date_and_changes_nothing(fleet: FleetPaths) -> None:
    repos = [str(fleet["behind"]), str(fleet["current"]), str(fleet["conflict"])]
    first = update(fleet, *repos, "--json")
    assert rows(first)["behind"]["result"] == "updated"
    branch_tip = git(fleet["behind"], "rev-parse", BRANCH)
    conflict_tip = git(fleet["conflict"], "rev-parse", BRANCH)

    second = update(fleet, *repos, "--json")
    found = rows(second)
    assert found["behind"]["result"] == "up-to-date"
    assert found["behind"]["note"] == f"branch {BRANCH} already prepared"
    assert found["current"]["result"] == "up-to-date"
    # A conflicted branch still needs its owner: said again, not hidden, not redone.
    assert found["conflict"]["result"] == "conflicts"
    assert found["conflict"]["conflicted_files"] == ["app.py"]
    assert git(fleet["behind"], "rev-parse", BRANCH) == branch_tip
    assert git(fleet["conflict"], "rev-parse", BRANCH) == conflict_tip

    clean = update(fleet, str(fleet["behind"]), str(fleet["current"]))
    assert clean.exit_code == 0, clean.output


def test_failed_tests_are_reported_and_exit_1(fleet: FleetPaths) -> None:
    result = update(fleet, str(fleet["behind"]), "--test-command", "sh -c 'exit 3'", "--json")
    assert result.exit_code == 1
    behind = rows(result)["behind"]
    assert (behind["result"], behind["tests"]) == ("updated", "failed")
    assert "Tests: failed" in message(fleet["behind"])


def bare_copy(repo: Path, bare: Path) -> tuple[Path, str]:
    """A bare clone of `repo`, and its file:// URL: a repository the CLI reaches by URL."""
    git(bare.parent, "clone", "--quiet", "--bare", str(repo), str(bare))
    return bare, bare.as_uri()


def with_origin(repo: Path, remote: Path) -> Path:
    """`repo` with a bare `origin` at `remote` that holds its main branch."""
    git(remote.parent, "init", "--quiet", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "--quiet", "origin", "main")
    return remote


def test_a_second_run_reports_failed_tests_again_and_never_pushes_the_branch(
    fleet: FleetPaths, tmp_path: Path
) -> None:
    remote = with_origin(fleet["behind"], tmp_path / "behind.git")
    first = update(fleet, str(fleet["behind"]), "--test-command", "false", "--json")
    assert first.exit_code == 1
    assert rows(first)["behind"]["tests"] == "failed"

    again = update(fleet, str(fleet["behind"]), "--test-command", "false", "--push", "--json")
    assert again.exit_code == 1, again.output
    behind = rows(again)["behind"]
    assert (behind["result"], behind["tests"], behind["pushed"]) == ("up-to-date", "failed", False)
    assert behind["note"] == (
        f"branch {BRANCH} already prepared, its tests failed: not pushed "
        "(fix the branch, or delete it to update again)"
    )
    assert git(remote, "branch", "--list", BRANCH) == ""


def test_a_branch_made_without_tests_is_tested_before_a_push_that_asks_for_them(
    fleet: FleetPaths, tmp_path: Path
) -> None:
    remote = with_origin(fleet["behind"], tmp_path / "behind.git")
    assert rows(update(fleet, str(fleet["behind"]), "--json"))["behind"]["tests"] == "skipped"

    red = update(fleet, str(fleet["behind"]), "--test-command", "false", "--push", "--json")
    assert red.exit_code == 1, red.output
    assert (rows(red)["behind"]["tests"], rows(red)["behind"]["pushed"]) == ("failed", False)
    assert git(remote, "branch", "--list", BRANCH) == ""
    # Without --test the branch's commit message still says "Tests: skipped"; the red run's
    # outcome is what counts.
    unasked = update(fleet, str(fleet["behind"]), "--push", "--json")
    assert unasked.exit_code == 1, unasked.output
    assert (rows(unasked)["behind"]["tests"], rows(unasked)["behind"]["pushed"]) == (
        "failed",
        False,
    )
    assert git(remote, "branch", "--list", BRANCH) == ""
    green = update(fleet, str(fleet["behind"]), "--test-command", HAS_SETTINGS, "--push", "--json")
    assert green.exit_code == 0, green.output
    assert (rows(green)["behind"]["tests"], rows(green)["behind"]["pushed"]) == ("passed", True)


def test_policy_test_command_runs_with_test(fleet: FleetPaths, tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "p.toml", fleet.template, test_command="sh -c 'exit 4'")
    result = update(fleet, str(fleet["behind"]), "--policy", str(policy), "--test", "--json")
    assert rows(result)["behind"]["tests"] == "failed"


def test_push_sends_clean_branches_to_origin_and_keeps_conflicts_local(
    fleet: FleetPaths, tmp_path: Path
) -> None:
    remotes = {}
    for name in ("behind", "conflict"):
        remotes[name] = tmp_path / f"{name}.git"
        git(tmp_path, "init", "--quiet", "--bare", str(remotes[name]))
        git(fleet[name], "remote", "add", "origin", str(remotes[name]))
        git(fleet[name], "push", "--quiet", "origin", "main")
    before = {name: head(fleet[name]) for name in remotes}
    result = update(fleet, str(fleet["behind"]), str(fleet["conflict"]), "--push", "--json")
    found = rows(result)
    assert (found["behind"]["result"], found["behind"]["pushed"]) == ("updated", True)
    assert git(remotes["behind"], "rev-parse", BRANCH) == git(fleet["behind"], "rev-parse", BRANCH)
    assert git(remotes["behind"], "rev-parse", "main") == before["behind"][1]
    assert (found["conflict"]["result"], found["conflict"]["pushed"]) == ("conflicts", False)
    assert "not pushed" in found["conflict"]["note"]
    assert git(remotes["conflict"], "branch", "--list", BRANCH) == ""
    assert {name: head(fleet[name]) for name in remotes} == before
    again = rows(update(fleet, str(fleet["behind"]), "--push", "--json"))["behind"]
    assert (again["result"], again["pushed"]) == ("up-to-date", True)


def test_url_repository_is_updated_in_a_clone_and_pushed(fleet: FleetPaths, tmp_path: Path) -> None:
    bare = tmp_path / "behind.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(fleet["behind"]), str(bare))
    url = bare.as_uri()
    without_push = rows(update(fleet, url, "--json"))[bare.name]
    assert without_push["result"] == "failed"
    assert (
        without_push["error"] == "a URL repository needs --push: the branch has nowhere else to go"
    )
    result = update(fleet, url, "--push", "--json")
    assert result.exit_code == 0, result.output
    assert rows(result)[bare.name]["result"] == "updated"
    assert message(bare).startswith("Update template from 1.1.0 to 2.0.0")
    assert rows(update(fleet, url, "--push", "--json"))[bare.name]["result"] == "up-to-date"


def test_the_branch_starts_from_the_default_branch_not_the_checked_out_one(
    fleet: FleetPaths,
) -> None:
    repo = fleet["behind"]
    main = git(repo, "rev-parse", "main")
    git(repo, "checkout", "--quiet", "-b", "wip-feature")
    # Work in progress, with an answers file that claims the update is done already.
    answers = (repo / ".copier-answers.yml").read_text()
    (repo / ".copier-answers.yml").write_text(answers.replace("_commit: 1.1.0", "_commit: 2.0.0"))
    (repo / "wip.txt").write_text("half done\n")
    git(repo, "commit", "--quiet", "--all", "-m", "WIP")
    git(repo, "add", "wip.txt")
    git(repo, "commit", "--quiet", "-m", "WIP 2")
    before = head(repo)
    found = rows(update(fleet, str(repo), "--json"))["behind"]
    assert (found["result"], found["from_version"], found["branch"]) == ("updated", "1.1.0", BRANCH)
    assert git(repo, "rev-parse", f"{BRANCH}~1") == main
    assert "wip.txt" not in git(repo, "ls-tree", "--name-only", BRANCH)
    assert head(repo) == before


def test_a_template_with_tasks_needs_trust_and_says_so_in_one_line(tmp_path: Path) -> None:
    template = build_template(tmp_path / "template")
    (template / "copier.yml").write_text(COPIER_YML + "_tasks:\n  - 'true'\n")
    git(template, "commit", "--quiet", "--all", "-m", "a task")
    git(template, "tag", "3.0.0")
    service = make_service(template, tmp_path / "svc", "2.0.0", {"project_name": "svc"})
    fleet = FleetPaths(template, tmp_path)
    refused = update(fleet, str(service))
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        f"error: {service}: the template runs tasks or migrations: pass --trust if you trust it"
    )
    trusted = rows(update(fleet, str(service), "--trust", "--json"))["svc"]
    assert (trusted["result"], trusted["to_version"]) == ("updated", "3.0.0")


def test_the_update_help_example_passes_trust() -> None:
    result = CliRunner().invoke(app, ["fleet", "update", "--help"], env={"COLUMNS": "200"})
    lines = result.stdout.splitlines()
    (example,) = [line for line in lines if line.strip().startswith("async-service fleet update ")]
    assert " --trust " in example


def test_a_relative_src_path_is_relative_to_the_service_not_the_cli(
    shared: FleetPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`copier copy ../template relsvc` records `_src_path: ../template`."""
    service = tmp_path / "relsvc"
    shutil.copytree(shared["behind"], service, symlinks=True)
    answers = service / ".copier-answers.yml"
    relative = os.path.relpath(shared.template, service)
    answers.write_text(answers.read_text().replace(str(shared.template), relative))
    assert f"_src_path: {relative}\n" in answers.read_text()
    git(service, "commit", "--quiet", "--all", "-m", "as copier copy ../template wrote it")
    elsewhere = tmp_path / "deeper" / "elsewhere"  # where ../template means another place
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    fleet = FleetPaths(shared.template, tmp_path)
    result = update(fleet, str(service), "--template", str(shared.template), "--json")
    found = rows(result)["relsvc"]
    assert (found["result"], found["error"]) == ("updated", None), result.output
    assert git(service, "show", f"{BRANCH}:settings.py") == "DEBUG = False"
    assert f"_src_path: {relative}" in git(service, "show", f"{BRANCH}:.copier-answers.yml")
    status = CliRunner().invoke(
        app, ["fleet", "status", str(service), "--json", "--cache-dir", str(tmp_path / "cache")]
    )
    row = json.loads(status.stdout)[0]
    # db.txt is behind's own edit; nothing else differs from the template it names.
    drifted = [file["path"] for file in row["drifted_files"]]
    assert (row["error"], row["behind"], drifted) == (None, 1, ["db.txt"]), status.output


def test_url_repository_conflicts_stay_in_a_kept_clone_until_resolved(
    fleet: FleetPaths, tmp_path: Path
) -> None:
    bare, url = bare_copy(fleet["conflict"], tmp_path / "conflict.git")
    first = rows(update(fleet, url, "--push", "--json"))[bare.name]
    assert (first["result"], first["conflicted_files"], first["pushed"]) == (
        "conflicts",
        ["app.py"],
        False,
    )
    prefix = "not pushed: resolve the conflicts in the clone kept at "
    assert first["note"].startswith(prefix)
    kept = Path(first["note"].removeprefix(prefix).split(" (branch ", 1)[0])
    assert kept.is_relative_to(fleet.root.parent / "cache")
    assert git(kept, "symbolic-ref", "--short", "HEAD") == BRANCH
    assert "<<<<<<< before updating" in (kept / "app.py").read_text()
    assert git(bare, "branch", "--list", BRANCH) == ""

    again = rows(update(fleet, url, "--push", "--json"))[bare.name]
    assert (again["result"], again["note"]) == ("conflicts", first["note"])
    (kept / "app.py").write_text(git(kept, "show", "main:app.py").replace("= 7", "= 10") + "\n")
    git(kept, "commit", "--quiet", "--all", "-m", "resolve the conflict")
    resolved = update(fleet, url, "--push", "--json")
    assert resolved.exit_code == 0, resolved.output
    assert rows(resolved)[bare.name]["pushed"] is True
    assert git(bare, "rev-parse", BRANCH) == git(kept, "rev-parse", "HEAD")


def test_dirty_working_tree_is_refused_and_others_still_updated(fleet: FleetPaths) -> None:
    (fleet["behind"] / "db.txt").write_text("uncommitted\n")
    before = head(fleet["behind"])
    result = update(fleet, str(fleet["behind"]), str(fleet["conflict"]), "--json")
    found = rows(result)
    assert found["behind"]["result"] == "failed"
    assert found["behind"]["error"] == (
        "working tree has uncommitted changes: commit or stash them (nothing was done)"
    )
    assert head(fleet["behind"]) == before
    assert git(fleet["behind"], "branch", "--list", BRANCH) == ""
    assert found["conflict"]["result"] == "conflicts"


def test_unknown_version_fails_each_repository_by_name(fleet: FleetPaths) -> None:
    result = update(fleet, str(fleet["behind"]), "--to", "9.9.9")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {fleet['behind']}: unknown template version 9.9.9 "
        "(the template has: 1.0.0, 1.1.0, 2.0.0, 2.1.0rc1)"
    )
    assert git(fleet["behind"], "branch", "--list", "template/*") == ""


def test_a_target_outside_the_policy_range_is_refused(fleet: FleetPaths, tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "p.toml", fleet.template, versions=">=1.0,<2")
    result = update(fleet, str(fleet["behind"]), "--policy", str(policy), "--to", "2.0.0")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {fleet['behind']}: version 2.0.0 is outside p.toml [template] versions <2,>=1.0"
    )
    # Without --to, the newest release in range: behind (1.1.0) is already there.
    plain = rows(update(fleet, str(fleet["behind"]), "--policy", str(policy), "--json"))
    assert (plain["behind"]["result"], plain["behind"]["to_version"]) == ("up-to-date", "1.1.0")
    assert git(fleet["behind"], "branch", "--list", "template/*") == ""


def test_to_and_branch_choose_the_target(fleet: FleetPaths) -> None:
    result = update(
        fleet, str(fleet["conflict"]), "--to", "1.1.0", "--branch", "chore/tpl-{version}", "--json"
    )
    found = rows(result)["conflict"]
    assert (found["result"], found["branch"], found["to_version"]) == (
        "updated",
        "chore/tpl-1.1.0",
        "1.1.0",
    )
    assert "See docs/" in git(fleet["conflict"], "show", "chore/tpl-1.1.0:README.md")


@pytest.mark.parametrize(
    ("branch", "message"),
    [
        ("tpl/{ver}", "'tpl/{ver}': {version} is the only placeholder, not {ver}"),
        (
            "bad..name/{version}",
            "'bad..name/{version}': 'bad..name/1.0.0' is not a valid git branch name",
        ),
    ],
)
def test_a_bad_branch_template_is_one_error_before_any_repository_is_read(
    shared: FleetPaths, branch: str, message: str
) -> None:
    # The shared fleet, not a copy: nothing may be written, and the last line checks it.
    repos = [str(shared["behind"]), str(shared["conflict"])]
    result = update(shared, *repos, "--branch", branch)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"error: --branch {message}"]
    assert git(shared["behind"], "branch", "--list", "*/*") == ""


def test_ctrl_c_stops_cleanly_and_leaves_no_branch(fleet: FleetPaths, tmp_path: Path) -> None:
    """A real SIGINT to the CLI while the first update runs its tests (a subprocess of it).

    The suite would run for 120 s: the CLI must stop it, not wait for it (the run's 60 s
    timeout fails the test otherwise), and no process of it may outlive the CLI."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONDONTWRITEBYTECODE": "1"}
    before = {name: head(fleet[name]) for name in ("behind", "conflict")}
    pid_file = tmp_path / "suite.pid"
    command = [
        sys.executable,
        "-X",
        "faulthandler",  # SIGABRT below prints every thread's stack
        "-c",
        # SIGINT's default behaviour: a background process may inherit it ignored.
        (
            "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from async_service.cli import main; main()"
        ),
        "fleet",
        "update",
        str(fleet["behind"]),
        str(fleet["conflict"]),
        "--jobs",
        "1",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--test-command",
        f"sh -c 'echo $$ > {pid_file}; kill -INT $PPID; exec sleep 120'",
    ]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as cli:
        try:
            stdout, stderr = cli.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            cli.send_signal(signal.SIGABRT)
            stdout, stderr = cli.communicate()
            suite = pid_file.read_text().strip() if pid_file.exists() else "never started"
            pytest.fail(f"the CLI still ran after 60 s (suite: {suite}):\n{stdout}\n{stderr}")
    assert cli.returncode == 130, stdout + stderr
    assert stderr.startswith("error: interrupted:")
    for name in ("behind", "conflict"):
        assert git(fleet[name], "branch", "--list", "template/*") == ""
        assert head(fleet[name]) == before[name]
    assert list(scratch.iterdir()) == []  # the clone was removed
    assert not running(int(pid_file.read_text()))


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for init to reap it is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_relative_paths_are_resolved_before_any_worker_starts(
    fleet: FleetPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative repositories, --template and --cache-dir, while the workers run elsewhere."""
    elsewhere = run_all_elsewhere(monkeypatch, tmp_path / "elsewhere")
    monkeypatch.chdir(fleet.root)
    template = os.path.relpath(fleet.template, fleet.root)
    args = ["fleet", "update", "behind", "rogue", "current", "--jobs", "3"]
    args += ["--template", template, "--cache-dir", "relcache", "--json"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "320"})
    assert result.exit_code == 0, result.output
    found = rows(result)
    assert [found[n]["result"] for n in ("behind", "rogue", "current")] == [
        "updated",
        "updated",
        "up-to-date",
    ]
    assert found["behind"]["repo"] == str(fleet["behind"])  # absolute, as a registry's are
    assert git(fleet["behind"], "branch", "--list", BRANCH).strip() == BRANCH
    assert list(elsewhere.iterdir()) == []


def test_a_kept_clone_whose_branch_was_renamed_is_one_error_naming_it(
    fleet: FleetPaths, tmp_path: Path
) -> None:
    bare, url = bare_copy(fleet["conflict"], tmp_path / "conflict.git")
    first = rows(update(fleet, url, "--push", "--json"))[bare.name]
    kept = Path(first["note"].split(" kept at ", 1)[1].split(" (branch ", 1)[0])
    git(kept, "branch", "--move", BRANCH, "my-resolution")
    again = update(fleet, url, "--push")
    assert again.exit_code == 1, again.output
    (line,) = again.stderr.splitlines()
    assert line == (
        f"error: {url}: the clone kept at {kept} no longer has branch {BRANCH}: commit the "
        "resolution on that branch there, or delete the clone to update again"
    )
    assert git(kept, "symbolic-ref", "--short", "HEAD") == "my-resolution"  # left as it was
    assert git(bare, "branch", "--list", BRANCH) == ""
