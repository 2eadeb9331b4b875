"""Training on Fashion-MNIST: the book's recipes (chapter 8: SGD, batch 128, 10 epochs, per-model
learning rate and resize), adapted by a preset to a fixed amount of work; the fast recipe (the
book's loop plus switchable techniques, on its own schedule); and the exercise experiments as
named lists of runs. Everything here is data except ``train``.

Metrics are taken after every epoch. Training time excludes evaluation; it is what
time-to-accuracy uses.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import archs
from bench.complexity import step_flops_per_image
from bench.data import DeviceBatches, FashionMNIST, subset, torchvision_batches
from bench.timing import backend_for, summarize, time_steps

ACCURACY_TARGETS = (0.80, 0.85, 0.90, 0.92)


@dataclass(frozen=True)
class Tricks:
    """Techniques on top of the book's loop (plain SGD, constant learning rate), each a switch."""

    augment: bool = False  # on the device: a random 28x28 crop of the image padded by 2, a flip
    adam: bool = False  # Adam in place of SGD (momentum is then Adam's own)
    momentum: float = 0.0  # Nesterov momentum (0: plain SGD)
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    one_cycle: bool = False  # lr: linear warm-up over the first 20% of steps, linear decay to 0
    channels_last: bool = False  # NHWC activations and weights
    bf16: bool = False  # bfloat16 autocast, where the device has bf16 arithmetic
    ema: float = 0.0  # decay per step of a weight average that is evaluated instead (0: none)
    flip_tta: bool = False  # evaluation averages the logits of each image and its mirror

    def names(self) -> str:
        """The techniques switched on, joined by '+' ('-' for none)."""
        on = [f.name for f in dataclasses.fields(self) if getattr(self, f.name)]
        return "+".join(on) or "-"


PLAIN = Tricks()  # the book's loop
FAST = Tricks(augment=True, momentum=0.9, weight_decay=5e-4, label_smoothing=0.1, one_cycle=True,
              channels_last=True, bf16=True, ema=0.995, flip_tta=True)  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """What a preset trains each run on: a fixed amount of work (epochs over a fixed set of
    images), never a time, so that an accuracy does not depend on how fast or busy the machine
    is; and how the preset adapts a book recipe to that work."""

    name: str
    epochs: int
    train_per_class: int | None = None  # training images per class (None: all 6,000)
    test_per_class: int | None = None  # test images per class (None: all 1,000)
    epochs_by_family: Mapping[str, int] = field(default_factory=dict)  # where a family differs
    # a recipe's input side above this is trained at this side, or at the smallest the network
    # accepts if that is larger (None: the recipe's side)
    max_side: int | None = None
    lr: float | None = None  # replaces the recipe's learning rate (None: the recipe's)
    tricks: Tricks | None = None  # replaces the book's loop (None: the run's own techniques)
    skip: tuple[str, ...] = ()  # networks (shell patterns) this preset does not train
    # what a run with its own schedule (``Run.epochs``) trains under; None: that many epochs
    # over all the training images, evaluated on the whole test set after each
    scheduled: Preset | None = None

    def adapt(self, run: Run) -> tuple[Run, Preset]:
        """The run as this preset trains it, and the work it trains on. A run with its own
        schedule (the fast recipe) keeps its settings; its work is ``scheduled``."""
        if run.epochs is not None:
            return run, self.scheduled or Preset(self.name, epochs=run.epochs)
        spec = archs.spec(run.model)
        recipe_side = spec.recipe.resize if spec.recipe else None
        if run.resize is None and self.max_side and (recipe_side or 28) > self.max_side:
            run = dataclasses.replace(run, resize=max(self.max_side, spec.min_input_size))
        if run.lr is None and self.lr is not None:
            run = dataclasses.replace(run, lr=self.lr)
        if self.tricks is not None and run.tricks == PLAIN:
            run = dataclasses.replace(run, tricks=self.tricks)
        epochs = self.epochs_by_family.get(spec.family, self.epochs)
        return run, dataclasses.replace(self, epochs=epochs, epochs_by_family={})

    def trains(self, model: str) -> bool:
        """Whether this preset trains ``model``."""
        return not any(fnmatch.fnmatchcase(model, pattern) for pattern in self.skip)


