"""Template 0.2.0 migration (before the update): tests/test_migrations.py became
tests/test_schema.py.

Copier deletes a file that the new template version no longer renders, even when the
service's owner edited it. Moving the service's copy to the new name first, in the working
tree and the index (`git mv`), makes the update merge the new template's file into the
owner's version instead. Copier runs this with its own interpreter, in the service's
directory, only when updating from a version below 0.2.0. Standard library only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OLD = Path("tests/test_migrations.py")
NEW = Path("tests/test_schema.py")


def migrate(project: Path) -> str:
    old, new = project / OLD, project / NEW
    if not old.exists():
        return f"{OLD} not present (no SQL database, or already moved); nothing to do"
    if new.exists():
        return f"both {OLD} and {NEW} exist; left as they are: merge them by hand"
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(OLD)],
        cwd=project,
        capture_output=True,
        check=False,
    )
    if tracked.returncode == 0:
        subprocess.run(["git", "mv", str(OLD), str(NEW)], cwd=project, check=True)
    else:
        old.rename(new)
    return f"moved {OLD} -> {NEW}"


def main() -> int:
    print(f"migration 0.2.0: {migrate(Path.cwd())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
