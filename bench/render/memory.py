"""memory.md: what a step holds in memory, three ways: estimated from counted parts, tracked
through the step on the meta device, and the process's peak as the speed sweep measured it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.render.format import (
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

TOLERANCE = 0.05  # the estimate's goal: within 5% of the tracked peak

COLUMNS: list[Column] = [
    ("model", "model", fmt_text),
    ("batch", "batch", fmt_int),
    ("train_est", "training step, SGD: estimated (MiB)", fmt_mib),
    ("train_tracked", "tracked (MiB, counted)", fmt_mib),
    ("train_gap", "estimate off by", fmt_percent),
    ("infer_est", "inference: estimated (MiB)", fmt_mib),
    ("infer_tracked", "tracked (MiB, counted)", fmt_mib),
    ("process", "training step: process peak growth (MiB, measured)", fmt_mib),
    ("tracked_growth", "tracked, less weights (MiB)", fmt_mib),
    ("overhead", "allocator and library overhead (MiB)", fmt_mib),
    ("note", "note", fmt_text),
]


def tracked_growth(profile: dict[str, Any], suffix: str) -> int | None:
    """The counted side of a speed sweep's memory reading (``suffix``: "_batch1" or "" for the
    profile's batch): the training step's tracked peak less the weights, which are resident
    before the reading starts; None where the step cannot run (batch norm on one example)."""
    tracked = profile[f"train_bytes_tracked_sgd{suffix}"]
    return None if tracked is None or pd.isna(tracked) else tracked - profile["weight_bytes"]


def _row(profile: dict[str, Any], batch: int, suffix: str, speeds: dict) -> dict[str, Any]:
    """One (network, batch) line: the two counts and, where the speed sweep timed a training
    step at this batch and input, the process's peak growth beside the tracked growth."""
    train, tracked = (
        profile[f"train_bytes_est_sgd{suffix}"],
        profile[f"train_bytes_tracked_sgd{suffix}"],
    )
    gap = None if train is None or tracked is None else train / tracked - 1
    line = {
        "model": profile["model"],
        "batch": batch,
        "train_est": train,
        "train_tracked": tracked,
        "train_gap": gap,
        "infer_est": profile[f"infer_bytes_est{suffix}"],
        "infer_tracked": profile[f"infer_bytes_tracked{suffix}"],
    }
    if gap is not None and abs(gap) > TOLERANCE:
        line["note"] = (
            f"estimate {'above' if gap > 0 else 'below'} the tracked peak by more "
            f"than {TOLERANCE:.0%}"
        )
    speed = speeds.get((profile["model"], profile["image_size"], batch))
    growth = tracked_growth(profile, suffix)
    if speed is not None and growth is not None:
        line.update(
            process=speed["peak_bytes"],
            tracked_growth=growth,
            overhead=speed["peak_bytes"] - growth,
        )
    return line


def write_memory(store: Store, out_dir: Path) -> list[Path]:
    """memory.md: every profiled network at batch 1 and at its profile's batch."""
    profiles = sorted(
        (
            r
            for r in store.rows("profile")
            if r["status"] == Status.OK and "train_bytes_tracked_sgd" in r
        ),
        key=lambda r: (book_rank(r["model"]), r["image_size"]),
    )
    if not profiles:
        return []
    speeds = {
        (r["model"], r["image_size"], r["batch_size"]): r
        for r in book_speed(store.rows("speed"))
        if r["mode"] == "train"
    }
    lines = [
        _row(p, batch, suffix, speeds)
        for p in profiles
        for batch, suffix in ((1, "_batch1"), (p["batch_size"], ""))
    ]
    frame = pd.DataFrame(lines, columns=[column for column, _, _ in COLUMNS])
    gaps = frame["train_gap"].dropna().abs()
    worst = frame.loc[gaps.idxmax()]
    kinds = sorted({r["memory_kind"] for r in speeds.values()})
    infer_gap = (frame["infer_est"] / frame["infer_tracked"] - 1).abs().max()
    text = (
        "# Memory of a step: estimated, tracked, measured\n\n"
        "*Estimated*: a sum of counted parts. Inference: weights + the input batch + the peak of "
        "activations alive at once. Training (plain SGD): weights, input and int64 labels, and "
        "at the fullest moment either the end of the forward pass (every activation autograd "
        "saved, the logits) or, going backward through module i, the activations modules "
        "0..i still hold, the weight gradients of modules i and after, and the gradients module "
        "i makes: of its output and input and, for a module built of several ops (it saved "
        "more than its input), of everything it saved. *Tracked*: every tensor alive at once "
        "through one real step (forward, cross-entropy, backward, SGD step; inference: one "
        "forward pass), weights and input included, on the meta device: storages are counted "
        "as the ops make and free them, so library workspaces that are not tensors are not in "
        f"it. *Measured*: the speed sweep's training step at the same batch and input "
        f"({'; '.join(kinds)}), which starts with the weights resident and the runtime's "
        "one-time allocations made, makes its input batch and labels after the reading "
        "starts and reads the peak of its timed steps: the tracked growth beside it is the "
        "tracked peak less the weights, and the overhead column the measured growth less the "
        "tracked growth (allocator caching: on a CPU, the freed memory the heap keeps for "
        "reuse, in the holes between its blocks too, as the heap policy on the run's index "
        "says; oneDNN or cuDNN workspaces; the process's other memory). "
        "A batch norm network cannot train on a batch of one (dashes).\n\n"
        f"Largest gap between estimate and tracked peak in training: {worst['model']} at batch "
        f"{worst['batch']}, {worst['train_gap']:+.1%}; {int((gaps <= TOLERANCE).sum())} of "
        f"{len(gaps)} training lines within {TOLERANCE:.0%} (a line outside says so in its "
        f"note). In inference: {infer_gap:.1%} at most.\n\n" + markdown(frame, COLUMNS) + "\n"
    )
    written = out_dir / "memory.md"
    atomic_write(written, text)
    return [written]
