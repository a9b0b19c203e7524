"""The policy file's validation, and `async-service new` under a policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from async_service.cli import app
from tests.fleet_fixtures import FleetPaths, git, shared_fleet, write_policy

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> FleetPaths:
    return shared_fleet(tmp_path_factory.getbasetemp() / "cli-fleet")


def cli(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--cache-dir", str(tmp_path / "cache")])


def answers(dest: Path) -> dict[str, object]:
    loaded = yaml.safe_load((dest / ".copier-answers.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_new_applies_fixed_answers_and_policy_defaults(fleet: FleetPaths, tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy.toml", fleet.template)
    dest = tmp_path / "orders"
    result = cli(
        tmp_path, "new", str(dest), "--policy", str(policy), "--data", "project_name=orders"
    )
    assert result.exit_code == 0, result.output
    recorded = answers(dest)
    # ci is fixed (the template's default is github); database is the policy's default
    # (the template's is sqlite); the version is the newest release, not 2.1.0rc1.
    assert (recorded["ci"], recorded["database"], recorded["_commit"]) == (
        "gitlab",
        "postgresql",
        "2.0.0",
    )
    assert (dest / ".gitlab-ci.yml").is_file() and not (dest / "github-ci.yml").exists()


def test_new_data_overrides_a_policy_default(fleet: FleetPaths, tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy.toml", fleet.template)
    dest = tmp_path / "orders"
    result = cli(
        tmp_path, "new", str(dest), "--policy", str(policy), "-d", "database=sqlite", "--json"
    )
    assert result.exit_code == 0, result.output
    reported = json.loads(result.stdout)["answers"]
    # Every answer the service records, defaults included, not only the ones given.
    assert reported == {key: value for key, value in answers(dest).items() if key[0] != "_"}
    assert (reported["database"], reported["ci"], reported["project_name"]) == (
        "sqlite",
        "gitlab",
        answers(dest)["project_name"],
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("ci=github", "refused: ci=github contradicts policy.toml [answers.fixed] ci = gitlab"),
        (
            "database=mongodb",
            "refused: database=mongodb is forbidden by policy.toml [answers.forbidden]",
        ),
    ],
)
def test_new_refuses_an_answer_that_breaks_the_policy_and_writes_nothing(
    fleet: FleetPaths, tmp_path: Path, data: str, reason: str
) -> None:
    policy = write_policy(tmp_path / "policy.toml", fleet.template)
    dest = tmp_path / "orders"
    result = cli(tmp_path, "new", str(dest), "--policy", str(policy), "--data", data)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [reason, f"nothing was written to {dest}"]
    assert not dest.exists()


def test_new_refuses_a_version_outside_the_policy_range(fleet: FleetPaths, tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy.toml", fleet.template, versions=">=1.0,<2")
    dest = tmp_path / "orders"
    result = cli(tmp_path, "new", str(dest), "--policy", str(policy), "--version", "2.0.0")
    assert result.exit_code == 1
    assert (
        "refused: version 2.0.0 is outside policy.toml [template] versions <2,>=1.0"
        in result.stderr
    )
    assert not dest.exists()
    # Without --version: the newest release inside the range.
    assert cli(tmp_path, "new", str(dest), "--policy", str(policy)).exit_code == 0
    assert answers(dest)["_commit"] == "1.1.0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--data", "cii=gitlab"],
            "error: --data cii: unknown question; the template asks: project_name, ci, database",
        ),
        (
            ["--data", "database=oracle"],
            "error: --data database: 'oracle' is not one of the question's choices: postgresql, sqlite, mongodb",
        ),
        (["--data", "ci"], "error: --data 'ci': expected QUESTION=VALUE"),
        (
            ["--version", "9.9.9"],
            "error: unknown template version 9.9.9 (the template has: 1.0.0, 1.1.0, 2.0.0, 2.1.0rc1)",
        ),
    ],
)
def test_new_bad_input_is_exit_2_and_writes_nothing(
    fleet: FleetPaths, tmp_path: Path, args: list[str], message: str
) -> None:
    policy = write_policy(tmp_path / "policy.toml", fleet.template)
    dest = tmp_path / "orders"
    result = cli(tmp_path, "new", str(dest), "--policy", str(policy), *args)
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert not dest.exists()


def test_new_refuses_a_destination_in_the_way(fleet: FleetPaths, tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy.toml", fleet.template)
    dest = tmp_path / "orders"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep\n")
    result = cli(tmp_path, "new", str(dest), "--policy", str(policy))
    assert result.exit_code == 2
    assert sorted(p.name for p in dest.iterdir()) == ["mine.txt"]


GOOD = """\
[template]
source = "{template}"
versions = ">=1.0"
[answers.fixed]
ci = "gitlab"
[answers.forbidden]
database = ["mongodb"]
"""


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        (
            "ci = ",
            "cii = ",
            "policy.toml: answers.fixed.cii: unknown question; the template asks: project_name, ci, database",
        ),
        (
            "[answers.fixed]",
            "[answer.fixed]",
            "policy.toml: answer: unknown section; allowed: template, answers, update",
        ),
        (
            "versions =",
            "version =",
            "policy.toml: template.version: unknown key; allowed: source, versions",
        ),
        (
            'versions = ">=1.0"',
            "versions = 1",
            "policy.toml: template.versions: must be a PEP 440 specifier string",
        ),
        (
            'versions = ">=1.0"',
            'versions = "1.0+"',
            "policy.toml: template.versions: '1.0+' is not a PEP 440 specifier (e.g. \">=1.0,<2\")",
        ),
        (
            '"gitlab"',
            '"jenkins"',
            "policy.toml: answers.fixed.ci: 'jenkins' is not one of the question's choices: github, gitlab",
        ),
        (
            '["mongodb"]',
            '"mongodb"',
            'policy.toml: answers.forbidden.database: must be a list of values, e.g. ["mongodb"]',
        ),
        (
            '["mongodb"]',
            '["mongo"]',
            "policy.toml: answers.forbidden.database: 'mongo' is not one of the question's choices: postgresql, sqlite, mongodb",
        ),
        (
            'ci = "gitlab"',
            'ci = "gitlab"\ndatabase = "mongodb"',
            "policy.toml: answers.fixed.database: 'mongodb' is also in [answers.forbidden]",
        ),
        (
            '["mongodb"]',
            '["mongodb"]\n[update]\nbranch = "tpl/{ver}"',
            "policy.toml: update.branch: 'tpl/{ver}': {version} is the only placeholder, not {ver}",
        ),
        (
            '["mongodb"]',
            '["mongodb"]\n[update]\nbranch = "bad..name/{version}"',
            "policy.toml: update.branch: 'bad..name/{version}': 'bad..name/1.0.0' is not a valid git branch name",
        ),
        (
            "[answers.fixed]",
            "[answers.fixed",
            "policy.toml: not valid toml: Expected ']' at the end of a table declaration (at line 4, column 15)",
        ),
    ],
)
def test_a_policy_typo_is_one_line_naming_the_key(
    fleet: FleetPaths, tmp_path: Path, replace: str, by: str, message: str
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD.format(template=fleet.template).replace(replace, by, 1))
    dest = tmp_path / "orders"
    for args in (["new", str(dest)], ["fleet", "status", str(fleet["current"])]):
        result = cli(tmp_path, *args, "--policy", str(policy))
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == f"error: {message}"
    assert not dest.exists()


def test_a_yaml_policy_reads_like_the_toml_one(fleet: FleetPaths, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(
        yaml.safe_dump(
            {
                "template": {"source": str(fleet.template)},
                "answers": {"fixed": {"ci": "gitlab"}, "forbidden": {"database": ["mongodb"]}},
            }
        )
    )
    result = cli(tmp_path, "new", str(tmp_path / "x"), "--policy", str(policy), "-d", "ci=github")
    assert result.exit_code == 1
    assert "refused: ci=github contradicts policy.yml [answers.fixed] ci = gitlab" in result.stderr


def test_the_real_template_under_a_policy(tmp_path: Path) -> None:
    """This repository's own template: refused without a write, then rendered (no tasks)."""
    template = tmp_path / "copier-async-service"
    git(tmp_path, "clone", "--quiet", str(ROOT), str(template))
    git(template, "tag", "99.0.0")  # a release of whatever HEAD is
    policy = tmp_path / "platform.toml"
    policy.write_text(
        f'[template]\nsource = "{template}"\n[answers.fixed]\nci = "gitlab"\n'
        '[answers.defaults]\ndatabase = "postgresql"\n'
        '[answers.forbidden]\ndatabase = ["mongodb"]\nhttp_client = ["aiohttp"]\n'
    )
    dest = tmp_path / "orders"
    refused = cli(tmp_path, "new", str(dest), "--policy", str(policy), "-d", "database=mongodb")
    assert refused.exit_code == 1
    assert "database=mongodb is forbidden by platform.toml [answers.forbidden]" in refused.stderr
    assert not dest.exists()

    made = cli(tmp_path, "new", str(dest), "--policy", str(policy), "--skip-tasks")
    assert made.exit_code == 0, made.output
    recorded = answers(dest)
    assert (recorded["ci"], recorded["database"], recorded["_commit"]) == (
        "gitlab",
        "postgresql",
        "99.0.0",
    )
    assert (dest / ".gitlab-ci.yml").is_file()


@pytest.mark.parametrize("command", [["new"], ["fleet", "status"], ["fleet", "update"]])
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert f"Example: async-service {' '.join(command)} " in " ".join(result.stdout.split())
