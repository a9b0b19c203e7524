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
import sys
import tempfile
from pathlib import Path

from _migration import Migration, git, merge_file

OLD = "tests/test_migrations.py"
NEW = "tests/test_schema.py"
MIGRATION = Migration("0.2.0")


def render_base(project: Path, src: str, version_from: str) -> str | None:
    """OLD as the service's current template version rendered it (None if that fails)."""
    with tempfile.TemporaryDirectory(prefix="copier-migration-0.2.0-") as tmp:
        base = Path(tmp) / OLD
        if not MIGRATION.render(project, src, version_from, Path(tmp)):
            return None
        if not base.is_file():
            MIGRATION.note(f"could not render template {version_from} (no {OLD} rendered)")
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
    ours = data_dir / "owner.py"
    try:
        conflicts = merge_file(ours, data_dir / "base.py", new)
    except RuntimeError as error:
        return f"{error}; your edits are in {data_dir}"
    shutil.copyfile(ours, new)
    shutil.rmtree(data_dir)
    if conflicts:
        return f"merged your edits of {OLD} into {NEW} with {conflicts} conflict(s) to resolve"
    return f"merged your edits of {OLD} into {NEW}"


if __name__ == "__main__":
    sys.exit(MIGRATION.main(sys.argv[1:], before, after))
