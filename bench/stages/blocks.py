"""``blocks``: chapter 7's single layers (a conv's cost, output shapes, pooling), each by its
closed-form formula, as counted, and timed on the device; and its primitives (cross-correlation,
a 1x1 conv, a grouped conv, average pooling), each way of computing one timed against the
others there."""

from __future__ import annotations

from dataclasses import dataclass

from bench.blocks import cases, measure
from bench.console import Progress
from bench.executors import Job
from bench.isolation import Done, Row, ending
from bench.stages.common import (
    Command,
    Staged,
    all_stored,
    device_of,
    device_option,
    time_cap_option,
    timeout_option,
)
from bench.store import Store


@dataclass(frozen=True)
class Settings(Staged):
    device: str = device_option()
    time_cap: float = time_cap_option(0.3)
    timeout: float = timeout_option(600, "run of the stage")


def run(s: Settings) -> int:
    """Every case not yet in the store, measured (in one child process) and stored."""
    store, device = Store(s.store), device_of(s)
    every = cases(s.time_cap, device)
    todo = [
        i
        for i, (exercise, config, _) in enumerate(every)
        if not store.has("blocks", exercise, config)
    ]
    if not todo:
        all_stored("blocks", "case", store)
    job = Job(measure, {"seconds": s.time_cap, "indices": todo, "device": device.type}, s.timeout)
    failed = False
    with Progress("blocks", len(todo)) as progress:
        for _, message in s.runner(device).run([job] if todo else []):
            if isinstance(message, Row):
                index, row = message.value
                exercise, config, _ = every[index]
                store.put("blocks", exercise, config, row, origin=message.origin)
                progress.item(f"{exercise} {config['case']}: stored")
            elif not isinstance(message, Done):
                failed = True
                progress.item(f"blocks: {ending(message)[1]}")
    store.close()
    return 1 if failed else 0


COMMAND = Command(
    "blocks",
    "chapter 7's single layers (formula, counted, timed) and primitives (timed)",
    Settings,
    run,
)
