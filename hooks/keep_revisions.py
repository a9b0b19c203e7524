"""After every update: an Alembic revision the new render lacks stays in the service.

`copier update --data example_resource=no` drops the template's items revision (0001) like
any file the new answers do not render, but a database that applied it, and every revision
the team wrote after it, still need it. Copier runs this as an unversioned `_migrations`
entry (copier.yml), in the service's directory. Standard library only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REVISIONS = "src/*/migrations/versions/*.py"


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    return result.stdout


def main() -> None:
    deleted = git("diff", "--name-only", "--diff-filter=D", "HEAD", "--", REVISIONS).split()
    # A service that no longer has a SQL database (no migrations/env.py) keeps none of them.
    kept = [path for path in deleted if (Path(path).parents[1] / "env.py").is_file()]
    if kept:
        git("checkout", "HEAD", "--", *kept)
        print(f"kept revisions the update removed: {', '.join(kept)}", file=sys.stderr)


if __name__ == "__main__":
    main()