PRESETS = {
    # the chapter's recipe, exactly: 10 epochs over all 60,000 images, the full test set
    "book": Preset("book", epochs=10),
    # a CPU: every network it trains learns on a fixed amount of work: Adam at lr 1e-3 on 2
    # epochs over 600 images a class (10 for the LeNets, whose steps cost little; 4 for
    # GoogLeNet, slow to leave chance without batch norm); inputs larger than 32 pixels at 32,
    # or at the smallest side the network accepts; evaluated on 200 test images a class. NiN
    # (which stayed at chance on this much work) and googlenet_28 (full resolution throughout,
    # 30 images/s here) are left to the book preset.
    "cpu": Preset("cpu", epochs=2, train_per_class=600, test_per_class=200,
                  epochs_by_family={"lenet": 10, "googlenet": 4}, max_side=32, lr=1e-3,
                  tricks=Tricks(adam=True), skip=("nin*", "googlenet_28")),
    # tests and CI: four epochs over 200 images per class (one for a scheduled run)
    "smoke": Preset("smoke", epochs=4, train_per_class=200, test_per_class=50,
                    scheduled=Preset("smoke", epochs=1, train_per_class=200, test_per_class=50)),
}  # fmt: skip


@dataclass(frozen=True)
class Run:
    """One training run: a registry network and, unless overridden, its book recipe."""

    model: str
    lr: float | None = None
    batch_size: int | None = None
    resize: int | None = None
    seed: int = 0
    lr_factor: float = 1.0  # multiplies the learning rate (an exercise's grid around it)
    epochs: int | None = None  # a schedule of its own (the preset's work does not apply)
    tricks: Tricks = PLAIN

    def settings(self) -> dict[str, Any]:
        """The run with the book's recipe filled in: lr (times ``lr_factor``), batch size,
        resize (None: 28), and the techniques on top of it."""
        recipe = archs.spec(self.model).recipe
        if recipe is None and (self.lr is None or self.batch_size is None):
            raise ValueError(f"{self.model} has no book recipe: give lr and batch_size")
        return {
            "model": self.model,
            "lr": float(f"{(self.lr if self.lr is not None else recipe.lr) * self.lr_factor:.6g}"),
            "batch_size": self.batch_size or recipe.batch_size,
            "resize": self.resize
            if self.resize is not None
            else (recipe.resize if recipe else None),
            "seed": self.seed,
            "epochs": self.epochs,
            "tricks": self.tricks.names(),
            "technique_settings": dataclasses.asdict(self.tricks),
        }


BOOK_MODELS = ("lenet", "bn_lenet", "alexnet", "vgg11_small", "nin", "googlenet", "resnet18",
               "densenet", "regnetx32")  # fmt: skip

# Named experiments: the book's runs, and the exercises that need training.
EXPERIMENTS: dict[str, tuple[Run, ...]] = {
    "book": tuple(Run(m) for m in BOOK_MODELS),
    # 8.5.7.2: LeNet with and without batch norm over learning rates (0.3 to 30 times the
    # preset's: 0.03 to 3.0 under the book's)
    "lr_grid": tuple(
        Run(m, lr_factor=f) for m in ("lenet", "bn_lenet") for f in (0.3, 1, 3, 10, 30)
    ),
    # 8.1.5.6: batch size against throughput, accuracy and peak memory
    "batch_sweep": tuple(Run("lenet", batch_size=b) for b in (32, 128, 512)),
    # 8.2.5.4: the book's small VGG-11 at 56 pixels instead of 224
    "vgg_sizes": (Run("vgg11_small", resize=56),),
    # 8.3.5.1-3: NiN with one or three 1x1 convs, 3x3 convs, a fully connected head
    "nin_variants": tuple(Run(m) for m in ("nin_one_1x1", "nin_three_1x1", "nin_3x3", "nin_fc")),
    # 8.1.5.7: LeNet-5 with ReLU and dropout; 8.5.7.1: a bias before batch norm, and none;
    # 8.5.7.3: batch norm after the convs only
    "lenet_variants": tuple(
        Run(m) for m in ("lenet_modern", "lenet_dropout", "bn_lenet_nobias", "bn_lenet_convs")
    ),
    # 8.1.5.5.2, 8.4.5.3: networks for 28x28 inputs
    "networks_28": tuple(Run(m) for m in ("lenet_28", "vgg_28", "googlenet_28", "resnet9_28")),
    # 8.4.5.1, 8.6.7.1, 8.6.7.4, 8.8.6.1-2: the variants whose accuracy an exercise asks for
    "variants": tuple(Run(m) for m in ("googlenet_bn", "resnet18_preact", "resnext18", "anynet")),
}
# The fast recipe: a small ResNet at 28x28 on a 7-epoch one-cycle schedule with every technique.
FAST_RUN = Run("resnet9_28", lr=0.2, batch_size=256, epochs=7, tricks=FAST)
EXPERIMENTS["fast"] = tuple(dataclasses.replace(FAST_RUN, seed=s) for s in (0, 1, 2))
# What each technique buys: the fast recipe with one switched off, then with none.
EXPERIMENTS["fast_ablation"] = (
    *(dataclasses.replace(FAST_RUN, tricks=dataclasses.replace(FAST, **{f.name: f.default}))
      for f in dataclasses.fields(Tricks) if getattr(FAST, f.name) != f.default),
    dataclasses.replace(FAST_RUN, tricks=PLAIN, lr=0.1),
)  # fmt: skip


