"""Peak memory of a step as the CPU's allocator sees it, independent of the counting in
``bench.flops``: torch.profiler records every allocation and free the allocator makes through
one real step (``profile_memory``); summed in time order they give the most allocated at once,
to which the step's resident bytes (weights, buffers, input and labels) are added. The reading
sees what ops allocate inside themselves (oneDNN's working copies in its blocked layouts, an
im2col buffer) and assumes nothing about which tensors autograd keeps."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

import archs
from bench.device import cpu_model
from bench.flops.counting import one_step, read_step, resident_bytes
from bench.schema import Status
from bench.timing import NOT_APPLICABLE, is_batch_norm_of_one

# by default a point is skipped when its counted step would hold more than this share of the
# machine's memory: the reading needs the step's tensors for real, and the profiler's record
# beside them
MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class Peak:
    """A step's peak as the allocator saw it: ``bytes`` in all, the op running at that moment
    (the outermost aten op: the call the step or autograd made) and the bytes it had allocated
    and not yet freed, its output's included."""

    bytes: int | None
    op: str | None
    op_bytes: int | None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """The profiler's library logs each start and stop on the process's stderr: silenced for
    the reading alone."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def allocator_peak(step: Callable[[], None], resident: int) -> Peak:
    """Run ``step`` under the profiler; its peak, ``resident`` bytes included."""
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = prof.profiler.kineto_results.events()
    memory = sorted((e for e in events if e.name() == "[memory]"), key=lambda e: e.start_ns())
    live = most = at = 0
    for event in memory:
        live += event.nbytes()
        if live > most:
            most, at = live, event.start_ns()
    running = [
        e for e in events if e.name().startswith("aten::") and e.start_ns() <= at <= e.end_ns()
    ]
    if not running:
        return Peak(resident + most, "-", 0)
    op = min(running, key=lambda e: e.start_ns())  # the outermost: the call the step made
    held = sum(e.nbytes() for e in memory if op.start_ns() <= e.start_ns() <= at)
    return Peak(resident + most, op.name(), held)


def step_peak(model: torch.nn.Module, x: torch.Tensor, train: bool) -> Peak:
    """The allocator's peak through ``bench.flops.counting.one_step`` on ``x``."""
    labels = torch.zeros(len(x), dtype=torch.long) if train else None
    return allocator_peak(lambda: one_step(model, x, labels), resident_bytes(model, x, labels))


def machine_bytes() -> int:
    """This machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def iter_allocator(
    model_or_name: str,
    *,
    batch_sizes: tuple[int, ...] = (1, 128),
    image_size: int | None = None,
    in_channels: int | None = None,
    share: float = MEMORY_SHARE,
) -> Iterator[dict[str, Any]]:
    """The rows of ``memory``, one per batch size: the allocator's peak through a training step
    and an inference pass on the CPU. A point whose counted training step would hold more than
    ``share`` of the machine's memory is skipped, saying so."""
    spec = archs.spec(model_or_name)
    size, channels = image_size or spec.image_size, in_channels or spec.in_channels
    model = archs.build(model_or_name, image_size=size, in_channels=channels)
    meta = archs.build(model_or_name, image_size=size, in_channels=channels, device="meta")
    limit = share * machine_bytes()
    for batch in batch_sizes:
        row: dict[str, Any] = {
            "model": model_or_name,
            "batch_size": batch,
            "image_size": size,
            "in_channels": channels,
            "status": Status.OK,
            "note": "",
            "device_name": cpu_model(),
        }
        shape = (batch, channels, size, size)
        # a batch of one that batch norm cannot train on (None): its inference is small
        counted = read_step(meta, torch.empty(shape, device="meta")).train or 0
        if counted > limit:
            row["status"] = Status.SKIPPED
            row["note"] = (
                f"its step would hold ~{counted / 2**30:.1f} GiB (counted), over "
                f"{share:.0%} of this machine's {machine_bytes() / 2**30:.0f} GiB"
            )
            yield row
            continue
        x = torch.rand(shape)
        for mode, train in (("train", True), ("infer", False)):
            try:
                peak = step_peak(model, x, train)
            except ValueError as error:
                if not is_batch_norm_of_one(error):
                    raise
                row["note"] = f"training: {NOT_APPLICABLE}"
                peak = Peak(None, None, None)
            row.update({f"{mode}_bytes": peak.bytes, f"{mode}_peak_op": peak.op})
            row[f"{mode}_peak_op_bytes"] = peak.op_bytes
        yield row
