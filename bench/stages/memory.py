"""``memory``: the CPU allocator's peak through one real training step and one inference pass
of each network at batch 1 and the run's batch (``bench.allocator``), one child process per
network: the reading the memory page sets beside the counted estimate."""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from typing import Any

import archs
from bench.allocator import MEMORY_SHARE, iter_allocator
from bench.device import cpu_model
from bench.executors import Job
from bench.schema import FINAL
from bench.stages.common import (
    Command,
    Networks,
    batch_sizes,
    image_size_option,
    in_channels_option,
    option,
    run_sweeps,
    select_models,
    timeout_option,
)
from bench.store import Store


def share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie above 0 and at most 1, got {text}")
    return value


@dataclass(frozen=True)
class Settings(Networks):
    batch_sizes: tuple[int, ...] = option((1, 128), "comma-separated", parse=batch_sizes)
    image_size: int | None = image_size_option()
    in_channels: int | None = in_channels_option()
    timeout: float = timeout_option(1800, "network")
    share: float = option(
        MEMORY_SHARE,
        "the most of this machine's memory a counted step may hold to be read (one skipped "
        "before stays skipped: prune --status skipped lets it be read again)",
        parse=share,
    )


def config(s: Settings, device: str, name: str, batch: int, size: int) -> dict[str, Any]:
    """A point's key in the store."""
    return {
        "batch_size": batch,
        "image_size": size,
        "in_channels": s.in_channels or archs.spec(name).in_channels,
        "device": device,
    }


def shown(row: dict[str, Any]) -> str:
    """What the stage prints of a point it measured."""
    train = (
        "no training step (batch norm, one image)"
        if row["train_bytes"] is None
        else f"training step {row['train_bytes'] / 2**20:,.1f} MiB"
    )
    return f"{train}, inference {row['infer_bytes'] / 2**20:,.1f} MiB"


def run(s: Settings) -> int:
    """Read the allocator's peaks of every selected network not yet in the store."""
    cpu = cpu_model()
    store = Store(s.store)
    jobs = []
    for name in select_models(s.models):
        size = s.image_size or archs.spec(name).image_size
        point = functools.partial(config, s, cpu, name, size=size)
        todo = [b for b in s.batch_sizes if not store.has("memory", name, point(b), FINAL)]
        if todo:
            job = dict(
                model_or_name=name,
                batch_sizes=tuple(todo),
                image_size=size,
                in_channels=s.in_channels,
                share=s.share,
            )
            jobs.append((Job(iter_allocator, job, s.timeout), point, f"{name} allocator"))
    failures = run_sweeps(store, "memory", s.runner(), jobs, shown)
    store.close()
    return 1 if failures else 0


COMMAND = Command(
    "memory", "the CPU allocator's peak through a real step, beside the count", Settings, run
)
