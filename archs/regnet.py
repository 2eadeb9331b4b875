"""AnyNet and RegNetX (Radosavovic et al., 2020), D2L section 8.8: a 3x3 stem, stages of
ResNeXt blocks at stride 2 and a global-average-pooling head; RegNetX derives every stage from
five numbers."""

from __future__ import annotations

import math
from functools import partial

from torch import nn

from archs.blocks import Bottleneck, classifier_head, conv_unit, stage
from archs.registry import Recipe, register

PAPER = "Radosavovic, Kosaraju, Girshick, He & Dollar, Designing Network Design Spaces, CVPR 2020"

# A stage: (depth, width, group width, bottleneck multiplier).
Stage = tuple[int, int, int, float]


def anynet(
    *,
    in_channels: int,
    num_classes: int,
    stages: tuple[Stage, ...],
    stem_channels: int = 32,
    conv_bias: bool = True,
) -> nn.Sequential:
    """AnyNet: 3x3/2 conv stem, one stage of ResNeXt blocks per entry (each halving the
    resolution in its first block), then global average pooling and a linear layer."""
    layers: list[nn.Module] = [conv_unit(in_channels, stem_channels, 3, stride=2, bias=conv_bias)]
    c_in = stem_channels
    for depth, width, group_width, bot_mul in stages:
        block = partial(Bottleneck, bot_mul=bot_mul, group_width=group_width, conv_bias=conv_bias)
        layers.append(stage(block, depth, c_in, width, stride=2))
        c_in = width
    return nn.Sequential(*layers, classifier_head(c_in, num_classes))


def regnetx_stages(
    w0: int,
    wa: float,
    wm: float,
    depth: int,
    group_width: int,
    bot_mul: float = 1.0,
    quantum: int = 8,
) -> tuple[Stage, ...]:
    """RegNetX's stages: block j gets width w0 + wa * j, snapped to w0 * wm^k (k an integer) and
    to a multiple of ``quantum``; consecutive blocks of equal width form a stage, whose width is
    then made a multiple of its group width (Radosavovic et al., section 3.3)."""
    widths = []
    for j in range(depth):
        k = round(math.log((w0 + wa * j) / w0) / math.log(wm))
        widths.append(round(w0 * wm**k / quantum) * quantum)
    stages = []
    for width in dict.fromkeys(widths):
        inner = int(width * bot_mul)
        g = min(group_width, inner)
        inner = _make_divisible(inner, g)
        stages.append((widths.count(width), int(inner / bot_mul), g, bot_mul))
    return tuple(stages)


def _make_divisible(value: float, divisor: int) -> int:
    """Nearest multiple of ``divisor``, at least ``divisor`` and never 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def regnetx(
    *,
    in_channels: int,
    num_classes: int,
    w0: int,
    wa: float,
    wm: float,
    depth: int,
    group_width: int,
    stem_channels: int = 32,
    conv_bias: bool = False,
) -> nn.Sequential:
    """A RegNetX from its generator (w0, wa, wm, depth, group width)."""
    stages = regnetx_stages(w0, wa, wm, depth, group_width)
    return anynet(
        in_channels=in_channels,
        num_classes=num_classes,
        stages=stages,
        stem_channels=stem_channels,
        conv_bias=conv_bias,
    )


_common = dict(family="regnet", section="8.8", paper=PAPER)
register(
    "regnetx32",
    anynet,
    image_size=96,
    recipe=Recipe(lr=0.05, resize=96),
    options=dict(stages=((4, 32, 16, 1), (6, 80, 16, 1))),
    summary="the book's 32-layer RegNetX: two stages (4 x 32, 6 x 80 channels), group width 16",
    **_common,
)
# Four stages with widths and depths growing and group width and bottleneck shared: a member
# of the AnyNetX_E design space, the book's answer shape for exercise 8.8.6.1.
register(
    "anynet",
    anynet,
    image_size=96,
    recipe=Recipe(lr=0.05, resize=96),
    options=dict(stages=((1, 32, 16, 1), (2, 64, 16, 1), (4, 128, 16, 1), (6, 256, 16, 1))),
    summary="a four-stage AnyNetX_E (exercise 8.8.6.1)",
    **_common,
)
# RegNetX-400MF of the paper's Appendix (as in pycls and torchvision).
register(
    "regnetx_400mf",
    regnetx,
    image_size=224,
    reference="regnet_x_400mf",
    options=dict(w0=24, wa=24.48, wm=2.54, depth=22, group_width=16),
    summary="RegNetX-400MF: stages of (1, 2, 7, 12) blocks, group width 16",
    **_common,
)
