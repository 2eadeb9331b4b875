"""GoogLeNet (Szegedy et al., 2015) as in D2L section 8.4: no auxiliary classifiers, trained at
96x96; ``googlenet_bn`` adds batch norm after every conv (exercise 8.4.5.1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from archs.blocks import conv_unit, stem7x7
from archs.registry import Recipe, register

PAPER = "Szegedy et al., Going Deeper with Convolutions, CVPR 2015"


@dataclass(frozen=True)
class InceptionWidths:
    """Output channels of an Inception block's branches, named as in the paper's Table 1."""

    n1x1: int
    n3x3_reduce: int
    n3x3: int
    n5x5_reduce: int
    n5x5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        return self.n1x1 + self.n3x3 + self.n5x5 + self.pool_proj


class Inception(nn.Module):
    """Inception: 1x1 | 1x1 then 3x3 | 1x1 then 5x5 | 3x3 max pool then 1x1, concatenated."""

    def __init__(self, c_in: int, w: InceptionWidths, *, norm: bool, conv_bias: bool):
        super().__init__()

        def conv(c_i: int, c_o: int, k: int) -> nn.Sequential:
            return conv_unit(c_i, c_o, k, bias=conv_bias, norm=norm)

        self.b1 = conv(c_in, w.n1x1, 1)
        self.b2 = nn.Sequential(*conv(c_in, w.n3x3_reduce, 1), *conv(w.n3x3_reduce, w.n3x3, 3))
        self.b3 = nn.Sequential(*conv(c_in, w.n5x5_reduce, 1), *conv(w.n5x5_reduce, w.n5x5, 5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), *conv(c_in, w.pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


W = InceptionWidths
# Inception blocks 3a-3b, 4a-4e, 5a-5b; a 3x3/2 max pool follows each group but the last.
INCEPTION_GROUPS = (
    (W(64, 96, 128, 16, 32, 32), W(128, 128, 192, 32, 96, 64)),
    (
        W(192, 96, 208, 16, 48, 64),
        W(160, 112, 224, 24, 64, 64),
        W(128, 128, 256, 24, 64, 64),
        W(112, 144, 288, 32, 64, 64),
        W(256, 160, 320, 32, 128, 128),
    ),
    (W(256, 160, 320, 32, 128, 128), W(384, 192, 384, 48, 128, 128)),
)


def googlenet(
    *,
    in_channels: int,
    num_classes: int,
    batch_norm: bool = False,
    conv_bias: bool = True,
    stem: str = "7x7",
) -> nn.Sequential:
    """GoogLeNet: a stem, 1x1 and 3x3 convs, nine Inception blocks, global average pooling.

    ``stem`` "7x7" is the paper's (7x7/2 conv and 3x3/2 max pool: 4x downsampling); "3x3" is
    one 3x3 conv at full resolution, for 28x28 inputs.
    """

    def conv(c_i: int, c_o: int, k: int) -> nn.Sequential:
        return conv_unit(c_i, c_o, k, bias=conv_bias, norm=batch_norm)

    stems = {
        "7x7": lambda: stem7x7(in_channels, 64, bias=conv_bias, norm=batch_norm),
        "3x3": lambda: conv(in_channels, 64, 3),
    }
    if stem not in stems:
        raise ValueError(f"stem must be one of {', '.join(stems)}, got {stem!r}")
    modules: list[nn.Module] = [
        stems[stem](),
        nn.Sequential(*conv(64, 64, 1), *conv(64, 192, 3), nn.MaxPool2d(3, stride=2, padding=1)),
    ]
    c_in = 192
    for i, group in enumerate(INCEPTION_GROUPS):
        blocks: list[nn.Module] = []
        for widths in group:
            blocks.append(Inception(c_in, widths, norm=batch_norm, conv_bias=conv_bias))
            c_in = widths.out_channels
        last = i == len(INCEPTION_GROUPS) - 1
        blocks += [nn.AdaptiveAvgPool2d(1), nn.Flatten()] if last else [nn.MaxPool2d(3, 2, 1)]
        modules.append(nn.Sequential(*blocks))
    return nn.Sequential(*modules, nn.Linear(c_in, num_classes))


_common = dict(family="googlenet", section="8.4", paper=PAPER, image_size=96)
register(
    "googlenet",
    googlenet,
    recipe=Recipe(lr=0.01, resize=96),
    summary="the book's GoogLeNet",
    **_common,
)
register(
    "googlenet_bn",
    googlenet,
    options=dict(batch_norm=True),
    recipe=Recipe(lr=0.01, resize=96),
    summary="batch norm after every conv (exercise 8.4.5.1)",
    **_common,
)
register(
    "googlenet_28",
    googlenet,
    family="googlenet",
    section="8.4",
    paper=PAPER,
    image_size=28,
    options=dict(batch_norm=True, conv_bias=False, stem="3x3"),
    recipe=Recipe(lr=0.1),
    summary="a 3x3 stem instead of the 4x-downsampling one, batch norm: 28x28 (exercise 8.4.5.3)",
)
