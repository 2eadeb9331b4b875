"""``peers``: what other FLOP counters (fvcore, FlopCounterMode, thop, ptflops, torchinfo) say
of each network, beside our count, and why they differ (peers.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import archs
from bench.console import Progress
from bench.executors import Job, dispatch
from bench.isolation import Row
from bench.peers import peer_row
from bench.schema import FAILED, Status
from bench.stages.common import (
    Command,
    Networks,
    all_stored,
    option,
    select_models,
    timeout_option,
)
from bench.store import Store


@dataclass(frozen=True)
class Settings(Networks):
    timeout: float = timeout_option(600, "network")
    force: bool = option(False, "measure again what is stored")


def run(s: Settings) -> int:
    """Every selected network not yet in the store, counted by each peer (in worker
    processes, a network each), stored, rendered."""
    store = Store(s.store)
    names = select_models(s.models)

    def key(name: str) -> dict:
        return {
            "batch_size": 1,
            "in_channels": archs.spec(name).in_channels,
            "mode": "eval",
            "image_size": archs.spec(name).image_size,
        }

    todo = [n for n in names if s.force or not store.has("peers", n, key(n))]
    if not todo:
        all_stored("peers", "network", store)
    jobs = [Job(peer_row, {"name": n}, s.timeout, exclusive=False) for n in todo]
    with Progress("peers", len(todo)) as progress:

        def stored(index: int, message: Row) -> None:
            name, row = todo[index], message.value
            store.put("peers", name, key(name), row, origin=message.origin)
            missing = [c["counter"] for c in row["counters"] if c["macs"] is None]
            absent = f" ({', '.join(missing)}: no figure)" if missing else ""
            progress.item(f"{name}: {len(row['counters']) - len(missing)} counters{absent}")

        def ended(index: int, status: Status, note: str) -> None:
            if status in FAILED:  # no row: the page shows the network without
                progress.item(f"{todo[index]}: {note}")

        failures = dispatch(s.runner(workers=os.cpu_count() or 1), jobs, stored, ended)
    store.close()
    return 1 if failures else 0


COMMAND = Command("peers", "other FLOP counters beside ours, and why they differ", Settings, run)
