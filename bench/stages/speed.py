"""``speed``: throughput, latency and peak memory of each network across batch sizes, in
inference and training, one child process per (network, mode)."""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from typing import Any

import archs
from bench.device import backend_for
from bench.executors import Job, dispatch
from bench.peaks import machine_roof
from bench.schema import FAILED, FINAL, Status
from bench.stages.common import (
    Command,
    Sweep,
    device_of,
    option,
    run_sweeps,
    select_models,
    timeout_option,
)
from bench.store import Store
from bench.timing import MIN_TIMED_STEPS, MODES, iter_speed


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


def config(s: Settings, device: str, name: str, batch: int, mode: str, size: int) -> dict[str, Any]:
    """A point's key in the store."""
    return {
        "mode": mode,
        "batch_size": batch,
        "device": device,
        "precision": s.precision,
        "channels_last": s.channels_last,
        "compile": s.compile,
        "image_size": size,
        "in_channels": s.in_channels or archs.spec(name).in_channels,
        "time_cap_s": s.time_cap,
        "max_step_s": s.max_step,
    }


def run(s: Settings) -> int:
    """Time every selected network across batch sizes, one child process per (model, mode)."""
    names = select_models(s.models)
    device = device_of(s)
    backend, executor = backend_for(device), s.runner(device)
    store = Store(s.store)
    key = functools.partial(config, s, backend.name)
    sweeps = []  # one per (network, mode): its batch sizes not yet in the store
    for name in names:
        size = s.image_size or archs.spec(name).image_size
        for mode in s.mode:
            point = functools.partial(key, name, mode=mode, size=size)
            todo = [b for b in s.batch_sizes if not store.has("speed", name, point(b), FINAL)]
            if todo:
                sweeps.append((name, mode, size, point, todo))
    peak = measure_roof(s, device, backend.name, executor, store) if sweeps else None
    jobs = []
    for name, mode, size, point, todo in sweeps:
        job = dict(
            model_or_name=name,
            batch_sizes=tuple(todo),
            modes=(mode,),
            device=s.device,
            precision=s.precision,
            channels_last=s.channels_last,
            compile=s.compile,
            image_size=size,
            in_channels=s.in_channels,
            time_cap_s=s.time_cap,
            max_step_s=s.max_step,
            peak=peak,
        )
        jobs.append((Job(iter_speed, job, s.timeout), point, f"{name} {mode}"))
    failures = run_sweeps(store, "speed", executor, jobs)
    store.close()
    return 1 if failures else 0


def measure_roof(
    s: Settings, device: Any, name: str, executor: Any, store: Store
) -> tuple[float, str]:
    """The roofline's roof of the device in the run's precision (peak FLOP/s, a matmul, a
    copy), measured in a child like the networks, so that this process holds no GPU memory,
    by a run that times something, before it; the store keeps one row per device and
    precision, the latest measured. Returns the peak and its source."""
    measured = Job(machine_roof, {"device": device.type, "precision": s.precision}, s.timeout)
    sent = []

    def ended(_job: int, status: Status, note: str) -> None:
        if status in FAILED:
            raise RuntimeError(f"the roof of {name} was not measured: {note}")

    dispatch(executor, [measured], lambda _job, message: sent.append(message.value), ended)
    roof = sent[0]
    print(
        f"speed: {name}; peak {roof['peak_flops_per_s'] / 1e9:,.0f} GFLOP/s "
        f"({roof['peak_source']}), a matmul achieves {roof['achievable_flops_per_s'] / 1e9:,.0f}; "
        f"memory {roof['bandwidth_bytes_per_s'] / 1e9:,.1f} GB/s; each point timed for "
        f"{s.time_cap:g} s, and at least {MIN_TIMED_STEPS} steps"
    )
    store.put("machine", name, {"precision": s.precision}, roof)
    return roof["peak_flops_per_s"], roof["peak_source"]


COMMAND = Command("speed", "throughput, latency and memory across batch sizes", Settings, run)
