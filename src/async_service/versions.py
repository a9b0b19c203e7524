"""Template versions: PEP 440 tags, how far behind a service is, CHANGELOG headings in between."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

# `## 1.2.0`, `## [1.2.0] - 2026-01-01`, `## v1.2.0 (date)`: the version is the first token.
_HEADING = re.compile(r"^##\s+\[?v?(?P<version>[0-9][^\s\]]*)\]?(?P<rest>.*)$")


def parse(value: str) -> Version | None:
    try:
        return Version(value)
    except InvalidVersion:
        return None


def parse_recorded(commit: str) -> Version | None:
    """The version in an answers file's `_commit`: a tag, or `git describe` output past one.

    Copier records `1.1.0-3-gabc1234` for a commit three past tag 1.1.0; PEP 440 reads that as
    a post-release, so strip the describe suffix and count it as 1.1.0.
    """
    exact = parse(commit)
    if exact is not None:
        return exact
    match = re.fullmatch(r"(?P<tag>.+)-\d+-g[0-9a-f]+", commit)
    return parse(match["tag"]) if match else None


def tagged_versions(tags: Iterable[str], prereleases: bool) -> dict[Version, str]:
    """PEP 440 version -> tag name, sorted ascending; other tags are ignored."""
    found: dict[Version, str] = {}
    for tag in tags:
        version = parse(tag)
        if version is None or (version.is_prerelease and not prereleases):
            continue
        # `v1.0.0` and `1.0.0` on one commit: keep the first spelling seen.
        found.setdefault(version, tag)
    return dict(sorted(found.items()))


def latest(
    versions: Iterable[Version], specifier: SpecifierSet | None = None, prereleases: bool = False
) -> Version | None:
    allowed = [
        v
        for v in versions
        if specifier is None or specifier.contains(v, prereleases=prereleases or None)
    ]
    return max(allowed, default=None)


def behind(recorded: Version, versions: Iterable[Version], newest: Version) -> int:
    """How many released versions are newer than `recorded`, up to and including `newest`."""
    return sum(1 for v in versions if recorded < v <= newest)


def changelog_headings(changelog: str, after: Version, upto: Version) -> list[str]:
    """The `## X.Y.Z` headings for versions in (after, upto], as written, newest first."""
    headings: list[tuple[Version, str]] = []
    for line in changelog.splitlines():
        match = _HEADING.match(line.strip())
        if not match:
            continue
        version = parse(match["version"])
        if version is not None and after < version <= upto:
            headings.append((version, line.strip().lstrip("#").strip()))
    return [text for _, text in sorted(headings, key=lambda item: item[0], reverse=True)]


def changelog_sections(changelog: str, after: Version, upto: Version) -> list[str]:
    """The sections (heading and entries) for versions in (after, upto], newest first."""
    sections: list[tuple[Version, str]] = []
    current: tuple[Version, list[str]] | None = None
    for line in [*changelog.splitlines(), "## end"]:
        if line.startswith("## "):
            if current is not None:
                sections.append((current[0], "\n".join(current[1]).strip()))
            match = _HEADING.match(line.strip())
            version = parse(match["version"]) if match else None
            in_range = version is not None and after < version <= upto
            current = (version, [line.strip()]) if in_range and version is not None else None
        elif current is not None:
            current[1].append(line)
    return [text for _, text in sorted(sections, key=lambda item: item[0], reverse=True)]


def format_versions(versions: Sequence[Version]) -> str:
    return ", ".join(str(v) for v in versions)
