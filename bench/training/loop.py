"""The training loop: one run on Fashion-MNIST as its preset adapts it, evaluated after every
epoch (or, with eval_at_end, after the last), resumable from a checkpoint. Training time
excludes evaluation; it is what time-to-accuracy uses.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import archs
from bench.data import DeviceBatches, FashionMNIST, load, subset, torchvision_batches
from bench.device import backend_for, fp32_math
from bench.flops import step_flops_per_image
from bench.recipes import (
    ACCURACY_TARGETS,
    EVAL_BATCH_SIZE,
    PLAIN,
    Preset,
    Run,
    Techniques,
)
from bench.schema import Status
from bench.training.techniques import (
    autocast,
    average_for,
    initialize,
    optimizer_for,
    schedule_for,
    transform,
    tta_logits,
    uses_bf16,
)


def evaluate(
    model: torch.nn.Module, batches: DeviceBatches, techniques: Techniques = PLAIN
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a split (with test-time augmentation, of the
    averaged logits)."""
    model.eval()
    loss, correct, seen = 0.0, 0, 0
    with torch.inference_mode(), autocast(techniques, batches.images.device):
        for x, y in batches.epoch(0):
            logits = tta_logits(model, x, techniques)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
    model.train()
    return loss / seen, correct / seen


class Diverged(Exception):
    """The training loss became NaN or infinite."""


