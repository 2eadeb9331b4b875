"""``history.md``: how a run folder was made, rendered from its store: every command that
changed the store (its command line, code, machine, times, exit status and rows), and the rows
stored by no recorded command, grouped by day, stage, commit and machine."""

from __future__ import annotations

import datetime
import shlex
from pathlib import Path
from typing import Any

import pandas as pd

from bench.provenance import cpu_of
from bench.render.format import atomic_write, fmt_int, fmt_text, markdown
from bench.store import Store

COMMAND_COLUMNS = [
    ("started", "started (UTC)", fmt_text),
    ("took", "took", fmt_text),
    ("command", "command", fmt_text),
    ("commit", "commit", fmt_text),
    ("machine", "machine", fmt_text),
    ("exit", "exit", fmt_int),
    ("rows_written", "rows written", fmt_int),
    ("rows_deleted", "rows deleted", fmt_int),
]
EARLIER_COLUMNS = [
    ("day", "day (UTC)", fmt_text),
    ("stage", "stage", fmt_text),
    ("commit", "commit", fmt_text),
    ("machine", "machine", fmt_text),
    ("rows", "rows", fmt_int),
]


def _commit(provenance: dict[str, Any]) -> str:
    sha = (provenance.get("git_sha") or "unknown")[:8]
    return sha + (" (uncommitted changes)" if provenance.get("git_dirty") else "")


def _machine(provenance: dict[str, Any]) -> str:
    device = provenance["device"]
    return cpu_of(provenance) if device == "cpu" else device


def _took(started: str, ended: str) -> str:
    seconds = (
        datetime.datetime.fromisoformat(ended) - datetime.datetime.fromisoformat(started)
    ).total_seconds()
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def write_history(store: Store, out_dir: Path) -> list[Path]:
    """``history.md``: the commands that made the run's store, and the rows no recorded
    command accounts for."""
    commands = store.commands()
    recorded = pd.DataFrame(
        [
            {
                "started": c["started"][:19].replace("T", " "),
                "took": _took(c["started"], c["ended"]),
                "command": f"`{shlex.join(c['argv'])}`",
                "commit": _commit(c["provenance"]),
                "machine": _machine(c["provenance"]),
                "exit": c["exit"],
                "rows_written": c["rows_written"],
                "rows_deleted": c["rows_deleted"],
            }
            for c in commands
        ],
        columns=[c for c, _, _ in COMMAND_COLUMNS],
    )
    unaccounted = [
        r
        for r in store.rows()
        if not any(c["started"] <= r["provenance"]["date"] <= c["ended"] for c in commands)
    ]
    earlier = pd.DataFrame(
        [
            {
                "day": r["provenance"]["date"][:10],
                "stage": r["stage"],
                "commit": _commit(r["provenance"]),
                "machine": _machine(r["provenance"]),
            }
            for r in unaccounted
        ],
        columns=["day", "stage", "commit", "machine"],
    )
    earlier = earlier.groupby(["day", "stage", "commit", "machine"], as_index=False).size()
    earlier = earlier.rename(columns={"size": "rows"})
    text = (
        "# How this run was made\n\n"
        "Rendered from the store: each command that wrote or deleted rows records itself "
        "there as it ends (an interrupted one too, with exit status 130).\n\n"
        "## Commands\n\n"
        + (markdown(recorded, COMMAND_COLUMNS) if commands else "No command is recorded.")
        + "\n"
    )
    if not earlier.empty:
        text += (
            "\n## Rows stored by no recorded command\n\n"
            "Rows written before the store recorded its commands, by day, stage, commit and "
            "machine (each row's own provenance).\n\n" + markdown(earlier, EARLIER_COLUMNS) + "\n"
        )
    written = out_dir / "history.md"
    atomic_write(written, text)
    return [written]
