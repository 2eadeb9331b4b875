"""Input pipelines against compute alone: training throughput of one network fed by our
device-resident batches, by the book's torchvision DataLoader, and by one reused batch.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

import archs
from bench.data import FashionMNIST, load
from bench.device import backend_for, resolve_device
from bench.timing import summarize, time_steps
from bench.training.loop import Batches, train_step

# (network, input side) pairs of `bench pipeline`: small, middle and large inputs.
PIPELINE_CASES = (("lenet", None), ("resnet18", 96), ("alexnet", 224))
FEEDS = ("ours", "torchvision", "compute_only")


class _Feed:
    """One network, its optimizer and one input pipeline, warmed up and ready to be timed."""

    def __init__(
        self,
        model_name: str,
        resize: int | None,
        feed: str,
        data: FashionMNIST,
        device: torch.device,
        warmup_steps: int = 3,
    ):
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
            self.batches = _forever(Batches(feed, data.train, settings, device))
        time_steps(self.step, backend_for(device), 0, warmup=warmup_steps, max_steps=1)

    def step(self) -> None:
        loss, _ = train_step(self.model, self.optimizer, *next(self.batches))
        if self.name == "torchvision":
            float(loss)  # the book's loop reads the loss every step

    def time(self, seconds: float) -> list[float]:
        return time_steps(self.step, backend_for(self.device), seconds, warmup=0)


def feed_throughputs(
    model_name: str,
    resize: int | None,
    data_dir: Path | None,
    device: str,
    seconds: float = 5.0,
    rounds: int = 3,
) -> list[dict[str, Any]]:
    """Training images/s of one network fed by each pipeline, batch 128, on Fashion-MNIST from
    ``data_dir`` (``bench.data.load``).

    ``ours``: device-resident uint8 batches; ``torchvision``: the book's per-image pipeline
    with DataLoader workers and a host read of the loss every step; ``compute_only``: one random
    batch already on the device, reused, so that only the training step is measured. Each step,
    fetching its batch included, is timed; the pipelines take turns in ``rounds`` rounds of
    ``seconds / rounds`` each, so that a slow spell of the machine hits them alike; throughput
    is the batch over the median step.
    """
    data, device = load(data_dir), resolve_device(device)
    feeds = [_Feed(model_name, resize, feed, data, device) for feed in FEEDS]
    times: dict[str, list[float]] = {feed.name: [] for feed in feeds}
    for _ in range(rounds):
        for feed in feeds:
            times[feed.name] += feed.time(seconds / rounds)
    # what our pipeline costs by itself: making one batch, no training step
    ours = next(feed for feed in feeds if feed.name == "ours")
    making = time_steps(lambda: next(ours.batches), backend_for(device), 1.0, warmup=1)
    return [
        {
            "model": model_name,
            "resize": resize,
            "feed": name,
            **summarize(steps, 128),
            "batch_ms": 1000 * statistics.median(making) if name == "ours" else None,
        }
        for name, steps in times.items()
    ]


def _forever(batches: Batches) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for epoch in itertools.count():
        yield from batches.epoch(epoch, 0)
