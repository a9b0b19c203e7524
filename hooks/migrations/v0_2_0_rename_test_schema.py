"""Template 0.2.0 migration: tests/test_migrations.py became tests/test_schema.py.

Left alone, `copier update` deletes a file that the new template no longer renders, even
when the service's owner edited it, and writes the new name fresh: the owner's edits would
silently disappear. This migration carries them over with a real three-way merge:

- before the update (`before SRC VERSION_FROM`): when the owner changed the file, render the
  service's template version (`copier copy` of VERSION_FROM with the service's answers, into
  a temporary directory) to get the base, keep base and owner's version inside .git (where
  Copier does not look), and put the base back in the service's working tree and
  index so Copier sees nothing to merge in the old file and simply removes it;
- after the update (`after`): merge the owner's change (base -> owner's version)
  into the newly rendered tests/test_schema.py with `git merge-file`; overlapping changes
  get conflict markers and a note, nothing is dropped.

Copier runs both stages with its own interpreter in the service's directory, only when
updating from a version below 0.2.0 (copier.yml `_migrations`). Standard library only; the
base is rendered by running Copier's own CLI with that same interpreter.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

OLD = "tests/test_migrations.py"
NEW = "tests/test_schema.py"
ANSWERS = ".copier-answers.yml"


def note(message: str) -> None:
    print(f"migration 0.2.0: {message}", file=sys.stderr)


def git(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=False)


def render_base(project: Path, src: str, version_from: str) -> str | None:
    """OLD as the service's current template version rendered it (None if that fails)."""
    with tempfile.TemporaryDirectory(prefix="copier-migration-0.2.0-") as tmp:
        # Copier takes the answers file found in the destination as the answers.
        shutil.copy2(project / ANSWERS, Path(tmp) / ANSWERS)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "copier",
                "copy",
                "--defaults",
                "--overwrite",
                "--skip-tasks",
                "--quiet",
                "--trust",
                "--vcs-ref",
                version_from,
                src,
                tmp,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        base = Path(tmp) / OLD
        if result.returncode != 0 or not base.is_file():
            lines = result.stderr.strip().splitlines() or ["no file rendered"]
            note(f"could not render template {version_from} ({lines[-1]})")
            return None
        return base.read_text()


def before(project: Path, data_dir: Path, src: str, version_from: str) -> str:
    old = project / OLD
    shutil.rmtree(data_dir, ignore_errors=True)
    if not old.is_file():
        return f"no {OLD} (no SQL database); nothing to move"
    base = render_base(project, src, version_from)
    if base is None:
        # No base: move the file so Copier merges into the new name with an empty base;
        # edits survive, possibly inside conflict markers.
        git(project, "mv", "--", OLD, NEW)
        return f"moved {OLD} -> {NEW}; check it for conflict markers"
    owned = old.read_text()
    if owned == base:
        return f"{OLD} unchanged since generation; the update replaces it with {NEW}"
    data_dir.mkdir(parents=True)
    (data_dir / "base.py").write_text(base)
    (data_dir / "owner.py").write_text(owned)
    old.write_text(base)
    git(project, "add", "--", OLD)
    return f"kept your edits of {OLD} aside to merge them into {NEW} after the update"


def after(project: Path, data_dir: Path) -> str:
    if not (data_dir / "owner.py").is_file():
        return "nothing to merge"
    # The base staged before the update is no change of the owner's: leave the old file's
    # deletion unstaged like the rest of the update, for the owner to review.
    git(project, "reset", "--quiet", "--", OLD)
    new = project / NEW
    if not new.is_file():
        shutil.rmtree(data_dir)
        return f"{NEW} is not rendered any more (no SQL database); git history keeps {OLD}"
    # Into the owner's version, with Copier's own conflict labels and order.
    ours = data_dir / "owner.py"
    merged = subprocess.run(
        [
            "git",
            "merge-file",
            "-L",
            "before updating",
            "-L",
            "last update",
            "-L",
            "after updating",
            "--",
            str(ours),
            str(data_dir / "base.py"),
            str(new),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if merged.returncode < 0 or merged.returncode > 127:
        return f"git merge-file failed ({merged.stderr.strip()}); your edits are in {data_dir}"
    shutil.copyfile(ours, new)
    shutil.rmtree(data_dir)
    if merged.returncode:
        return (
            f"merged your edits of {OLD} into {NEW} with {merged.returncode} conflict(s) to resolve"
        )
    return f"merged your edits of {OLD} into {NEW}"


def main(argv: list[str]) -> int:
    project = Path.cwd()
    # Inside the repository's git dir (also right for worktrees and subdirectory projects).
    found = git(project, "rev-parse", "--git-path", "copier-migration-0.2.0")
    if found.returncode != 0:
        note(f"not a git repository ({found.stderr.strip()}); nothing done")
        return 0
    data_dir = (project / found.stdout.strip()).resolve()
    if argv[0] == "before":
        note(before(project, data_dir, src=argv[1], version_from=argv[2]))
    else:
        note(after(project, data_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