def config(run: Run, preset: Preset, pipeline: str) -> dict[str, Any]:
    """Everything that determines a run's result: its key in the results store."""
    run, work = preset.adapt(run)
    return {**run.settings(), "name": work.name, "epochs": work.epochs,
            "train_per_class": work.train_per_class, "test_per_class": work.test_per_class,
            "pipeline": pipeline}  # fmt: skip


def evaluate(
    model: torch.nn.Module, batches: DeviceBatches, tricks: Tricks = PLAIN
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a split (with flip_tta, of the averaged logits)."""
    model.eval()
    loss, correct, seen = 0.0, 0, 0
    with torch.inference_mode(), _autocast(tricks, batches.images.device):
        for x, y in batches.epoch(0):
            x = _layout(x, tricks)
            logits = model(x).float()
            if tricks.flip_tta:
                logits = (logits + model(x.flip(3)).float()) / 2
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
    evaluation point (one an epoch).

    With ``checkpoint``, state is saved (atomically) at every evaluation point and a run that
    finds one resumes from it, ending with the metrics it would have had uninterrupted.
    ``pipeline`` "torchvision" feeds the book's per-image pipeline instead of device batches.
    ``on_step(step)`` is called after every optimizer step (progress, or tests).
    """
    run, work = preset.adapt(run)
    settings, tricks = run.settings(), run.tricks
    torch.manual_seed(settings["seed"])
    model = archs.build(settings["model"], image_size=settings["resize"] or 28, device=device)
    if tricks.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(model, settings["lr"], tricks)
    batches = _Batches(pipeline, subset(data.train, work.train_per_class), settings, device)
    schedule = _schedule(optimizer, tricks, work, len(batches))
    average = _average(model, tricks)
    test = DeviceBatches(subset(data.test, work.test_per_class), 512, device, settings["resize"],
                         shuffle=False)  # fmt: skip
    state = {"epoch": 0, "batch": 0, "step": 0, "train_s": 0.0, "wall_s": 0.0, "history": []}
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        for name, part in _parts(model, optimizer, schedule, average).items():
            part.load_state_dict(saved[name])
        torch.set_rng_state(saved["rng"])
        state = saved["state"]
    backend = backend_for(device)
    backend.reset_peak()
    status, window = "ok", _Window()
    try:
        while len(state["history"]) < work.epochs:
            started = time.perf_counter()
            for x, y in batches.epoch(state["epoch"], state["batch"]):
                if tricks.augment:
                    x = augment(x, settings["seed"] * 1_000_003 + state["step"])
                loss, correct = _step(model, optimizer, _layout(x, tricks), y, tricks)
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
            evaluated = model if average is None else average.module
            state["history"].append(_point(state, window, evaluated, test, len(batches), tricks))
            window = _Window()
            if checkpoint is not None:
                _save(checkpoint, _parts(model, optimizer, schedule, average), state)
    except Diverged:
        status = "diverged"
    peak = backend.peak_bytes()
    if checkpoint is not None and checkpoint.exists():
        checkpoint.unlink()  # the run is over: its result goes to the store
    summary = _summary(settings, state["history"], status, peak, backend)
    summary["autocast"] = "bf16" if _bf16(tricks, device) else "off"
    summary["params"] = sum(p.numel() for p in model.parameters())
    side = settings["resize"] or 28  # the cost of the network as trained, counted
    meta = archs.build(settings["model"], image_size=side, device="meta")
    summary["fwd_macs_per_image"] = step_flops_per_image(meta, (1, side, side))["infer"] // 2
    return summary, state["history"]


def augment(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Per image, on its device: a random crop of the image zero-padded by 2 on each side, at
    the original size, mirrored left-right with probability 1/2. Seeded: the same seed gives the
    same batch (exact resume)."""
    generator = torch.Generator(x.device).manual_seed(seed)
    n, _, h, w = x.shape
    dy, dx = (torch.randint(0, 5, (n,), generator=generator, device=x.device) for _ in "yx")
    flip = torch.rand(n, generator=generator, device=x.device) < 0.5
    padded = F.pad(x, (2, 2, 2, 2))
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (n, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (n, 1, w)
    cols = torch.where(flip[:, None, None], cols.flip(2), cols)
    images = torch.arange(n, device=x.device)[:, None, None]
    return padded[images, :, rows, cols].permute(0, 3, 1, 2)  # (n, h, w, c) -> (n, c, h, w)


def _bf16(tricks: Tricks, device: torch.device) -> bool:
    if not tricks.bf16:
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _autocast(tricks: Tricks, device: torch.device) -> Any:
    return torch.autocast(device.type, torch.bfloat16, enabled=_bf16(tricks, device))


def _layout(x: torch.Tensor, tricks: Tricks) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if tricks.channels_last else x


def _optimizer(model: torch.nn.Module, lr: float, tricks: Tricks) -> torch.optim.Optimizer:
    """SGD, with Nesterov momentum and weight decay where the techniques ask for them; or
    Adam (its default betas)."""
    if tricks.adam:
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=tricks.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=tricks.momentum,
        nesterov=tricks.momentum > 0,
        weight_decay=tricks.weight_decay,
    )


def _schedule(optimizer, tricks: Tricks, work: Preset, steps_per_epoch: int) -> Any:
    if not tricks.one_cycle:
        return None
    lr = optimizer.param_groups[0]["lr"]
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, lr, total_steps=work.epochs * steps_per_epoch, pct_start=0.2,
        anneal_strategy="linear", cycle_momentum=False, div_factor=10, final_div_factor=1e3,
    )  # fmt: skip


def _average(model: torch.nn.Module, tricks: Tricks) -> Any:
    """An exponential moving average of the weights and batch-norm statistics, its decay ramped
    up from 0.1 as (1 + n) / (10 + n) over the first steps so that the initial weights fade."""
    if not tricks.ema:
        return None
    from torch.optim.swa_utils import AveragedModel

    def blend(average: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        decay = min(tricks.ema, (1 + int(n)) / (10 + int(n)))
        return average * decay + current * (1 - decay)

    return AveragedModel(model, avg_fn=blend, use_buffers=True)


def _parts(model, optimizer, schedule, average) -> dict[str, Any]:
    """What a checkpoint holds, by name."""
    parts = {"model": model, "optimizer": optimizer, "schedule": schedule, "average": average}
    return {name: part for name, part in parts.items() if part is not None}


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the queued steps are part of the time
    return time.perf_counter()


class _Batches:
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
        loader = torchvision_batches(self.split, self.size, self.resize, generator=generator)
        for x, y in itertools.islice(loader, start, None):
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def _step(model, optimizer, x, y, tricks: Tricks = PLAIN) -> tuple[torch.Tensor, torch.Tensor]:
    with _autocast(tricks, x.device):
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=tricks.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach() * len(y), (logits.argmax(1) == y).sum()


class _Window:
    """Training loss and accuracy since the last evaluation, summed on the device (no sync)."""

    def __init__(self):
        self.loss, self.correct, self.seen = torch.zeros(()), torch.zeros((), dtype=torch.long), 0

    def add(self, loss: torch.Tensor, correct: torch.Tensor, n: int) -> None:
        self.loss = self.loss.to(loss.device) + loss
        self.correct = self.correct.to(correct.device) + correct
        self.seen += n

    def finite(self) -> bool:
        return bool(torch.isfinite(self.loss))


def _point(state: dict, window: _Window, model, test: DeviceBatches, batches: int,
           tricks: Tricks) -> dict:  # fmt: skip
    started = time.perf_counter()
    test_loss, test_acc = evaluate(model, test, tricks)
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


def _save(path: Path, parts: dict[str, Any], state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    saved = {name: part.state_dict() for name, part in parts.items()}
    torch.save({**saved, "rng": torch.get_rng_state(), "state": state}, partial)
    os.replace(partial, path)


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
    }
    for target in ACCURACY_TARGETS:
        reached = [h["train_s"] for h in history if h["test_acc"] >= target]
        summary[f"time_to_{round(target * 100)}_s"] = reached[0] if reached else None
    return summary


# (network, input side) pairs of `bench pipeline`: small, middle and large inputs.
PIPELINE_CASES = (("lenet", None), ("resnet18", 96), ("alexnet", 224))
FEEDS = ("ours", "torchvision", "compute_only")


class _Feed:
    """One network, its optimizer and one input pipeline, warmed up and ready to be timed."""

    def __init__(self, model_name: str, resize: int | None, feed: str, data: FashionMNIST,
                 device: torch.device, warmup_steps: int = 3):  # fmt: skip
        torch.manual_seed(0)
        self.name, self.device = feed, device
        self.model = archs.build(model_name, image_size=resize or 28, device=device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
        if feed == "compute_only":
            side = resize or 28
            x = torch.rand(128, 1, side, side, device=device)
            self.batches = itertools.repeat((x, torch.randint(10, (128,), device=device)))
        else:
            settings = {"batch_size": 128, "resize": resize, "seed": 0}
            self.batches = _forever(_Batches(feed, data.train, settings, device))
        time_steps(self.step, backend_for(device), 0, warmup=warmup_steps, max_steps=1)

    def step(self) -> None:
        loss, _ = _step(self.model, self.optimizer, *next(self.batches))
        if self.name == "torchvision":
            float(loss)  # the book's loop reads the loss every step

    def time(self, seconds: float) -> list[float]:
        return time_steps(self.step, backend_for(self.device), seconds, warmup=0)


def feed_throughputs(
    model_name: str, resize: int | None, data: FashionMNIST, device: torch.device,
    seconds: float = 5.0, rounds: int = 3,
) -> list[dict[str, Any]]:  # fmt: skip
    """Training images/s of one network fed by each pipeline, batch 128.

    ``ours``: device-resident uint8 batches; ``torchvision``: the book's per-image pipeline
    with DataLoader workers and a host read of the loss every step; ``compute_only``: one random
    batch already on the device, reused, so that only the training step is measured. Each step,
    fetching its batch included, is timed; the pipelines take turns in ``rounds`` rounds of
    ``seconds / rounds`` each, so that a slow spell of the machine hits them alike; throughput
    is the batch over the median step.
    """
    feeds = [_Feed(model_name, resize, feed, data, device) for feed in FEEDS]
    times: dict[str, list[float]] = {feed.name: [] for feed in feeds}
    for _ in range(rounds):
        for feed in feeds:
            times[feed.name] += feed.time(seconds / rounds)
    # what our pipeline costs by itself: making one batch, no training step
    ours = next(feed for feed in feeds if feed.name == "ours")
    making = time_steps(lambda: next(ours.batches), backend_for(device), 1.0, warmup=1)
    return [
        {"model": model_name, "resize": resize, "feed": name, **summarize(steps, 128),
         "batch_ms": 1000 * statistics.median(making) if name == "ours" else None}
        for name, steps in times.items()
    ]  # fmt: skip


def _forever(batches: _Batches) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for epoch in itertools.count():
        yield from batches.epoch(epoch, 0)


PROGRESS_EVERY_S = 30.0  # a running training run prints a line this often


def train_rows(run: Run, preset: Preset, data_dir: Path | None, device: str,
               checkpoint: Path | None, pipeline: str) -> Iterator[dict[str, Any]]:  # fmt: skip
    """One run as a row stream (for a child process): load the data, train, yield the result."""
    from bench.data import load

    started = last = time.perf_counter()

    def progress(step: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= PROGRESS_EVERY_S:
            last = now
            print(f"    {run.model}, seed {run.seed}: step {step}, {now - started:.0f} s",
                  flush=True)  # fmt: skip

    summary, history = train(run, preset, load(data_dir), torch.device(device), checkpoint,
                             pipeline, on_step=progress)  # fmt: skip
    yield {"summary": summary, "history": history}
