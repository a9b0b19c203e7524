"""Tables for people (rich), JSON for scripts, one `error:` line per failing repository."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .status import RepoStatus
from .update import UpdateResult

_RESULT_STYLE = {
    "updated": "green",
    "up-to-date": "dim",
    "conflicts": "yellow",
    "failed": "red",
}


def console() -> Console:
    found = Console(highlight=False)
    if found.is_terminal or "COLUMNS" in os.environ:
        return found
    # A CI log or a pipe: wide enough that a repository path is not folded into two rows.
    return Console(width=160, highlight=False)


def print_json(items: Sequence[dict[str, Any]]) -> None:
    sys.stdout.write(json.dumps(list(items), indent=2) + "\n")


def error_lines(lines: Sequence[str]) -> None:
    for line in lines:
        sys.stderr.write(f"error: {line}\n")


def status_table(rows: Sequence[RepoStatus]) -> None:
    table = Table(title="Fleet status", title_justify="left")
    for column in ("repository", "version", "latest", "behind", "policy", "drift", "changelog"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if row.skipped:
            table.add_row(
                escape(row.repo), "[dim]skipped[/]", "", "", "", "", escape(row.note or "")
            )
            continue
        if row.error:
            table.add_row(
                escape(row.repo), "[red]error[/]", "", "", "", "", f"[red]{escape(row.error)}[/]"
            )
            continue
        behind = "" if row.behind is None else str(row.behind)
        if row.behind:
            behind = f"[yellow]{behind}[/]"
        policy = "\n".join(f"[red]{escape(v)}[/]" for v in row.policy_violations) or "[green]ok[/]"
        drift = "\n".join(
            escape(f"{f.path} {'deleted' if f.deleted else f'+{f.added} -{f.removed}'}")
            for f in row.drifted_files
        )
        changelog = escape(", ".join(row.changelog))
        if row.note:
            note = f"[dim]{escape(row.note)}[/]"
            changelog = f"{changelog}\n{note}" if changelog else note
        table.add_row(
            escape(row.repo),
            row.template_version or "",
            row.latest_version or "",
            behind,
            policy,
            drift or "[green]none[/]",
            changelog,
        )
    console().print(table)


def update_table(rows: Sequence[UpdateResult]) -> None:
    table = Table(title="Fleet update", title_justify="left")
    for column in ("repository", "result", "from", "to", "branch", "tests", "details"):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = _RESULT_STYLE[row.result]
        details = [row.error or "", *(f"conflict: {p}" for p in row.conflicted_files)]
        details = [escape(d) for d in details]
        if row.pushed:
            details.append("pushed to origin")
        if row.note:
            details.append(escape(row.note))
        table.add_row(
            escape(row.repo),
            f"[{style}]{row.result}[/]",
            row.from_version or "",
            row.to_version or "",
            escape(row.branch or ""),
            row.tests,
            "\n".join(d for d in details if d),
        )
    console().print(table)
