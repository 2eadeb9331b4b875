"""ResNet (He et al., 2016) and ResNeXt (Xie et al., 2017), D2L section 8.6: the book's ResNet-18,
its pre-activation variant, Table 1 of the ResNet paper, and ResNeXt networks."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from archs.blocks import Bottleneck, classifier_head, conv_unit, projection, stage, stem7x7
from archs.registry import Recipe, register

PAPER = "He, Zhang, Ren & Sun, Deep Residual Learning for Image Recognition, CVPR 2016"
PREACT_PAPER = "He, Zhang, Ren & Sun, Identity Mappings in Deep Residual Networks, ECCV 2016"
RESNEXT_PAPER = (
    "Xie et al., Aggregated Residual Transformations for Deep Neural Networks, CVPR 2017"
)


class BasicBlock(nn.Module):
    """Basic residual block: two 3x3 convs (conv, BN, ReLU order); the first carries the stride."""

    def __init__(
        self, c_in: int, c_out: int, stride: int = 1, *, conv_bias: bool, shortcut_norm: bool
    ):
        super().__init__()
        self.branch = nn.Sequential(
            *conv_unit(c_in, c_out, 3, stride=stride, bias=conv_bias),
            *conv_unit(c_out, c_out, 3, bias=conv_bias, act=False),
        )
        self.shortcut = projection(c_in, c_out, stride, bias=conv_bias, norm=shortcut_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.branch(x) + self.shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation basic block: (BN, ReLU, 3x3 conv) twice; nothing after the addition."""

    def __init__(
        self, c_in: int, c_out: int, stride: int = 1, *, conv_bias: bool, shortcut_norm: bool
    ):
        super().__init__()
        self.branch = nn.Sequential(
            nn.BatchNorm2d(c_in),
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=conv_bias),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=conv_bias),
        )
        self.shortcut = projection(c_in, c_out, stride, bias=conv_bias, norm=shortcut_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) + self.shortcut(x)


def resnet(
    *,
    in_channels: int,
    num_classes: int,
    block: str,
    depths: tuple[int, ...],
    widths: tuple[int, ...],
    stem_channels: int = 64,
    conv_bias: bool = False,
    shortcut_norm: bool = True,
    bot_mul: float = 0.25,
    groups: int = 1,
    group_width: int | None = None,
) -> nn.Sequential:
    """ResNet: 7x7 stem, one stage per (depth, width) of ``block`` ("basic", "preact" or
    "bottleneck"), the first at stride 1 and the rest at stride 2, then global average pooling.

    ``shortcut_norm`` applies to basic and preact blocks (bottlenecks always normalize their
    projection); ``bot_mul``, ``groups`` and ``group_width`` to bottlenecks.
    """
    blocks = {
        "basic": partial(BasicBlock, conv_bias=conv_bias, shortcut_norm=shortcut_norm),
        "preact": partial(PreActBlock, conv_bias=conv_bias, shortcut_norm=shortcut_norm),
        "bottleneck": partial(
            Bottleneck, bot_mul=bot_mul, groups=groups, group_width=group_width, conv_bias=conv_bias
        ),
    }
    if block not in blocks:
        raise ValueError(f"block must be one of {', '.join(blocks)}, got {block!r}")
    layers: list[nn.Module] = [stem7x7(in_channels, stem_channels, bias=conv_bias)]
    c_in = stem_channels
    for i, (depth, width) in enumerate(zip(depths, widths, strict=True)):
        layers.append(stage(blocks[block], depth, c_in, width, stride=1 if i == 0 else 2))
        c_in = width
    if block == "preact":  # the last block's output has not been normalized yet
        layers.append(nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU()))
    return nn.Sequential(*layers, classifier_head(c_in, num_classes))


