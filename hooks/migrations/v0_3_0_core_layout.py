"""Template 0.3.0 migration: the template's code moved into `src/<package>/core/`, and
`app.py` and `settings.py` became the service's own files (created once, never updated).

Left alone, `copier update` would delete every moved file together with the owner's edits
of it, and keep the old `app.py` and `settings.py` (they are `_skip_if_exists` now), which
import modules that no longer exist. This migration:

- before the update (`before SRC VERSION_FROM`): renders the service's current template
  version to get each file's base. A moved file the owner edited is set aside (base and
  owner's version, inside .git) and its base is put back, so Copier simply removes it. The
  old `app.py` and `settings.py` are set aside and removed, so Copier writes the new ones;
- after the update (`after`): merges the owner's edits of each moved file into its new
  place (`git merge-file`, conflicts marked, nothing dropped), and carries the owner's
  additions to the old `app.py` (router imports and `include_router` lines) and
  `settings.py` (fields of `Settings`) into the new files. Anything else the owner changed
  there is merged with conflict markers for the owner to resolve.

Standard library only, run by Copier with its own interpreter in the service's directory,
only when updating from a version below 0.3.0 (copier.yml `_migrations`).
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from _migration import ANSWERS, Migration, git, merge_file

MIGRATION = Migration("0.3.0")
# Paths relative to src/<package>/: where each module of 0.2.x went.
MOVES = {
    **{
        f"{name}.py": f"core/{name}.py"
        for name in (
            "background",
            "cli",
            "concurrency",
            "deps",
            "errors",
            "fanout",
            "health",
            "http",
            "lifespan",
            "logs",
            "middleware",
            "request_context",
            "resources",
            "upstream",
        )
    },
    **{
        f"db/{name}.py": f"core/db/{name}.py"
        for name in ("__init__", "commands", "engine", "migrate", "mongo", "sql")
    },
    "items/dependencies.py": "items/deps.py",
    "items/repository_pg.py": "items/reader_pg.py",
}
# Same path, new role: the service's own composition and settings.
OWNED = ("app.py", "settings.py")
# Names that left their 0.2.x module for another one than the module's own new place
# (module -> name -> new module); every other name follows its module (MOVES).
NAMES = {
    "deps": {
        **dict.fromkeys(
            ("SessionDep", "ReadSessionDep", "unit_of_work", "read_only_session"), "core.db.sql"
        ),
        **dict.fromkeys(("MongoDatabaseDep", "get_mongo_database"), "core.db.mongo"),
        **dict.fromkeys(
            ("HttpClientDep", "UpstreamDep", "get_http_client", "get_upstream"), "core.upstream"
        ),
        "SettingsDep": "settings",
    },
    "settings": dict.fromkeys(("load_settings", "SettingsError", "ENV_PREFIX"), "core.settings"),
}
# `from <package>.<module> import a, b as c`, on one line or in parentheses.
FROM_IMPORT = re.compile(
    r"^from (?P<package>\w+)\.(?P<module>[\w.]+) import (?P<names>\([^)]*\)|[^\n]+)$", re.MULTILINE
)
IMPORT = re.compile(r"^(from \S+ import .+|import \S+)$")
INCLUDE_ROUTER = re.compile(r"^\s+app\.include_router\((\w+)\)\s*$")
FIELD = re.compile(r"^    (\w+: .+|# .*)$")


def package_of(project: Path) -> str:
    for line in (project / ANSWERS).read_text().splitlines():
        if line.startswith("package_name:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    msg = f"no package_name in {ANSWERS}"
    raise SystemExit(msg)


def before(project: Path, data_dir: Path, src: str, version_from: str) -> str:
    shutil.rmtree(data_dir, ignore_errors=True)
    package = package_of(project)
    code = project / "src" / package
    with tempfile.TemporaryDirectory(prefix="copier-migration-0.3.0-") as tmp:
        base_root = Path(tmp) / "base"
        base_root.mkdir()
        rendered = MIGRATION.render(project, src, version_from, base_root)
        base_code = base_root / "src" / package
        kept: dict[str, str] = {}  # old path -> "edited" (set aside) or "removed"
        for old in [*MOVES, *OWNED]:
            path = code / old
            if not path.is_file():
                continue
            base_file = base_code / old
            base = base_file.read_text() if rendered and base_file.is_file() else ""
            owned = path.read_text()
            if owned != base:
                stash = data_dir / old
                stash.parent.mkdir(parents=True, exist_ok=True)
                stash.with_name(stash.name + ".base").write_text(base)
                stash.with_name(stash.name + ".owner").write_text(owned)
                kept[old] = "edited"
            relative = str(path.relative_to(project))
            if old in OWNED:
                # Gone from the tree and the index: Copier writes the service's new file.
                git(project, "rm", "--cached", "--quiet", "--", relative)
                path.unlink()
                kept.setdefault(old, "removed")
            elif owned != base:
                # The base in tree and index: no change of the owner's for Copier to carry
                # into a file the new version no longer has; it removes it.
                path.write_text(base)
                git(project, "add", "--", relative)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "kept.json").write_text(json.dumps({"package": package, "files": kept}))
    edited = sorted(old for old, state in kept.items() if state == "edited")
    if not edited:
        return "no edits of the moved files to carry over"
    return f"set aside your edits of {', '.join(edited)} to carry them over"


def added_lines(base: str, owned: str) -> list[str] | None:
    """The lines the owner added, or None if the owner also removed or changed some."""
    added = []
    for line in difflib.ndiff(base.splitlines(), owned.splitlines()):
        if line.startswith("- "):
            return None
        if line.startswith("+ ") and line[2:].strip():
            added.append(line[2:])
    return added


def with_imports(text: str, imports: list[str], package: str) -> str:
    """`imports` added to the file's import blocks, as isort would place them: the
    package's own in the last block, the others in the block before it."""
    lines = text.splitlines()
    blocks: list[list[int]] = []
    for i, line in enumerate(lines):
        if IMPORT.match(line):
            if blocks and blocks[-1][-1] == i - 1:
                blocks[-1].append(i)
            else:
                blocks.append([i])
    if len(blocks) < 2:
        return "\n".join(imports + lines) + "\n"
    targets = {True: blocks[-1], False: blocks[-2]}
    additions: dict[bool, list[str]] = {True: [], False: []}
    for line in imports:
        additions[line.split(" ")[1].split(".")[0] == package].append(line)
    for own in (True, False):  # the last block first: indexes before it stay valid
        block = targets[own]
        merged = sorted(
            {lines[i] for i in block} | set(additions[own]), key=lambda line: line.split(" ")[1]
        )
        lines[block[0] : block[-1] + 1] = merged
    return "\n".join(lines) + "\n"


