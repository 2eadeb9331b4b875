"""Chapter 7's layer-level exercises (``python -m bench layers``): one conv or pooling layer at
a time, its cost by the closed-form formula, as counted by bench.flops, and timed on a device;
and chapter 7's primitives timed against each other there, each way's output checked against
the first way's before it is timed."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archs import ops
from bench.console import plural
from bench.device import backend_for, full_fp32, matmul_as_convs, resolve_device
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


def _timed(step: Any, device: torch.device, seconds: float) -> dict[str, Any]:
    """``step`` timed on ``device`` for ``seconds``: the median and interquartile range of its
    times (ms), and how many there were."""
    times = [1000 * t for t in time_steps(step, backend_for(device), seconds, warmup=2)]
    q1, median, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else times * 3
    return {"median_ms": median, "iqr_ms": q3 - q1, "n": len(times)}


def _where(device: torch.device) -> dict[str, str]:
    return {"device": device.type, "device_name": backend_for(device).name}


def conv_row(
    c_i: int,
    c_o: int,
    k: int,
    side: int,
    padding: int,
    stride: int,
    seconds: float = 0.3,
    device: torch.device = CPU,
) -> dict[str, Any]:
    """One conv layer (no bias) at batch ``BATCH``: per-image formula, counted, and timed on
    ``device``."""
    out = (side + 2 * padding - k) // stride + 1
    layer = nn.Conv2d(c_i, c_o, k, stride, padding, bias=False)
    alone = profile(nn.Sequential(layer), image_size=side, batch_size=BATCH, in_channels=c_i)
    # behind another layer, as a hidden layer is, its input needs a gradient too
    hidden = profile(
        nn.Sequential(nn.Conv2d(c_i, c_i, 1, bias=False), layer),
        image_size=side,
        batch_size=BATCH,
        in_channels=c_i,
    )
    counted = hidden.layers.set_index("layer").loc["1"]
    summary = alone.summary.iloc[0]
    layer, x = layer.to(device), torch.randn(BATCH, c_i, side, side, device=device)
    x_grad = x.clone().requires_grad_()
    with torch.no_grad():
        forward = _timed(lambda: layer(x), device, seconds)
    both = _timed(lambda: layer(x_grad).sum().backward(), device, seconds)
    macs = c_i * c_o * k * k * out * out
    return {
        "c_i": c_i,
        "c_o": c_o,
        "kernel": k,
        "side": side,
        "padding": padding,
        "stride": stride,
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
        "fwd_ms": forward["median_ms"],
        "fwd_iqr_ms": forward["iqr_ms"],
        "fwd_bwd_ms": both["median_ms"],
        "fwd_bwd_iqr_ms": both["iqr_ms"],
        "batch_size": BATCH,
        **_where(device),
    }


def shape_row() -> dict[str, Any]:
    """7.3.1: kernel (3, 5), padding (0, 1), stride (3, 4) on 8x8: formula and built layer."""
    (k_h, k_w), (p_h, p_w), (s_h, s_w), n = (3, 5), (0, 1), (3, 4), 8
    formula = ((n + 2 * p_h - k_h) // s_h + 1, (n + 2 * p_w - k_w) // s_w + 1)
    layer = nn.Conv2d(1, 1, (k_h, k_w), padding=(p_h, p_w), stride=(s_h, s_w))
    built = tuple(layer(torch.zeros(1, 1, n, n)).shape[-2:])
    return {
        "formula_h": formula[0],
        "formula_w": formula[1],
        "built_h": built[0],
        "built_w": built[1],
    }


def pool_row(channels: int = 64, side: int = 56, k: int = 2) -> dict[str, Any]:
    """7.5.3: a k x k average pool of stride k: per image FLOPs by formula and counted."""
    out = side // k
    hidden = profile(
        nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.AvgPool2d(k)),
        image_size=side,
        batch_size=BATCH,
        in_channels=channels,
    )
    counted = hidden.layers.set_index("layer").loc["1"]
    return {
        "channels": channels,
        "side": side,
        "kernel": k,
        "out_side": out,
        # k*k - 1 additions and one multiplication by 1/k^2 per output
        "fwd_flops_formula": channels * out * out * k * k,
        "fwd_flops_counted": 2 * float(counted["fwd_macs"]) / BATCH,
        "params": 0,
    }


# Ways to compute one thing, by primitive; each takes its inputs' device and returns its ways by
# name, the first the reference the others' outputs are checked against.
def corr2d_ways(device: torch.device, side: int) -> dict[str, Callable[[], torch.Tensor]]:
    """7.2: cross-correlation of a side x side input with a 3x3 kernel, by its loop definition,
    as unfold + one matrix product (im2col), and as conv2d."""
    x, k = torch.randn(side, side, device=device), torch.randn(3, 3, device=device)
    return {
        "loop": lambda: ops.corr2d(x, k),
        "unfold": lambda: ops.corr2d_unfold(x, k),
        "conv2d": lambda: F.conv2d(x[None, None], k[None, None])[0, 0],
    }


def conv1x1_ways(device: torch.device) -> dict[str, Callable[[], torch.Tensor]]:
    """7.4.5: a 1x1 convolution, 64 -> 64 channels on 56x56, as conv2d and as one matrix
    product."""
    x, k = torch.randn(64, 56, 56, device=device), torch.randn(64, 64, 1, 1, device=device)
    return {"conv2d": lambda: F.conv2d(x[None], k)[0], "matmul": lambda: ops.corr2d_1x1(x, k)}


def pool_ways(device: torch.device) -> dict[str, Callable[[], torch.Tensor]]:
    """7.5.3: a 2x2 average pool of stride 2 (batch 8, 64 channels, 56x56), and the same as a
    depthwise conv with a constant 1/4 kernel."""
    x = torch.randn(8, 64, 56, 56, device=device)
    kernel = torch.full((64, 1, 2, 2), 0.25, device=device)
    return {
        "avg_pool2d": lambda: F.avg_pool2d(x, 2),
        "conv2d": lambda: F.conv2d(x, kernel, stride=2, groups=64),
    }


def timed_row(
    ways: Callable[..., dict[str, Callable[[], torch.Tensor]]],
    way: str,
    seconds: float = 0.3,
    device: torch.device = CPU,
    **sizes: int,
) -> dict[str, Any]:
    """One way of ``ways(device, **sizes)``: its output checked against the first way's (in
    full fp32: TF32 would blur the comparison on a GPU), then its time."""
    runs = ways(device, **sizes)
    with torch.no_grad():
        with full_fp32():
            reference = next(iter(runs.values()))()
            torch.testing.assert_close(runs[way](), reference, rtol=1e-4, atol=1e-4)
        with matmul_as_convs() as tf32:  # conv2d and matmul ways timed in the same math
            timed = _timed(runs[way], device, seconds)
    return {
        "method": way,
        **sizes,
        **timed,
        **_where(device),
        "tf32": tf32 and device.type == "cuda",
    }


def grouped_row(groups: int, seconds: float = 0.3, device: torch.device = CPU) -> dict[str, Any]:
    """7.4.7: a 3x3 conv, 128 -> 128 channels on 28x28 at batch 8, its weights split into
    ``groups`` block-diagonal groups: MACs by formula, and its time."""
    x = torch.randn(8, 128, 28, 28, device=device)
    w = torch.randn(128, 128 // groups, 3, 3, device=device)
    with torch.no_grad():
        timed = _timed(lambda: F.conv2d(x, w, padding=1, groups=groups), device, seconds)
    return {
        "groups": groups,
        "macs": 8 * 128 * (128 // groups) * 9 * 28 * 28,
        **timed,
        **_where(device),
    }


def cases(
    seconds: float = 0.3, device: torch.device = CPU
) -> list[tuple[str, dict[str, Any], Callable[[], dict]]]:
    """(exercise, config, measure) for every block measurement; the timed ones on ``device``,
    whose name their config holds."""
    timed = {"seconds": seconds, "device": backend_for(device).name}
    convs = [
        (exercise, {"case": case, **timed}, partial(conv_row, *shape, seconds, device))
        for (exercise, case), shape in CONVS.items()
    ]
    ways = (
        [
            ("7.2.x", f"{way}, {side}x{side}", partial(timed_row, corr2d_ways, way, side=side))
            for side in (8, 16, 32, 64)
            for way in ("loop", "unfold", "conv2d")
        ]
        + [
            ("7.4.5", f"1x1 conv as {way}", partial(timed_row, conv1x1_ways, way))
            for way in ("conv2d", "matmul")
        ]
        + [
            ("7.4.7", f"3x3 conv, {plural(g, 'group')}", partial(grouped_row, g))
            for g in (1, 4, 32)
        ]
        + [
            ("7.5.3", f"2x2 average pool as {way}", partial(timed_row, pool_ways, way))
            for way in ("avg_pool2d", "conv2d")
        ]
    )
    return [
        ("7.3.1", {"case": "kernel (3, 5), padding (0, 1), stride (3, 4), 8x8"}, shape_row),
        *convs,
        ("7.5.3", {"case": "2x2 average pool, stride 2, 64 channels, 56x56"}, pool_row),
        *(
            (exercise, {"case": case, **timed}, partial(way, seconds=seconds, device=device))
            for exercise, case, way in ways
        ),
    ]


def measure(
    seconds: float, indices: list[int], device: str = "cpu"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, row) for the cases of ``cases(seconds, device)`` at ``indices``, one after
    another."""
    chosen = cases(seconds, resolve_device(device))
    for index in indices:
        yield index, chosen[index][2]()
