"""``prune``: delete rows from a run's store, the one way rows leave a store; like every command
that changes a store it is recorded there, and the folder's pages are rendered again."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Any

from bench.console import plural
from bench.schema import FAILED, ROWS, Status
from bench.stages.common import AtRunFolder, Command, UsageError, option
from bench.store import Store


@dataclass(frozen=True)
class Settings(AtRunFolder):
    stage: str = option(None, "the stage whose rows go", choices=tuple(ROWS))
    models: str = option("*", "shell-style patterns of stored names, comma-separated")
    status: tuple[str, ...] = option(
        tuple(sorted(FAILED)), "the statuses of the rows that go", choices=tuple(Status), many=True
    )
    where: tuple[str, ...] = option(
        (), "KEY=VALUE: settings the rows' configuration holds (seed=1, batch_size=256)", many=True
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stage is None:
            raise UsageError("name the stage whose rows go: --stage")
        for pair in self.where:
            if "=" not in pair:
                raise UsageError(f"--where takes KEY=VALUE, got {pair!r}")

    def config(self) -> dict[str, Any]:
        """The settings of --where, each value as JSON reads it (a number, true) or else as
        the text given."""
        pairs = dict(pair.split("=", 1) for pair in self.where)
        return {key: _value(text) for key, text in pairs.items()}


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run(s: Settings) -> int:
    """Delete the stage's rows of the matching networks, statuses and settings."""
    store = Store(s.store, create=False)
    patterns = s.models.split(",")
    stored = {r["model"] for r in store.rows(s.stage)}
    models = {m for m in stored if any(fnmatch.fnmatchcase(m, p) for p in patterns)}
    deleted = store.delete(s.stage, models, s.status, s.config())
    store.close()
    print(f"prune: {plural(deleted, 'row')} of {s.stage} deleted from {s.store}")
    return 0


COMMAND = Command("prune", "delete rows from a run's store (recorded in it)", Settings, run)
