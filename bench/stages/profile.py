"""``profile``: parameters, MACs/FLOPs forward and backward and activation memory of each
network, counted on the meta device, one worker process per network."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import archs
from bench.console import Progress, plural
from bench.executors import Job, dispatch
from bench.flops import profile_job
from bench.flops.profile import CHECKS
from bench.isolation import Row
from bench.render.stages import agreement
from bench.schema import FAILED, Status
from bench.stages.common import (
    Command,
    Networks,
    UsageError,
    image_size_option,
    in_channels_option,
    option,
    positive,
    select_models,
    timeout_option,
)
from bench.store import Store


@dataclass(frozen=True)
class Settings(Networks):
    image_size: int | None = image_size_option()
    in_channels: int | None = in_channels_option()
    batch_size: int = option(128, "images per batch", parse=positive)
    workers: int = option(
        os.cpu_count() or 1, "networks counted at once (--executor local)", parse=positive
    )
    timeout: float = timeout_option(1800, "network")
    force: bool = option(False, "measure again what is stored")
    check: bool = option(
        False,
        "count beside ours with FlopCounterMode and fvcore, and say whether they agree "
        "(with --force: also what is stored)",
    )


def run(s: Settings) -> int:
    """Profile every selected network not yet in the store, then write the tables."""
    names = select_models(s.models)
    if s.image_size is not None:
        too_small = [
            f"{n} ({archs.spec(n).min_image_size})"
            for n in names
            if archs.spec(n).min_image_size > s.image_size
        ]
        if too_small:
            raise UsageError(
                f"image size {s.image_size} is below the smallest input of " + ", ".join(too_small)
            )
    keys = [
        (
            name,
            {
                "image_size": s.image_size or archs.spec(name).image_size,
                "in_channels": s.in_channels or archs.spec(name).in_channels,
                "batch_size": s.batch_size,
            },
        )
        for name in names
    ]
    store = Store(s.store)
    todo = [(n, c) for n, c in keys if s.force or not store.has("profile", n, c)]
    print(
        f"profile: {plural(len(todo), 'network')} to measure, {len(keys) - len(todo)} already "
        f"in {s.store}"
    )
    start = time.perf_counter()
    workers = min(s.workers, max(len(todo), 1))
    checks = CHECKS if s.check else ()
    jobs = [
        Job(profile_job, {"name": n, "config": c, "checks": checks}, s.timeout, exclusive=False)
        for n, c in todo
    ]
    with Progress("profile", len(todo)) as progress:

        def stored(index: int, message: Row) -> None:
            name, config = todo[index]
            summary, layers, ops = message.value
            details = {"layers": layers, "ops": ops}
            store.put("profile", name, config, summary, details=details, origin=message.origin)
            progress.item(
                f"{name}: {summary['fwd_macs_per_image'] / 1e6:,.1f} M MACs/image forward, "
                f"counters agree: {agreement(summary)}"
            )

        def ended(index: int, status: Status, note: str) -> None:
            name, config = todo[index]
            if status in FAILED:  # recorded, and the other networks go on
                store.put("profile", name, config, {"error": note}, status=Status.ERROR)
                progress.item(f"{name}: error: {note}")

        failures = dispatch(s.runner(workers=workers), jobs, stored, ended)
    elapsed = time.perf_counter() - start
    store.close()
    where = plural(workers, "worker") if s.executor == "local" else "Ray"
    print(f"profiled {plural(len(todo), 'network')} in {elapsed:.1f} s with {where}")
    return 1 if failures else 0


COMMAND = Command("profile", "parameters, MACs/FLOPs and memory, counted", Settings, run)
