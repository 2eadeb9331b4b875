"""memory.md: what a step holds in memory, three ways: estimated from counted parts, read from
the CPU allocator through a real step (``bench memory``), and the process's peak as the speed
sweep measured it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.render.format import (
    MIB,
    Column,
    atomic_write,
    book_rank,
    fmt_int,
    fmt_mib,
    fmt_percent,
    fmt_text,
    markdown,
)
from bench.render.setups import book_speed
from bench.schema import Status
from bench.store import Store

TOLERANCE = 0.05  # the estimate's goal: within 5% of the allocator's peak

COLUMNS: list[Column] = [
    ("model", "model", fmt_text),
    ("input", "input (px)", fmt_int),
    ("batch", "batch", fmt_int),
    ("train_est", "training: estimate (MiB)", fmt_mib),
    ("train_allocator", "training: allocator (MiB)", fmt_mib),
    ("train_gap", "estimate off by", fmt_percent),
    ("infer_est", "inference: estimate (MiB)", fmt_mib),
    ("infer_allocator", "inference: allocator (MiB)", fmt_mib),
    ("infer_gap", "estimate off by", fmt_percent),
    ("process", "training: process growth (MiB)", fmt_mib),
    ("overhead", "process above allocator (MiB)", fmt_mib),
    ("at_peak", "training, at the allocator's peak", fmt_text),
]


# the columns of the allocator's reading, left out of a folder that has none
ALLOCATOR = {"train_allocator", "train_gap", "infer_allocator", "infer_gap", "overhead", "at_peak"}


def tracked_growth(profile: dict[str, Any], suffix: str) -> int | None:
    """The counted side of a speed sweep's memory reading (``suffix``: "_batch1" or "" for the
    profile's batch): the training step's tracked peak less the weights, which are resident
    before the reading starts; None where the step cannot run (batch norm on one example)."""
    tracked = profile[f"train_bytes_tracked_sgd{suffix}"]
    return None if tracked is None or pd.isna(tracked) else tracked - profile["weight_bytes"]


def _gap(estimate: float | None, reading: float | None) -> float | None:
    missing = any(v is None or pd.isna(v) for v in (estimate, reading))
    return None if missing else estimate / reading - 1


def _row(profile: dict[str, Any], batch: int, suffix: str, readings: dict) -> dict[str, Any]:
    """One (network, batch) line: the estimates; the allocator's peaks where ``bench memory``
    read them at this batch and input; and, where the speed sweep timed a training step here,
    the process's peak growth and how far it lies above the allocator's growth (its peak less
    the weights, resident before the sweep's reading starts)."""
    key = (profile["model"], profile["image_size"], batch)
    allocator, speed = readings["memory"].get(key, {}), readings["speed"].get(key)
    line = {
        "model": profile["model"],
        "input": profile["image_size"],
        "batch": batch,
        "train_est": profile[f"train_bytes_est_sgd{suffix}"],
        "train_allocator": allocator.get("train_bytes"),
        "infer_est": profile[f"infer_bytes_est{suffix}"],
        "infer_allocator": allocator.get("infer_bytes"),
    }
    line["train_gap"] = _gap(line["train_est"], line["train_allocator"])
    line["infer_gap"] = _gap(line["infer_est"], line["infer_allocator"])
    if allocator.get("train_peak_op"):
        line["at_peak"] = (
            f"{allocator['train_peak_op']} holding {allocator['train_peak_op_bytes'] / MIB:,.1f}"
            " MiB"
        )
    if speed is not None:
        line["process"] = speed["peak_bytes"]
        if line["train_allocator"] is not None:
            growth = line["train_allocator"] - profile["weight_bytes"]
            line["overhead"] = speed["peak_bytes"] - growth
    return line


def _outside(frame: pd.DataFrame, mode: str) -> str:
    """The lines whose estimate misses the allocator's peak by more than ``TOLERANCE``,
    largest first, in words."""
    gaps = frame[f"{mode}_gap"].dropna()
    if gaps.empty:
        return "not compared: no allocator reading is stored (`python -m bench memory` reads it)"
    far = gaps[gaps.abs() > TOLERANCE].abs().sort_values(ascending=False)
    close = int((gaps.abs() <= TOLERANCE).sum())
    within = f"within {TOLERANCE:.0%} of the allocator's peak on {close} of {len(gaps)} lines"
    if far.empty:
        return within
    worst = [
        f"{frame.at[i, 'model']} at {frame.at[i, 'input']} px, batch {frame.at[i, 'batch']} "
        f"({frame.at[i, f'{mode}_gap']:+.1%})"
        for i in far.index
    ]
    return f"{within}; outside it, largest first: {', '.join(worst)}"


def _working_memory(profiles: list[dict[str, Any]]) -> str:
    """What the estimates count of convolutions' working memory, in words."""
    blocks = [p.get("conv_work_block") for p in profiles]
    known = [int(b) for b in blocks if b is not None and not pd.isna(b)]
    counted, missing = sorted(set(known)), len(blocks) - len(known)
    said = (
        "A convolution's working memory is what its CPU kernel holds beyond its arguments and "
        "result, by the rules in bench/flops/workspace.py: oneDNN's copies in its blocked "
        f"layout, channels padded to blocks of {' or '.join(map(str, counted))} floats (the "
        "counting CPU's vector width), or the native kernel's unfolded input."
        if counted
        else ""
    )
    if missing:
        said += f" The estimates of {missing} of {len(blocks)} profiles count no working memory."
    return said.strip()


def write_memory(store: Store, out_dir: Path) -> list[Path]:
    """memory.md: every profiled network at batch 1 and at its profile's batch."""
    profiles = sorted(
        (
            r
            for r in store.rows("profile")
            if r["status"] == Status.OK and "train_bytes_est_sgd" in r
        ),
        key=lambda r: (book_rank(r["model"]), r["image_size"]),
    )
    if not profiles:
        return []
    readings = {
        "speed": {
            (r["model"], r["image_size"], r["batch_size"]): r
            for r in book_speed(store.rows("speed"))
            if r["mode"] == "train"
        },
        "memory": {
            (r["model"], r["image_size"], r["batch_size"]): r
            for r in store.rows("memory")
            if r["status"] == Status.OK
        },
    }
    skipped = [
        f"- {r['model']} at {r['image_size']} px, batch {r['batch_size']}: {r['note']}\n"
        for r in store.rows("memory")
        if r["status"] == Status.SKIPPED
    ]
    lines = [
        _row(p, batch, suffix, readings)
        for p in profiles
        for batch, suffix in ((1, "_batch1"), (p["batch_size"], ""))
    ]
    frame = pd.DataFrame(lines, columns=[column for column, _, _ in COLUMNS])
    kinds = sorted({r["memory_kind"] for r in readings["speed"].values()})
    cpus = sorted({r["device_name"] for r in readings["memory"].values()})
    text = (
        "# Memory of a step: estimated, read from the allocator, measured\n\n"
        "*Estimate*: a sum of counted parts. Inference: weights + the input batch + the peak of "
        "activations alive at once, or of what a convolution holds while it works. Training "
        "(plain SGD): weights, input and int64 labels, and at the fullest moment the end of the "
        "forward pass (every activation autograd saved, the logits), or module i at work in it "
        "(what was saved so far, its output and its working memory), or, going backward through "
        "module i, the activations modules 0..i still hold, the weight gradients of modules i "
        "and after, the gradients module i makes (of its output and input, the images getting "
        "none, and, for a module built of several ops, one that saved more than its input, of "
        "everything it saved) and its working memory. "
        f"{_working_memory(profiles)} *Allocator*: the most the CPU's "
        "allocator held at once through one real step (forward, cross-entropy, backward, SGD "
        "step; inference: one forward pass) in fp32, weights and input included, from "
        "torch.profiler's record of every allocation and free (`python -m bench memory`, "
        f"{', '.join(cpus) or 'not run for this folder'}): it counts nothing, so it also sees "
        "what ops allocate inside themselves and free before they return. The last column "
        "names the op running at that peak and what it held then, its output and working "
        "memory included. *Process growth* (measured): the "
        f"speed sweep's training step at the same batch and input ({'; '.join(kinds) or '-'}),"
        " which starts with the weights resident and the runtime's one-time allocations made; "
        "the column beside it is how far it lies above the allocator's peak less the weights "
        "(allocator caching: the freed memory the heap keeps for reuse, in the holes between "
        "its blocks too, as the heap policy on the run's index says; the process's other "
        "memory). A batch norm network cannot train on a batch of one (dashes).\n\n"
        f"Training: the estimate is {_outside(frame, 'train')}.\n\n"
        f"Inference: the estimate is {_outside(frame, 'infer')}.\n\n"
        + ("Not read from the allocator:\n\n" + "".join(skipped) + "\n" if skipped else "")
        + markdown(frame, [c for c in COLUMNS if readings["memory"] or c[0] not in ALLOCATOR])
        + "\n"
    )
    written = out_dir / "memory.md"
    atomic_write(written, text)
    return [written]
