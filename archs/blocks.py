"""Blocks shared by more than one family: conv units, the 7x7 stem, the bottleneck, heads."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def conv_unit(
    c_in: int,
    c_out: int,
    kernel_size: int,
    *,
    stride: int = 1,
    groups: int = 1,
    bias: bool = True,
    norm: bool = True,
    act: bool = True,
) -> nn.Sequential:
    """Conv with 'same' padding for odd kernels, then optional BatchNorm and ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2, groups=groups, bias=bias)
    ]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def stem7x7(c_in: int, c_out: int, *, bias: bool, norm: bool = True) -> nn.Sequential:
    """ImageNet stem of GoogLeNet, ResNet and DenseNet: 7x7/2 conv, (BN,) ReLU, 3x3/2 max pool."""
    return nn.Sequential(
        *conv_unit(c_in, c_out, 7, stride=2, bias=bias, norm=norm),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )


def classifier_head(c_in: int, num_classes: int) -> nn.Sequential:
    """Global average pooling, then one fully connected layer."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))


class Bottleneck(nn.Module):
    """Bottleneck: 1x1, 3x3 grouped (carries the stride), 1x1, BN after each; projection shortcut.

    The inner width is ``round(c_out * bot_mul)``, split into ``groups`` groups, or into groups
    of ``group_width`` channels when that is given. ResNet-50 is bot_mul 1/4 with one group;
    ResNeXt-50 32x4d is bot_mul 1/2 with 32 groups (cardinality fixed across stages); the book's
    ResNeXt block and RegNetX use bot_mul 1 and groups of 16 channels (group width fixed).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        *,
        bot_mul: float = 0.25,
        groups: int = 1,
        group_width: int | None = None,
        conv_bias: bool = False,
    ):
        super().__init__()
        mid = round(c_out * bot_mul)
        if group_width is not None:
            groups = mid // group_width
        self.branch = nn.Sequential(
            *conv_unit(c_in, mid, 1, bias=conv_bias),
            *conv_unit(mid, mid, 3, stride=stride, groups=groups, bias=conv_bias),
            *conv_unit(mid, c_out, 1, bias=conv_bias, act=False),
        )
        self.shortcut = projection(c_in, c_out, stride, bias=conv_bias, norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.branch(x) + self.shortcut(x))


def projection(c_in: int, c_out: int, stride: int, *, bias: bool, norm: bool) -> nn.Module:
    """Shortcut of a residual block: identity, or a strided 1x1 conv where the shape changes."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return conv_unit(c_in, c_out, 1, stride=stride, bias=bias, norm=norm, act=False)


def stage(
    block: Callable[..., nn.Module], depth: int, c_in: int, c_out: int, stride: int
) -> nn.Sequential:
    """``depth`` residual blocks; the first changes width and resolution, the rest keep them."""
    return nn.Sequential(
        *(block(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1) for i in range(depth))
    )