def train(
    run: Run,
    preset: Preset,
    data: FashionMNIST,
    device: torch.device,
    checkpoint: Path | None = None,
    pipeline: str = "ours",
    on_step: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train one run as ``preset`` adapts it; return its summary row and one row per
    evaluation point (one an epoch, or the last epoch only with eval_at_end).

    With ``checkpoint``, state is saved (atomically) after every epoch and a run that
    finds one resumes from it, ending with the metrics it would have had uninterrupted.
    ``pipeline`` "torchvision" feeds the book's per-image pipeline instead of device batches.
    ``on_step(step)`` is called after every optimizer step (progress, or tests).
    """
    run, work = preset.adapt(run)
    settings, techniques = run.settings(), run.techniques
    torch.manual_seed(settings["seed"])
    model = archs.build(settings["model"], image_size=settings["resize"] or 28, device=device)
    initialize(model, techniques)
    if techniques.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = optimizer_for(model, settings["lr"], techniques)
    batches = Batches(pipeline, subset(data.train, work.train_per_class), settings, device)
    schedule = schedule_for(optimizer, techniques, work, len(batches))
    average = average_for(model, techniques)
    test = DeviceBatches(
        subset(data.test, work.test_per_class),
        EVAL_BATCH_SIZE,
        device,
        settings["resize"],
        shuffle=False,
    )
    state = {"epoch": 0, "batch": 0, "step": 0, "train_s": 0.0, "wall_s": 0.0, "history": []}
    window = _Window()
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        for name, part in _parts(model, optimizer, schedule, average).items():
            part.load_state_dict(saved[name])
        _restore_rng(saved)
        state, window = saved["state"], _Window(*saved["window"])
    step_model, compile_s = model, None
    if techniques.compile and state["epoch"] < work.epochs:
        step_model = torch.compile(model, mode=techniques.compile)
        compile_s = _warm_up(step_model, model, optimizer, batches, techniques, work.epochs)
    backend = backend_for(device)
    backend.reset_peak()
    status = Status.OK
    try:
        while state["epoch"] < work.epochs:
            started = _clock(device)
            for x, y in batches.epoch(state["epoch"], state["batch"]):
                x = transform(x, techniques, settings["seed"], state["epoch"], state["step"])
                loss, correct = train_step(step_model, optimizer, x, y, techniques)
                if schedule is not None:
                    schedule.step()
                if average is not None:
                    average.update_parameters(model)
                if pipeline == "torchvision":
                    float(loss)  # the book's loop reads the loss on the host every step
                window.add(loss, correct, len(y))
                state["step"] += 1
                state["batch"] += 1
                if on_step:
                    on_step(state["step"])
                if state["step"] % 50 == 0 and not window.finite():
                    raise Diverged
            elapsed = _clock(device) - started
            state["train_s"] += elapsed
            state["wall_s"] += elapsed
            state["epoch"], state["batch"] = state["epoch"] + 1, 0
            if not window.finite():
                raise Diverged
            if state["epoch"] == work.epochs or not techniques.eval_at_end:
                evaluated = model if average is None else average.module
                state["history"].append(
                    _point(state, window, evaluated, test, len(batches), techniques)
                )
                window = _Window()
            if checkpoint is not None:
                _save(checkpoint, _parts(model, optimizer, schedule, average), state, window)
    except Diverged:
        status = Status.DIVERGED
    peak = backend.peak_bytes()
    if checkpoint is not None and checkpoint.exists():
        checkpoint.unlink()  # the run is over: its result goes to the store
    summary = _summary(settings, state["history"], status, peak, backend)
    summary["autocast"] = "bf16" if uses_bf16(techniques, device) else "off"
    summary["compile_s"] = compile_s
    summary["params"] = sum(p.numel() for p in model.parameters())
    side = settings["resize"] or 28  # the cost of the network as trained, counted
    meta = archs.build(settings["model"], image_size=side, device="meta")
    summary["fwd_macs_per_image"] = step_flops_per_image(meta, (1, side, side))["infer"] // 2
    return summary, state["history"]


def _warm_up(
    compiled: torch.nn.Module,
    model: torch.nn.Module,
    optimizer,
    batches: Batches,
    techniques: Techniques,
    epochs: int,
) -> float:
    """Compile ``compiled`` for every input shape the run trains on (each side the epochs
    train at, the full batch and the last, smaller one) by taking three training steps on each;
    then put the weights, optimizer state and random generators back as they were. Returns the
    seconds it took: compilation is not training time."""
    x, y = next(batches.ours.epoch(0))
    last = len(batches.split) % len(y)
    sides = techniques.early_sides
    first_epoch_at = {(sides[e] if e < len(sides) else 0): e for e in reversed(range(epochs))}
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict(), _rng_state()))
    started = _clock(x.device)
    for epoch in first_epoch_at.values():
        for n in (len(y), last) if last else (len(y),):
            for _ in range(3):  # CUDA graphs are recorded on a step after the first
                train_step(
                    compiled,
                    optimizer,
                    transform(x[:n], techniques, 0, epoch, 0),
                    y[:n],
                    techniques,
                )
    elapsed = _clock(x.device) - started
    model.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    _restore_rng(saved[2])
    return elapsed


def _parts(model, optimizer, schedule, average) -> dict[str, Any]:
    """What a checkpoint holds, by name."""
    parts = {"model": model, "optimizer": optimizer, "schedule": schedule, "average": average}
    return {name: part for name, part in parts.items() if part is not None}


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the queued steps are part of the time
    return time.perf_counter()


class Batches:
    """The training batches of an epoch from one of the two pipelines, seeded by epoch."""

    def __init__(self, pipeline: str, split, settings: dict[str, Any], device: torch.device):
        if pipeline not in ("ours", "torchvision"):
            raise ValueError(f"pipeline must be 'ours' or 'torchvision', got {pipeline!r}")
        self.pipeline, self.split, self.device = pipeline, split, device
        self.size, self.resize, self.seed = (
            settings["batch_size"],
            settings["resize"],
            settings["seed"],
        )
        self.ours = DeviceBatches(split, self.size, device, self.resize, seed=self.seed)

    def __len__(self) -> int:
        return len(self.ours)

    def epoch(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.pipeline == "ours":
            yield from self.ours.epoch(epoch, start)
            return
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        loader = torchvision_batches(
            self.split,
            self.size,
            self.resize,
            generator=generator,
            pin_memory=self.device.type == "cuda",
        )
        for x, y in itertools.islice(loader, start, None):
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def train_step(
    model, optimizer, x, y, techniques: Techniques = PLAIN
) -> tuple[torch.Tensor, torch.Tensor]:
    with autocast(techniques, x.device):
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=techniques.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach() * len(y), (logits.argmax(1) == y).sum()


class _Window:
    """Training loss and accuracy since the last evaluation, summed on the device (no sync)."""

    def __init__(self, loss=None, correct=None, seen: int = 0):
        self.loss = torch.zeros(()) if loss is None else loss
        self.correct = torch.zeros((), dtype=torch.long) if correct is None else correct
        self.seen = seen

    def add(self, loss: torch.Tensor, correct: torch.Tensor, n: int) -> None:
        self.loss = self.loss.to(loss.device) + loss
        self.correct = self.correct.to(correct.device) + correct
        self.seen += n

    def finite(self) -> bool:
        return bool(torch.isfinite(self.loss))


def _point(
    state: dict, window: _Window, model, test: DeviceBatches, batches: int, techniques: Techniques
) -> dict:
    started = time.perf_counter()
    test_loss, test_acc = evaluate(model, test, techniques)
    state["wall_s"] += time.perf_counter() - started
    previous = state["history"][-1]["train_s"] if state["history"] else 0.0
    return {
        "epoch": state["epoch"] + state["batch"] / batches,
        "step": state["step"],
        "train_loss": float(window.loss) / max(window.seen, 1),
        "train_acc": int(window.correct) / max(window.seen, 1),
        "test_loss": test_loss,
        "test_acc": test_acc,
        "train_s": state["train_s"],
        "wall_s": state["wall_s"],
        "images_per_s": window.seen / max(state["train_s"] - previous, 1e-9),
    }


def _save(path: Path, parts: dict[str, Any], state: dict, window: _Window) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    saved = {name: part.state_dict() for name, part in parts.items()}
    totals = (window.loss, window.correct, window.seen)  # the epochs not yet evaluated
    torch.save({**saved, **_rng_state(), "state": state, "window": totals}, partial)
    os.replace(partial, path)


def _rng_state() -> dict[str, Any]:
    """The random generators a resumed run goes on from: the CPU's, and each GPU's where CUDA
    is in use (dropout draws from them)."""
    state = {"rng": torch.get_rng_state()}
    if torch.cuda.is_initialized():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(saved: dict[str, Any]) -> None:
    torch.set_rng_state(saved["rng"])
    if "cuda_rng" in saved:
        torch.cuda.set_rng_state_all(saved["cuda_rng"])


def _summary(settings, history, status, peak, backend) -> dict[str, Any]:
    final = history[-1] if history else {}
    summary = {
        **settings,
        "status": status,
        "evaluations": len(history),
        "test_acc": final.get("test_acc", math.nan),
        "best_test_acc": max((h["test_acc"] for h in history), default=math.nan),
        "train_loss": final.get("train_loss", math.nan),
        "train_s": final.get("train_s", math.nan),
        "wall_s": final.get("wall_s", math.nan),  # training and evaluation
        "images_per_s": (
            final["step"] * settings["batch_size"] / final["train_s"] if final else math.nan
        ),
        "peak_bytes": peak,
        "memory_kind": backend.memory_kind,
        "device_name": backend.name,
        # what an exact resume depends on: deterministic kernels (always so on the CPU)
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        **fp32_math(),  # what fp32 layers may run as on a GPU (TF32)
    }
    for target in ACCURACY_TARGETS:
        reached = [h["train_s"] for h in history if h["test_acc"] >= target]
        summary[f"time_to_{round(target * 100)}_s"] = reached[0] if reached else None
    return summary


PROGRESS_EVERY_S = 30.0  # a running training run prints a line this often


def train_rows(
    run: Run,
    preset: Preset,
    data_dir: Path | None,
    device: str,
    checkpoint: Path | None,
    pipeline: str,
) -> Iterator[dict[str, Any]]:
    """One run as a row stream (for a child process): load the data, train, yield the result."""
    started = last = time.perf_counter()

    def progress(step: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= PROGRESS_EVERY_S:
            last = now
            print(
                f"    {run.model}, seed {run.seed}: step {step}, {now - started:.0f} s", flush=True
            )

    # a GPU run lets cuDNN time its convolution algorithms for each shape and keep the
    # fastest (recorded with the run); this is the run's own process
    torch.backends.cudnn.benchmark = torch.device(device).type == "cuda"
    summary, history = train(
        run, preset, load(data_dir), torch.device(device), checkpoint, pipeline, on_step=progress
    )
    yield {"summary": summary, "history": history}
