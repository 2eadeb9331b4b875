"""What each technique does to the book's loop (``Techniques`` in ``recipes``): the training
batch it gives the network (augmented, downscaled early, in its memory layout), the initial
weights, the optimizer and schedule, bf16 autocast, the weight average, and test-time
augmentation."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from bench.recipes import Preset, Techniques


def tta_logits(model: torch.nn.Module, x: torch.Tensor, techniques: Techniques) -> torch.Tensor:
    """The logits evaluation takes for a batch: of the images, averaged with their mirrors
    (flip_tta) and with the images shifted one pixel up-left and down-right (shift_tta)."""

    def mirrored(x: torch.Tensor) -> torch.Tensor:
        x = layout(x, techniques)
        logits = model(x).float()
        return (logits + model(x.flip(3)).float()) / 2 if techniques.flip_tta else logits

    logits = mirrored(x)
    if techniques.shift_tta:
        h, w = x.shape[2:]
        padded = F.pad(x, (1, 1, 1, 1))
        up_left, down_right = padded[:, :, 2:, 2:], padded[:, :, :h, :w]
        logits = logits / 2 + (mirrored(up_left) + mirrored(down_right)) / 4
    return logits


def transform(
    x: torch.Tensor, techniques: Techniques, seed: int, epoch: int, step: int
) -> torch.Tensor:
    """A training batch as the techniques give it to the network: augmented (seeded by the
    run's seed and the step), downscaled in the early epochs, in its memory layout."""
    if techniques.augment:
        x = augment(x, seed * 1_000_003 + step)
    if epoch < len(techniques.early_sides):
        x = F.interpolate(x, size=techniques.early_sides[epoch], mode="bilinear", antialias=True)
    return layout(x, techniques)


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


def uses_bf16(techniques: Techniques, device: torch.device) -> bool:
    if not techniques.bf16:
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast(techniques: Techniques, device: torch.device) -> Any:
    return torch.autocast(device.type, torch.bfloat16, enabled=uses_bf16(techniques, device))


def layout(x: torch.Tensor, techniques: Techniques) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if techniques.channels_last else x


def initialize(model: torch.nn.Module, techniques: Techniques) -> None:
    """With he_init, redraw every conv and linear weight He-normal (fan-in, for ReLU); the
    build's Xavier-uniform weights (the book's) stay otherwise."""
    if techniques.he_init:
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")


def optimizer_for(
    model: torch.nn.Module, lr: float, techniques: Techniques
) -> torch.optim.Optimizer:
    """SGD, with Nesterov momentum and weight decay where the techniques ask for them; or
    Adam (its default betas)."""
    if techniques.adam:
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=techniques.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=techniques.momentum,
        nesterov=techniques.momentum > 0,
        weight_decay=techniques.weight_decay,
    )


def schedule_for(optimizer, techniques: Techniques, work: Preset, steps_per_epoch: int) -> Any:
    if not techniques.one_cycle:
        return None
    lr = optimizer.param_groups[0]["lr"]
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        lr,
        total_steps=work.epochs * steps_per_epoch,
        pct_start=0.2,
        anneal_strategy="linear",
        cycle_momentum=False,
        div_factor=10,
        final_div_factor=1e3,
    )


def average_for(model: torch.nn.Module, techniques: Techniques) -> Average | None:
    return Average(model, techniques.ema) if techniques.ema else None


class Average:
    """An exponential moving average of a model's weights and batch-norm statistics (its
    counters copied), its decay ramped up from 0.1 as (1 + n) / (10 + n) over the first steps
    so that the initial weights fade. The step count lives on the host and an update is a few
    foreach kernels: no step waits for the device."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.module, self.decay, self.n = copy.deepcopy(model), decay, 0

    @torch.no_grad()
    def update_parameters(self, model: torch.nn.Module) -> None:
        pairs = list(
            zip(
                [*self.module.parameters(), *self.module.buffers()],
                [*model.parameters(), *model.buffers()],
                strict=True,
            )
        )
        averages = [a for a, _ in pairs if a.is_floating_point()]
        currents = [c for a, c in pairs if a.is_floating_point()]
        for average, current in pairs:
            if not average.is_floating_point():  # batch norm's counters
                average.copy_(current)
        if self.n == 0:
            torch._foreach_copy_(averages, currents)
        else:
            decay = min(self.decay, (1 + self.n) / (10 + self.n))
            torch._foreach_mul_(averages, decay)
            torch._foreach_add_(averages, torch._foreach_mul(currents, 1 - decay))
        self.n += 1

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "n": self.n}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.module.load_state_dict(saved["module"])
        self.n = saved["n"]
