"""The platform policy file: schema, strict validation, and checking answers against it."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from . import git
from .template import Question, is_url

# The whole schema: section -> key -> what the value must be (answers.* take question names).
_SCHEMA: dict[str, dict[str, str]] = {
    "template": {"source": "a string", "versions": "a PEP 440 specifier string"},
    "answers": {
        "fixed": "a table of question = value",
        "defaults": "a table of question = value",
        "forbidden": "a table of question = [values]",
    },
    "update": {"test_command": "a string", "branch": "a string"},
}
_SCALARS = (str, int, float, bool)


class PolicyError(Exception):
    """The policy file is unreadable or breaks the schema; the message names the key path."""


@dataclass(frozen=True)
class Policy:
    path: Path
    source: str | None = None
    versions: SpecifierSet | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    forbidden: dict[str, list[Any]] = field(default_factory=dict)
    test_command: str | None = None
    branch: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def error(self, key: str, problem: str) -> PolicyError:
        return PolicyError(f"{self.name}: {key}: {problem}")

    def validate_questions(self, questions: Mapping[str, Question]) -> None:
        """Every answer the policy names is a question of the template, with a possible value."""
        asked = ", ".join(questions) or "(no questions)"
        for section, table in (("fixed", self.fixed), ("defaults", self.defaults)):
            for name, value in table.items():
                key = f"answers.{section}.{name}"
                if name not in questions:
                    raise self.error(key, f"unknown question; the template asks: {asked}")
                if problem := questions[name].check(value):
                    raise self.error(key, problem)
                if value in self.forbidden.get(name, []):
                    raise self.error(key, f"{value!r} is also in [answers.forbidden]")
        for name, values in self.forbidden.items():
            key = f"answers.forbidden.{name}"
            if name not in questions:
                raise self.error(key, f"unknown question; the template asks: {asked}")
            for value in values:
                if problem := questions[name].check(value):
                    raise self.error(key, problem)

    def violations(self, answers: Mapping[str, Any], version: Version | None) -> list[str]:
        """How recorded answers (and version) break the policy, one sentence each."""
        found: list[str] = []
        for name, wanted in self.fixed.items():
            if name in answers and answers[name] != wanted:
                found.append(
                    f"{name}={_show(answers[name])}, but {self.name} [answers.fixed] "
                    f"requires {_show(wanted)}"
                )
        for name, values in self.forbidden.items():
            chosen = answers.get(name)
            chosen_list = chosen if isinstance(chosen, list) else [chosen]
            for value in chosen_list:
                if value in values:
                    found.append(
                        f"{name}={_show(value)} is forbidden by {self.name} [answers.forbidden]"
                    )
        spec = self.versions
        if (
            spec is not None
            and version is not None
            and not spec.contains(version, prereleases=True)
        ):
            found.append(
                f"template version {version} is outside {self.name} "
                f"[template] versions {self.versions}"
            )
        return found

    def refuse(self, data: Mapping[str, Any]) -> list[str]:
        """Why answers given for a new service break the policy (fixed or forbidden rules)."""
        found: list[str] = []
        for name, value in data.items():
            if name in self.fixed and value != self.fixed[name]:
                found.append(
                    f"{name}={_show(value)} contradicts {self.name} [answers.fixed] "
                    f"{name} = {_show(self.fixed[name])}"
                )
            values = value if isinstance(value, list) else [value]
            if any(v in self.forbidden.get(name, []) for v in values):
                found.append(
                    f"{name}={_show(value)} is forbidden by {self.name} [answers.forbidden]"
                )
        return found


def _show(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _table(parent: Mapping[str, Any], key: str, path: str, name: str) -> dict[str, Any]:
    value = parent.get(key, {})
    if not isinstance(value, dict):
        raise PolicyError(f"{name}: {path}: must be a table, got {type(value).__name__}")
    return value


def load(path: Path) -> Policy:
    """Read and structurally validate a policy file (TOML, or YAML for .yml/.yaml)."""
    name = path.name
    try:
        text = path.read_text()
    except OSError as error:
        raise PolicyError(f"{path}: cannot read ({error.strerror})") from None
    try:
        if path.suffix in {".yml", ".yaml"}:
            raw = yaml.safe_load(text) or {}
        else:
            raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        first = str(error).splitlines()[0]
        raise PolicyError(
            f"{name}: not valid {path.suffix.lstrip('.') or 'TOML'}: {first}"
        ) from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{name}: must be a table of sections")

    for section, value in raw.items():
        if section not in _SCHEMA:
            raise PolicyError(f"{name}: {section}: unknown section; allowed: {', '.join(_SCHEMA)}")
        table = _table(raw, section, section, name)
        for key in table:
            if key not in _SCHEMA[section]:
                allowed = ", ".join(_SCHEMA[section])
                raise PolicyError(f"{name}: {section}.{key}: unknown key; allowed: {allowed}")

    template = _table(raw, "template", "template", name)
    answers = _table(raw, "answers", "answers", name)
    update = _table(raw, "update", "update", name)
    strings: dict[str, str | None] = {}
    for section, table, key in (
        ("template", template, "source"),
        ("template", template, "versions"),
        ("update", update, "test_command"),
        ("update", update, "branch"),
    ):
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            raise PolicyError(f"{name}: {section}.{key}: must be {_SCHEMA[section][key]}")
        strings[key] = value
    if strings["branch"] is not None:
        problem = git.branch_template_problem(strings["branch"])
        if problem is not None:
            raise PolicyError(f"{name}: update.branch: {problem}")
    specifier = None
    if strings["versions"] is not None:
        try:
            specifier = SpecifierSet(strings["versions"])
        except InvalidSpecifier:
            raise PolicyError(
                f"{name}: template.versions: {strings['versions']!r} is not a PEP 440 "
                'specifier (e.g. ">=1.0,<2")'
            ) from None

    tables: dict[str, dict[str, Any]] = {}
    for key in ("fixed", "defaults", "forbidden"):
        table = _table(answers, key, f"answers.{key}", name)
        for question, value in table.items():
            where = f"{name}: answers.{key}.{question}"
            if key == "forbidden":
                if not isinstance(value, list) or not all(isinstance(v, _SCALARS) for v in value):
                    raise PolicyError(f'{where}: must be a list of values, e.g. ["mongodb"]')
            elif not isinstance(value, (*_SCALARS, list)):
                raise PolicyError(f"{where}: must be a string, number, boolean or list")
        tables[key] = table
    both = sorted(set(tables["fixed"]) & set(tables["defaults"]))
    if both:
        raise PolicyError(
            f"{name}: answers.defaults.{both[0]}: also in [answers.fixed]; a question is "
            "either fixed or defaulted"
        )
    source = strings["source"]
    if source is not None and not is_url(source):
        # A local template path is relative to the policy file, wherever the CLI runs.
        source = str((path.parent / source).expanduser().resolve())
    return Policy(
        path=path,
        source=source,
        versions=specifier,
        fixed=tables["fixed"],
        defaults=tables["defaults"],
        forbidden=tables["forbidden"],
        test_command=strings["test_command"],
        branch=strings["branch"],
    )
