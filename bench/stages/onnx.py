"""``onnx``: each network exported to ONNX, checked against PyTorch, and timed under
onnxruntime beside PyTorch, one child process per network."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import archs
from bench.device import backend_for
from bench.executors import Job
from bench.onnx_runtime import iter_onnx, placement
from bench.schema import FINAL
from bench.stages.common import (
    Command,
    Sweep,
    device_of,
    run_sweeps,
    select_models,
    timeout_option,
)
from bench.store import Store


@dataclass(frozen=True)
class Settings(Sweep):
    timeout: float = timeout_option(600, "model")


def config(
    s: Settings, device: str, provider: str, name: str, batch: int, size: int
) -> dict[str, Any]:
    """A point's key in the store."""
    return {
        "batch_size": batch,
        "image_size": size,
        "in_channels": s.in_channels or archs.spec(name).in_channels,
        "device": device,
        "provider": provider,
        "time_cap_s": s.time_cap,
        "max_step_s": s.max_step,
    }


def run(s: Settings) -> int:
    """Export, check and time every selected network under onnxruntime, one child each."""
    names = select_models(s.models)
    asked = device_of(s)
    device, provider = placement(asked)
    if device != asked:
        print(
            "onnx: CUDA was asked for, and this onnxruntime has no CUDA provider (a CPU-only "
            "build): onnxruntime runs on the CPU, and PyTorch beside it too"
        )
    key = functools.partial(config, s, backend_for(device).name, provider)
    executor = s.runner(device)
    store = Store(s.store)
    jobs = []  # one per network: its batch sizes not yet in the store
    for name in names:
        size = s.image_size or archs.spec(name).image_size
        point = functools.partial(key, name, size=size)
        todo = [b for b in s.batch_sizes if not store.has("onnx", name, point(b), FINAL)]
        if not todo:
            continue
        job = dict(
            model_or_name=name,
            batch_sizes=tuple(todo),
            device=device.type,
            image_size=size,
            in_channels=s.in_channels,
            time_cap_s=s.time_cap,
            max_step_s=s.max_step,
        )
        jobs.append((Job(iter_onnx, job, s.timeout), point, f"{name} onnxruntime"))
    failures = run_sweeps(store, "onnx", executor, jobs)
    store.close()
    return 1 if failures else 0


COMMAND = Command("onnx", "ONNX export, parity and onnxruntime throughput", Settings, run)
