"""Throughput, latency and peak memory of a network across batch sizes, in inference and training.

One timing protocol for every device: warm up, then time single steps until a time cap is
spent and at least three were timed, and report the distribution (median, p90, p99, n,
coefficient of variation). A training step is forward, loss, backward and an SGD step; the
model's state (weights and batch-norm statistics) is restored afterwards. The CLI runs each
(model, mode, settings) sweep in a child process with a timeout (bench/isolation.py), so that
one network's crash, out-of-memory or hang loses nothing else.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

import archs
from bench.device import (
    PRECISIONS,
    Backend,
    backend_for,
    fp32_math,
    is_out_of_memory,
    resolve_device,
)
from bench.flops import step_flops_per_image
from bench.peaks import peak_flops
from bench.schema import Status

MODES = ("infer", "train")
MIN_TIMED_STEPS = 3  # a point is timed at least this often, so that it has a spread

NOT_APPLICABLE = (
    "batch norm in training needs more than one value per channel, and this batch has one"
)


def is_batch_norm_of_one(error: BaseException) -> bool:
    """torch's refusal to normalize a training batch with a single value per channel."""
    return isinstance(error, ValueError) and "more than 1 value per channel" in str(error)


def summarize(seconds: list[float], batch_size: int) -> dict[str, float]:
    """Distribution of step times: n, median, p90, p99 (ms), coefficient of variation, images/s."""
    times = np.asarray(seconds)
    median = float(np.median(times))
    cv = float(times.std(ddof=1) / times.mean()) if len(times) > 1 else math.nan
    return {
        "n": len(times),
        "median_ms": 1000 * median,
        "p90_ms": 1000 * float(np.percentile(times, 90)),
        "p99_ms": 1000 * float(np.percentile(times, 99)),
        "cv": cv,
        "images_per_s": batch_size / median,
    }


def time_steps(
    step: Callable[[], Any],
    backend: Backend,
    cap_s: float,
    warmup: int = 2,
    min_steps: int = 1,
    max_steps: int = 500,
) -> list[float]:
    """Step times after ``warmup`` untimed steps: at least ``min_steps`` (one or more), then
    until ``cap_s`` is spent, at most ``max_steps``."""
    for _ in range(warmup):
        step()
    times: list[float] = []
    while len(times) < min_steps or (sum(times) < cap_s and len(times) < max_steps):
        times.append(backend.time(step))
    return times


@dataclass
class SweepPoint:
    """One batch size's outcome."""

    batch_size: int
    status: Status
    note: str = ""
    stats: dict[str, float] = field(default_factory=dict)
    peak_bytes: int | None = None


def sweep(
    make_step: Callable[[int], Callable[[], Any]],
    batch_sizes: list[int],
    backend: Backend,
    cap_s: float,
    warmup: int = 2,
    max_step_s: float = math.inf,
) -> Iterator[SweepPoint]:
    """Time ``make_step(batch)`` at each batch size, smallest first, for ``cap_s`` seconds each
    and at least ``MIN_TIMED_STEPS`` steps, after ``warmup`` untimed ones.
    A point's peak memory is the highest it reaches during the timed steps, as growth from
    before ``make_step(batch)``: the inputs it makes count, the model's weights do not, nor do
    what only the warm-up steps hold (cuDNN's algorithm search) and the runtime's one-time
    allocations (thread pools, library handles), which one step before the first point makes.

    After an out-of-memory error the larger batch sizes are skipped; another error is recorded
    for its batch size only. A batch size whose single step would take longer than
    ``max_step_s`` (extrapolated from the last one timed) is skipped too, so a sweep on a slow
    device ends in bounded time.
    """
    last: tuple[int, float] | None = None
    warmed = False  # whether the runtime's one-time allocations are made
    for i, batch in enumerate(sorted(batch_sizes)):
        if last is not None and last[1] * batch / last[0] > max_step_s:
            predicted = last[1] * batch / last[0]
            for rest in sorted(batch_sizes)[i:]:
                note = f"a step would take ~{predicted:.1f} s, over the {max_step_s:g} s limit"
                yield SweepPoint(rest, Status.SKIPPED, note)
            return
        try:
            if not warmed:
                make_step(batch)()
                warmed = True
            backend.reset_peak()
            step = make_step(batch)
            for _ in range(warmup):
                step()
            backend.restart_peak()
            times = time_steps(step, backend, cap_s, 0, MIN_TIMED_STEPS)
            peak = backend.peak_bytes()
        except Exception as error:
            message = (str(error) or type(error).__name__).splitlines()[0]
            if is_batch_norm_of_one(error):  # a configuration that cannot exist, not a failure
                yield SweepPoint(batch, Status.NOT_APPLICABLE, f"not applicable: {NOT_APPLICABLE}")
                continue
            if not is_out_of_memory(error):  # this size fails; the next may not (batch norm)
                yield SweepPoint(batch, Status.ERROR, f"{type(error).__name__}: {message}")
                continue
            yield SweepPoint(batch, Status.OOM, message)
            for rest in sorted(batch_sizes)[i + 1 :]:
                note = f"larger than batch {batch}, which ran out of memory"
                yield SweepPoint(rest, Status.SKIPPED, note)
            return
        finally:
            if backend.device.type == "cuda":
                torch.cuda.empty_cache()
        last = (batch, float(np.median(times)))
        yield SweepPoint(batch, Status.OK, stats=summarize(times, batch), peak_bytes=peak)


