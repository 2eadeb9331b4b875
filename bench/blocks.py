"""Chapter 7's layer-level exercises: one conv or pooling layer at a time, its cost by the
closed-form formula, as counted by bench.flops, and timed on a device (``python -m bench
blocks``)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import torch
from torch import nn

from bench.device import backend_for, resolve_device
from bench.flops import profile
from bench.timing import time_steps

# (exercise, case) -> (c_i, c_o, kernel, side, padding, stride): 7.4.2's layer and 7.4.3's grid
CONVS: dict[tuple[str, str], tuple[int, int, int, int, int, int]] = {
    ("7.4.3", "base: 16 -> 32 channels, 3x3, 28x28, padding 1"): (16, 32, 3, 28, 1, 1),
    ("7.4.3", "2x input channels"): (32, 32, 3, 28, 1, 1),
    ("7.4.3", "2x output channels"): (16, 64, 3, 28, 1, 1),
    ("7.4.3", "2x input and output channels"): (32, 64, 3, 28, 1, 1),
    ("7.4.3", "2x padding (2)"): (16, 32, 3, 28, 2, 1),
    ("7.4.2", "stride 2"): (16, 32, 3, 28, 1, 2),
    ("7.4.2", "5x5 kernel, padding 2"): (16, 32, 5, 28, 2, 1),
}
BATCH = 32
FP32 = 4  # bytes
CPU = torch.device("cpu")


def _median_ms(step: Any, device: torch.device, seconds: float) -> float:
    return 1000 * statistics.median(time_steps(step, backend_for(device), seconds, warmup=2))


def conv_row(c_i: int, c_o: int, k: int, side: int, padding: int, stride: int,
             seconds: float = 0.3, device: torch.device = CPU) -> dict[str, Any]:  # fmt: skip
    """One conv layer (no bias) at batch ``BATCH``: per-image formula, counted, and timed on
    ``device``."""
    out = (side + 2 * padding - k) // stride + 1
    layer = nn.Conv2d(c_i, c_o, k, stride, padding, bias=False)
    alone = profile(nn.Sequential(layer), image_size=side, batch_size=BATCH, in_channels=c_i)
    # behind another layer, as a hidden layer is, its input needs a gradient too
    hidden = profile(nn.Sequential(nn.Conv2d(c_i, c_i, 1, bias=False), layer), image_size=side,
                     batch_size=BATCH, in_channels=c_i)  # fmt: skip
    counted = hidden.layers.set_index("layer").loc["1"]
    summary = alone.summary.iloc[0]
    layer, x = layer.to(device), torch.randn(BATCH, c_i, side, side, device=device)
    x_grad = x.clone().requires_grad_()
    with torch.no_grad():
        forward_ms = _median_ms(lambda: layer(x), device, seconds)
    both_ms = _median_ms(lambda: layer(x_grad).sum().backward(), device, seconds)
    macs = c_i * c_o * k * k * out * out
    return {
        "c_i": c_i, "c_o": c_o, "kernel": k, "side": side, "padding": padding, "stride": stride,
        "out_side": out,
        "fwd_macs_formula": macs,
        "fwd_macs_counted": float(counted["fwd_macs"]) / BATCH,
        "bwd_macs_formula": 2 * macs,  # input gradient and weight gradient
        "bwd_macs_counted": float(counted["bwd_macs"]) / BATCH,
        "weight_bytes_formula": FP32 * c_o * c_i * k * k,
        "weight_bytes_counted": int(summary["weight_bytes"]),
        "output_bytes_formula": FP32 * c_o * out * out,
        "saved_bytes_formula": FP32 * c_i * side * side,  # backward keeps the input (and weight)
        "saved_bytes_counted": float(summary["saved_activation_bytes"]) / BATCH,
        "fwd_ms": forward_ms,
        "fwd_bwd_ms": both_ms,
        "batch_size": BATCH,
        "device": device.type,
        "device_name": backend_for(device).name,
    }  # fmt: skip


def shape_row() -> dict[str, Any]:
    """7.3.1: kernel (3, 5), padding (0, 1), stride (3, 4) on 8x8: formula and built layer."""
    (k_h, k_w), (p_h, p_w), (s_h, s_w), n = (3, 5), (0, 1), (3, 4), 8
    formula = ((n + 2 * p_h - k_h) // s_h + 1, (n + 2 * p_w - k_w) // s_w + 1)
    layer = nn.Conv2d(1, 1, (k_h, k_w), padding=(p_h, p_w), stride=(s_h, s_w))
    built = tuple(layer(torch.zeros(1, 1, n, n)).shape[-2:])
    return {"formula_h": formula[0], "formula_w": formula[1], "built_h": built[0],
            "built_w": built[1]}  # fmt: skip


def pool_row(channels: int = 64, side: int = 56, k: int = 2) -> dict[str, Any]:
    """7.5.3: a k x k average pool of stride k: per image FLOPs by formula and counted."""
    out = side // k
    hidden = profile(nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False),
                                   nn.AvgPool2d(k)), image_size=side, batch_size=BATCH,
                     in_channels=channels)  # fmt: skip
    counted = hidden.layers.set_index("layer").loc["1"]
    return {
        "channels": channels, "side": side, "kernel": k, "out_side": out,
        # k*k - 1 additions and one multiplication by 1/k^2 per output
        "fwd_flops_formula": channels * out * out * k * k,
        "fwd_flops_counted": 2 * float(counted["fwd_macs"]) / BATCH,
        "params": 0,
    }  # fmt: skip


def cases(seconds: float = 0.3, device: torch.device = CPU
          ) -> list[tuple[str, dict[str, Any], Callable[[], dict]]]:  # fmt: skip
    """(exercise, config, measure) for every block measurement; the timed ones on ``device``,
    whose name their config holds."""
    timed = {"seconds": seconds, "device": backend_for(device).name}
    convs = [
        (exercise, {"case": case, **timed}, partial(conv_row, *shape, seconds, device))
        for (exercise, case), shape in CONVS.items()
    ]
    return [
        ("7.3.1", {"case": "kernel (3, 5), padding (0, 1), stride (3, 4), 8x8"}, shape_row),
        *convs,
        ("7.5.3", {"case": "2x2 average pool, stride 2, 64 channels, 56x56"}, pool_row),
    ]


def measure(seconds: float, indices: list[int], device: str = "cpu"
            ) -> Iterator[tuple[int, dict[str, Any]]]:  # fmt: skip
    """(index, row) for the cases of ``cases(seconds, device)`` at ``indices``, one after
    another."""
    chosen = cases(seconds, resolve_device(device))
    for index in indices:
        yield index, chosen[index][2]()
