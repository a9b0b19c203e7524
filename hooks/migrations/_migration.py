"""What every versioned migration needs: its notes, git, the service's answers rendered at
an older template version, a three-way merge, and the before/after entry point.

Copier runs each migration script as a file with its own interpreter, so this module sits
beside them and is imported by name (the script's folder is first on sys.path). Standard
library only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ANSWERS = ".copier-answers.yml"


class Migration:
    """One template version's migration: `before` and `after` return the note to print."""

    def __init__(self, version: str) -> None:
        self.version = version

    def note(self, message: str) -> None:
        print(f"migration {self.version}: {message}", file=sys.stderr)

    def render(self, project: Path, src: str, version: str, into: Path) -> bool:
        """The service's answers rendered at `version` into `into`; False (with a note)
        if that fails."""
        # Copier takes the answers file found in the destination as the answers.
        shutil.copy2(project / ANSWERS, into / ANSWERS)
        result = subprocess.run(
            [sys.executable, "-m", "copier", "copy", "--defaults", "--overwrite", "--skip-tasks"]
            + ["--quiet", "--trust", "--vcs-ref", version, src, str(into)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["no output"]
            self.note(f"could not render template {version} ({lines[-1]})")
        return result.returncode == 0

    def main(
        self,
        argv: list[str],
        before: Callable[[Path, Path, str, str], str],
        after: Callable[[Path, Path], str],
    ) -> int:
        """`before SRC VERSION_FROM` or `after`, run by Copier in the service's directory."""
        project = Path.cwd()
        # Inside the repository's git dir (also right for worktrees and subdirectory
        # projects), where Copier does not look: the owner's edits wait there.
        found = git(project, "rev-parse", "--git-path", f"copier-migration-{self.version}")
        if found.returncode != 0:
            self.note(f"not a git repository ({found.stderr.strip()}); nothing done")
            return 0
        data_dir = (project / found.stdout.strip()).resolve()
        if argv[0] == "before":
            self.note(before(project, data_dir, argv[1], argv[2]))
        else:
            self.note(after(project, data_dir))
        return 0


def git(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=False)


def merge_file(ours: Path, base: Path, theirs: Path) -> int:
    """Merge base -> ours into theirs, in place in `ours`, with Copier's own conflict
    labels and order; the number of conflicts."""
    merged = subprocess.run(
        ["git", "merge-file", "-L", "before updating", "-L", "last update"]
        + ["-L", "after updating", "--", str(ours), str(base), str(theirs)],
        capture_output=True,
        text=True,
        check=False,
    )
    if merged.returncode < 0 or merged.returncode > 127:
        msg = f"git merge-file failed: {merged.stderr.strip()}"
        raise RuntimeError(msg)
    return merged.returncode
