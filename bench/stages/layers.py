"""``layers``: chapter 7's single layers (a conv's cost, output shapes, pooling), each by its
closed-form formula, as counted, and timed on the device; and its primitives (cross-correlation,
a 1x1 conv, a grouped conv, average pooling), each way of computing one timed against the
others there."""

from __future__ import annotations

from dataclasses import dataclass

from bench.console import Progress
from bench.executors import Job, dispatch
from bench.isolation import Row
from bench.layers import cases, measure
from bench.schema import FAILED, Status
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
        if not store.has("layers", exercise, config)
    ]
    if not todo:
        all_stored("layers", "case", store)
    job = Job(measure, {"seconds": s.time_cap, "indices": todo, "device": device.type}, s.timeout)
    with Progress("layers", len(todo)) as progress:

        def stored(_job: int, message: Row) -> None:
            index, row = message.value
            exercise, config, _ = every[index]
            store.put("layers", exercise, config, row, origin=message.origin)
            progress.item(f"{exercise} {config['case']}: stored")

        def ended(_job: int, status: Status, note: str) -> None:
            if status in FAILED:
                progress.item(f"layers: {note}")

        failed = dispatch(s.runner(device), [job] if todo else [], stored, ended)
    store.close()
    return 1 if failed else 0


COMMAND = Command(
    "layers",
    "chapter 7's single layers (formula, counted, timed) and primitives (timed)",
    Settings,
    run,
)