def carry_app(base: str, owned: str, new: str, package: str) -> str | None:
    """The owner's routers in the new app.py; None when the edit is more than that."""
    added = added_lines(base, owned)
    if added is None:
        return None
    imports, routers = [], []
    for line in added:
        if IMPORT.match(line):
            imports.append(line)
        elif match := INCLUDE_ROUTER.match(line):
            routers.append(match.group(1))
        else:
            return None
    listed = re.search(r"routers=\[(.*)\]", new)
    if listed is None:
        return None
    names = [name.strip() for name in listed.group(1).split(",") if name.strip()]
    names += [name for name in routers if name not in names]
    new = new[: listed.start(1)] + ", ".join(names) + new[listed.end(1) :]
    return with_imports(new, imports, package)


def carry_settings(base: str, owned: str, new: str, package: str) -> str | None:
    """The owner's fields in the new Settings class; None when the edit is more than that."""
    added = added_lines(base, owned)
    if added is None:
        return None
    imports = [line for line in added if IMPORT.match(line)]
    fields = [line for line in added if line not in imports]
    if not all(FIELD.match(line) for line in fields):
        return None
    anchor = re.search(r'^class Settings\([^)]*\):\n    """.*?"""\n', new, re.DOTALL | re.MULTILINE)
    if anchor is None:
        return None
    new = new[: anchor.end()] + "\n" + "\n".join(fields) + "\n" + new[anchor.end() :]
    if any("Field(" in line for line in fields) and "import Field" not in new:
        imports.append("from pydantic import Field")
    return with_imports(new, imports, package) if imports else new


def new_module(module: str, name: str) -> str:
    """Where `name`, imported from the 0.2.x module `module`, lives from 0.3.0 on."""
    if name in NAMES.get(module, {}):
        return NAMES[module][name]
    moved = MOVES.get(f"{module.replace('.', '/')}.py")
    return moved.removesuffix(".py").replace("/", ".") if moved else module


