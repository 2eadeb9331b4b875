"""``speed``: throughput, latency and peak memory of each network across batch sizes, in
inference and training, one child process per (network, mode)."""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from typing import Any

import archs
from bench.console import Progress
from bench.schema import FAILED, FINAL
from bench.stages.common import (
    Command,
    Sweep,
    device_of,
    option,
    select_models,
    timeout_option,
    write_pages,
)
from bench.store import Store
from bench.timing import MODES


def modes(text: str) -> tuple[str, ...]:
    chosen = tuple(text.split(","))
    if not set(chosen) <= set(MODES):
        raise argparse.ArgumentTypeError(f"modes are {', '.join(MODES)}; got {text!r}")
    return chosen


@dataclass(frozen=True)
class Settings(Sweep):
    mode: tuple[str, ...] = option(MODES, "comma-separated", parse=modes)
    precision: str = option("fp32", "autocast precision", choices=("fp32", "bf16", "fp16"))
    channels_last: bool = option(False, "NHWC memory format")
    compile: bool = option(False, "time torch.compile's model")
    timeout: float = timeout_option(600, "(model, mode)")


def config(s: Settings, device: str, name: str, batch: int, mode: str,
           size: int) -> dict[str, Any]:  # fmt: skip
    """A point's key in the store."""
    return {"mode": mode, "batch_size": batch, "device": device, "precision": s.precision,
            "channels_last": s.channels_last, "compile": s.compile, "image_size": size,
            "in_channels": s.in_channels or archs.spec(name).in_channels,
            "time_cap_s": s.time_cap, "max_step_s": s.max_step}  # fmt: skip


def run(s: Settings) -> int:
    """Time every selected network across batch sizes, one child process per (model, mode)."""
    from bench.device import backend_for, machine_roof
    from bench.executors import Job, sweep_into
    from bench.isolation import Done, Row, ending
    from bench.render.stages import write_speed
    from bench.timing import iter_speed

    names = select_models(s.models)
    device = device_of(s)
    backend, executor = backend_for(device), s.runner(device)
    # measured in a child like the networks, so that this process holds no GPU memory
    measured = Job(machine_roof, {"device": device.type, "precision": s.precision}, s.timeout)
    for _, message in executor.run([measured]):
        if isinstance(message, Row):
            roof = message.value
        elif not isinstance(message, Done):
            raise RuntimeError(f"the roof of {backend.name} was not measured: "
                               f"{ending(message)[1]}")  # fmt: skip
    print(
        f"speed: {backend.name}; peak {roof['peak_flops_per_s'] / 1e9:,.0f} GFLOP/s "
        f"({roof['peak_source']}), a matmul achieves {roof['achievable_flops_per_s'] / 1e9:,.0f}; "
        f"memory {roof['bandwidth_bytes_per_s'] / 1e9:,.1f} GB/s; each point capped at "
        f"{s.time_cap:g} s of timed steps"
    )
    store, failures = Store(s.store), 0
    # the roofline's roof: one row per device and precision, replaced by each run
    store.put("machine", backend.name, {"precision": s.precision}, roof)
    peak = roof["peak_flops_per_s"], roof["peak_source"]
    key = functools.partial(config, s, backend.name)
    jobs = []  # one per (network, mode): its batch sizes not yet in the store
    for name in names:
        size = s.image_size or archs.spec(name).image_size
        for mode in s.mode:
            point = functools.partial(key, name, mode=mode, size=size)
            todo = [b for b in s.batch_sizes if not store.has("speed", name, point(b), FINAL)]
            if not todo:
                continue
            job = dict(
                model_or_name=name, batch_sizes=tuple(todo), modes=(mode,), device=s.device,
                precision=s.precision, channels_last=s.channels_last, compile=s.compile,
                image_size=size, in_channels=s.in_channels, time_cap_s=s.time_cap,
                max_step_s=s.max_step, peak=peak,
            )  # fmt: skip
            jobs.append((Job(iter_speed, job, s.timeout), point, f"{name} {mode}"))
    with Progress("speed", sum(len(j.kwargs["batch_sizes"]) for j, *_ in jobs)) as progress:
        for label, batch, status, text in sweep_into(store, "speed", executor, jobs):
            failures += status in FAILED
            progress.item(f"{label} batch {batch}: {status} {text}")
    write_pages(store, write_speed, s.out / "speed")
    return 1 if failures else 0


COMMAND = Command("speed", "throughput, latency and memory across batch sizes", Settings, run)
