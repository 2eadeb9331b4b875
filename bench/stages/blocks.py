"""``blocks``: chapter 7's single layers (a conv's cost, output shapes, pooling), each by its
closed-form formula, as counted, and timed."""

from __future__ import annotations

from dataclasses import dataclass

from bench.console import Progress
from bench.stages.common import Command, RunFolder, time_cap_option
from bench.store import Store


@dataclass(frozen=True)
class Settings(RunFolder):
    time_cap: float = time_cap_option(0.3)


def run(s: Settings) -> int:
    """Every case not yet in the store, measured and stored."""
    from bench.blocks import cases

    store = Store(s.store)
    todo = [c for c in cases(s.time_cap) if not store.has("blocks", c[0], c[1])]
    with Progress("blocks", len(todo)) as progress:
        for exercise, config, measure in todo:
            store.put("blocks", exercise, config, measure())
            progress.item(f"{exercise} {config['case']}: stored")
    store.close()
    return 0


COMMAND = Command("blocks", "chapter 7's single layers: formula, counted, timed", Settings, run)