def import_line(package: str, module: str, names: list[str]) -> str:
    """One import as ruff formats it: names ordered by type, wrapped past 100 columns."""
    ordered = sorted(
        set(names), key=lambda n: (0 if n.isupper() else 1 if n[:1].isupper() else 2, n)
    )
    line = f"from {package}.{module} import {', '.join(ordered)}"
    if len(line) <= 100:
        return line
    return f"from {package}.{module} import (\n" + "".join(f"    {n},\n" for n in ordered) + ")"


def rewrite_imports(text: str, package: str) -> str:
    """`from <package>.<moved module> import ...` pointed at the modules' new places, the
    package's own import block merged and sorted again as ruff's isort rules want it."""
    found = list(FROM_IMPORT.finditer(text))
    own = [m for m in found if m["package"] == package]
    if not any(
        new_module(m["module"], name) != m["module"]
        for m in own
        for name in import_names(m["names"])
    ):
        return text
    # The package's imports form one block (isort); rebuild it where its first line was.
    targets: dict[str, list[str]] = {}
    for match in own:
        for name in import_names(match["names"]):
            target = new_module(match["module"], name.split(" as ")[0])
            targets.setdefault(target, []).append(name)
    block = "\n".join(import_line(package, t, names) for t, names in sorted(targets.items()))
    first, last = own[0], own[-1]
    between = text[first.start() : last.end()]
    for match in own:
        between = between.replace(match[0], "", 1)
    if not between.strip():
        return text[: first.start()] + block + text[last.end() :]
    # Not one block (something else sits between them): each import rewritten in place.
    MIGRATION.note("imports of moved modules rewritten where they were: run `ruff check --fix`")

    def in_place(match: re.Match[str]) -> str:
        if match["package"] != package:
            return match[0]
        moved: dict[str, list[str]] = {}
        for name in import_names(match["names"]):
            moved.setdefault(new_module(match["module"], name.split(" as ")[0]), []).append(name)
        return "\n".join(import_line(package, t, names) for t, names in sorted(moved.items()))

    return FROM_IMPORT.sub(in_place, text)


def import_names(names: str) -> list[str]:
    return [n.strip() for n in names.strip("()").replace("\n", " ").split(",") if n.strip()]


def rewrite_owner_imports(project: Path, package: str) -> list[str]:
    """Point the owner's own modules and tests at the new places; the paths changed."""
    changed = []
    for root in (project / "src" / package, project / "tests"):
        for path in sorted(root.rglob("*.py")) if root.is_dir() else []:
            if "core" in path.relative_to(project).parts:
                continue
            text = path.read_text()
            rewritten = rewrite_imports(text, package)
            if rewritten != text:
                path.write_text(rewritten)
                changed.append(str(path.relative_to(project)))
    return changed


def after(project: Path, data_dir: Path) -> str:
    manifest = data_dir / "kept.json"
    if not manifest.is_file():
        return "nothing to carry over"
    kept = json.loads(manifest.read_text())
    code = project / "src" / kept["package"]
    done, conflicts = [], []
    for old, state in sorted(kept["files"].items()):
        # What before() staged is no change of the owner's: leave the update unstaged.
        git(project, "reset", "--quiet", "--", str((code / old).relative_to(project)))
        if state != "edited":
            continue
        base_file = data_dir / f"{old}.base"
        owner_file = data_dir / f"{old}.owner"
        new_path = code / (old if old in OWNED else MOVES[old])
        if not new_path.is_file():
            MIGRATION.note(
                f"{new_path.relative_to(project)} is not rendered any more; git keeps {old}"
            )
            continue
        carry = {"app.py": carry_app, "settings.py": carry_settings}.get(old)
        base, owned = base_file.read_text(), owner_file.read_text()
        carried = carry(base, owned, new_path.read_text(), kept["package"]) if carry else None
        if carried is not None:
            new_path.write_text(carried)
            done.append(f"{old} -> {new_path.relative_to(code)}")
            continue
        count = merge_file(owner_file, base_file, new_path)
        shutil.copyfile(owner_file, new_path)
        (conflicts if count else done).append(f"{old} -> {new_path.relative_to(code)}")
    shutil.rmtree(data_dir)
    rewritten = rewrite_owner_imports(project, kept["package"])
    message = f"carried your edits over: {', '.join(done) or 'none'}"
    if rewritten:
        message += f"; pointed imports at the new modules in: {', '.join(rewritten)}"
    if conflicts:
        message += f"; resolve the conflict markers in: {', '.join(conflicts)}"
    return message


if __name__ == "__main__":
    sys.exit(MIGRATION.main(sys.argv[1:], before, after))