class Residual(nn.Module):
    """``x + branch(x)``."""

    def __init__(self, *branch: nn.Module):
        super().__init__()
        self.branch = nn.Sequential(*branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


def resnet9(
    *,
    in_channels: int,
    num_classes: int,
    widths: tuple[int, int, int, int] = (16, 32, 64, 128),
    pool_first: bool = False,
) -> nn.Sequential:
    """A ResNet-9 layout (Page's for CIFAR-10) for 28x28 inputs: a 3x3 stem, three stages of
    3x3 conv and 2x2 max pool (28 -> 14 -> 7 -> 3), a residual pair of 3x3 convs after the first
    and the last, global max pooling. Conv, batch norm, ReLU everywhere; no conv bias.

    ``pool_first``: each stage pools its conv's output before the batch norm and ReLU (as
    Keller Jordan's airbench does), so that they run on a quarter of the pixels; batch norm and
    ReLU, not the convs, take most of a small network's training step on a CPU."""
    stem, w1, w2, w3 = widths

    def conv(c_in: int, c_out: int) -> nn.Sequential:
        return conv_unit(c_in, c_out, 3, bias=False)

    def down(c_in: int, c_out: int) -> nn.Sequential:
        convolve, norm, relu = conv(c_in, c_out)
        if pool_first:
            return nn.Sequential(convolve, nn.MaxPool2d(2), norm, relu)
        return nn.Sequential(convolve, norm, relu, nn.MaxPool2d(2))

    return nn.Sequential(
        conv(in_channels, stem),
        down(stem, w1),
        Residual(*conv(w1, w1), *conv(w1, w1)),
        down(w1, w2),
        down(w2, w3),
        Residual(*conv(w3, w3), *conv(w3, w3)),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(w3, num_classes),
    )


BASIC_WIDTHS = (64, 128, 256, 512)
BOTTLENECK_WIDTHS = (256, 512, 1024, 2048)  # 4x the inner width of each stage's bottleneck
# The book's ResNet-18 has a bias on every conv and no batch norm on its 1x1 shortcut.
BOOK = dict(block="basic", depths=(2, 2, 2, 2), widths=BASIC_WIDTHS)
BOOK_STYLE = dict(conv_bias=True, shortcut_norm=False)
_book = dict(family="resnet", section="8.6", image_size=96, recipe=Recipe(lr=0.01, resize=96))
_imagenet = dict(family="resnet", section="8.6", image_size=224)

register(
    "resnet18",
    resnet,
    paper=PAPER,
    options={**BOOK, **BOOK_STYLE},
    summary="the book's ResNet-18",
    **_book,
)
register(
    "resnet18_preact",
    resnet,
    paper=PREACT_PAPER,
    options={**BOOK, **BOOK_STYLE, "block": "preact"},
    summary="the book's ResNet-18 with BN, ReLU, conv order (exercise 8.6.7.4)",
    **_book,
)
register(
    "resnext18",
    resnet,
    paper=RESNEXT_PAPER,
    options={**BOOK, **BOOK_STYLE, "block": "bottleneck", "bot_mul": 1, "group_width": 16},
    summary="the book's ResNeXt block (group width 16, no bottleneck) in ResNet-18's layout",
    **_book,
)
# Table 1 of the paper: block type and blocks per stage.
TABLE1 = {
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
for _name, (_block, _depths) in TABLE1.items():
    _widths = BASIC_WIDTHS if _block == "basic" else BOTTLENECK_WIDTHS
    register(
        _name,
        resnet,
        paper=PAPER,
        reference=_name,
        options=dict(block=_block, depths=_depths, widths=_widths),
        summary=f"Table 1, {_block} blocks {_depths}",
        **_imagenet,
    )
register(
    "resnext50_32x4d",
    resnet,
    paper=RESNEXT_PAPER,
    reference="resnext50_32x4d",
    options=dict(
        block="bottleneck", depths=(3, 4, 6, 3), widths=BOTTLENECK_WIDTHS, bot_mul=0.5, groups=32
    ),
    summary="ResNeXt-50: bottlenecks of 32 groups (4 channels each in the first stage)",
    **_imagenet,
)
register(
    "resnet9_28",
    resnet9,
    family="resnet",
    section="8.6",
    paper=PAPER,
    image_size=28,
    recipe=Recipe(lr=0.1),
    summary="a small ResNet at 28x28: ResNet-9 layout, widths 16-32-64-128 (the fast recipe's)",
)
register(
    "resnet9_28_wide",
    resnet9,
    family="resnet",
    section="8.6",
    paper=PAPER,
    image_size=28,
    options=dict(widths=(32, 64, 128, 256)),
    recipe=Recipe(lr=0.1),
    summary="resnet9_28 at twice the width, 32-64-128-256 (the GPU fast recipe's)",
)
register(
    "resnet9_28_pool_first",
    resnet9,
    family="resnet",
    section="8.6",
    paper=PAPER,
    image_size=28,
    options=dict(pool_first=True),
    recipe=Recipe(lr=0.1),
    summary="resnet9_28 with each stage's max pool before its batch norm and ReLU",
)
