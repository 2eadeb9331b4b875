"""``peers``: what other FLOP counters (fvcore, FlopCounterMode, thop, ptflops, torchinfo) say
of each network, beside our count, and why they differ (peers.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import archs
from bench.console import Progress
from bench.executors import Job
from bench.isolation import Done, Row, ending
from bench.peers import peer_row
from bench.stages.common import (
    Command,
    Networks,
    all_stored,
    select_models,
    timeout_option,
)
from bench.store import Store


@dataclass(frozen=True)
class Settings(Networks):
    timeout: float = timeout_option(600, "network")


def run(s: Settings) -> int:
    """Every selected network not yet in the store, counted by each peer (in worker
    processes, a network each), stored, rendered."""
    store, failures = Store(s.store), 0
    names = select_models(s.models)

    def key(name: str) -> dict:
        return {
            "batch_size": 1,
            "in_channels": archs.spec(name).in_channels,
            "mode": "eval",
            "image_size": archs.spec(name).image_size,
        }

    todo = [n for n in names if not store.has("peers", n, key(n))]
    if not todo:
        all_stored("peers", "network", store)
    jobs = [Job(peer_row, {"name": n}, s.timeout, exclusive=False) for n in todo]
    with Progress("peers", len(todo)) as progress:
        for index, message in s.runner(workers=os.cpu_count() or 1).run(jobs):
            name = todo[index]
            if isinstance(message, Row):
                row = message.value
                store.put("peers", name, key(name), row, origin=message.origin)
                missing = [c["counter"] for c in row["counters"] if c["macs"] is None]
                absent = f" ({', '.join(missing)}: no figure)" if missing else ""
                progress.item(f"{name}: {len(row['counters']) - len(missing)} counters{absent}")
            elif not isinstance(message, Done):  # no row: the page shows the network without
                failures += 1
                progress.item(f"{name}: {ending(message)[1]}")
    store.close()
    return 1 if failures else 0


COMMAND = Command("peers", "other FLOP counters beside ours, and why they differ", Settings, run)