def make_step_factory(
    model: nn.Module,
    mode: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    device: torch.device,
    precision: str = "fp32",
    channels_last: bool = False,
) -> Callable[[int], Callable[[], Any]]:
    """``factory(batch)`` makes the inputs of that size and returns one step of ``mode``; an
    fp16 training step scales its loss (a GradScaler: unscaling and the overflow check are part
    of the step, as they are of any fp16 training)."""
    dtype = PRECISIONS[precision]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3) if mode == "train" else None
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    def factory(batch: int) -> Callable[[], Any]:
        x = torch.randn(batch, *input_shape, device=device).to(memory_format=memory_format)
        y = torch.randint(num_classes, (batch,), device=device)
        if mode == "infer":

            @torch.inference_mode()
            def step() -> Any:
                with autocast():
                    return model(x)

            return step

        def train_step() -> None:
            with autocast():
                loss = F.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)

        return train_step

    return factory


def iter_speed(
    model_or_name: str | nn.Module,
    *,
    batch_sizes: tuple[int, ...] = (1, 8, 32, 128, 512),
    modes: tuple[str, ...] = MODES,
    device: str = "auto",
    precision: str = "fp32",
    channels_last: bool = False,
    compile: bool = False,
    image_size: int | None = None,
    in_channels: int | None = None,
    num_classes: int | None = None,
    time_cap_s: float = 2.0,
    max_step_s: float = 60.0,
    peak: tuple[float, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """The rows of ``speed``, one as each (mode, batch size) is timed. On a GPU, cuDNN picks
    the fastest algorithm for each shape (``cudnn.benchmark``; the search falls in the warm-up
    steps)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError("batch sizes must be positive integers")
    unknown = set(modes) - set(MODES)
    if unknown:
        raise ValueError(f"modes must be among {', '.join(MODES)}, got {sorted(unknown)}")
    dev = resolve_device(device)
    if isinstance(model_or_name, str):
        size = image_size or archs.spec(model_or_name).image_size
        in_channels = in_channels or archs.spec(model_or_name).in_channels
        num_classes = num_classes or archs.spec(model_or_name).num_classes
        model = archs.build(
            model_or_name,
            in_channels=in_channels,
            num_classes=num_classes,
            image_size=size,
            device=dev,
        )
        name = model_or_name
    else:
        if image_size is None:
            raise ValueError("image_size is required when timing a module")
        model, size, name = model_or_name.to(dev), image_size, type(model_or_name).__name__
        in_channels, num_classes = in_channels or 1, num_classes or 10
    shape = (in_channels, size, size)
    backend = backend_for(dev)
    if peak is None:
        roof = peak_flops(dev, precision, backend.name)
        peak = roof["peak_flops_per_s"], roof["peak_source"]
    peak_value, peak_source = peak
    step_flops = step_flops_per_image(copy.deepcopy(model).to("meta"), shape)
    settings = dict(
        image_size=size,
        in_channels=in_channels,
        precision=precision,
        channels_last=channels_last,
        compiled=compile,
        time_cap_s=time_cap_s,
        max_step_s=max_step_s,
        cudnn_benchmark=dev.type == "cuda",
        **fp32_math(),
    )
    state = copy.deepcopy(model.state_dict())
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    runnable = torch.compile(model) if compile else model
    benchmark = torch.backends.cudnn.benchmark  # restored afterwards
    torch.backends.cudnn.benchmark = settings["cudnn_benchmark"]
    try:
        for mode in modes:
            model.train(mode == "train")
            factory = make_step_factory(
                runnable, mode, shape, num_classes, dev, precision, channels_last
            )
            for point in sweep(
                factory, list(batch_sizes), backend, time_cap_s, max_step_s=max_step_s
            ):
                row = _row(name, mode, point, step_flops[mode], peak_value, peak_source, backend)
                yield {**row, **settings}
    finally:
        model.load_state_dict(state)
        torch.backends.cudnn.benchmark = benchmark


def speed(model_or_name: str | nn.Module, **options: Any) -> pd.DataFrame:
    """Time ``model_or_name`` (a registry name or any nn.Module) across batch sizes and modes.

    In-process: a notebook passes a live module, whose state is restored afterwards. One row per
    (mode, batch size): throughput, the latency distribution, peak memory, and model FLOP
    utilization (achieved FLOP/s over the device's peak). Options are those of ``iter_speed``.
    """
    return pd.DataFrame(list(iter_speed(model_or_name, **options)))


def _row(
    name: str,
    mode: str,
    point: SweepPoint,
    flops_per_image: int,
    peak: float,
    source: str,
    backend: Backend,
) -> dict[str, Any]:
    achieved = (
        flops_per_image * point.stats["images_per_s"] if point.status == Status.OK else math.nan
    )
    return {
        "model": name,
        "mode": mode,
        "batch_size": point.batch_size,
        "device": backend.device.type,
        "device_name": backend.name,
        "status": point.status,
        "note": point.note,
        **{
            k: point.stats.get(k, math.nan)
            for k in ("n", "median_ms", "p90_ms", "p99_ms", "cv", "images_per_s")
        },
        "peak_bytes": point.peak_bytes,
        "memory_kind": backend.memory_kind,
        "flops_per_image": flops_per_image,
        "achieved_flops_per_s": achieved,
        "peak_flops_per_s": peak,
        "peak_source": source,
        "mfu": achieved / peak if peak == peak else math.nan,
    }
