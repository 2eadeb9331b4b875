"""DenseNet (Huang et al., 2017), D2L section 8.7: the book's DenseNet (growth 32, four blocks of
four convs) and DenseNet-121/169/201 of the paper's Table 1 (bottleneck layers, compression 0.5)."""

from __future__ import annotations

import torch
from torch import nn

from archs.blocks import classifier_head, stem7x7
from archs.registry import Recipe, register

PAPER = (
    "Huang, Liu, van der Maaten & Weinberger, Densely Connected Convolutional Networks, CVPR 2017"
)


def bn_relu_conv(c_in: int, c_out: int, kernel: int, bias: bool) -> list[nn.Module]:
    """DenseNet's pre-activation conv: BN, ReLU, then the conv."""
    return [
        nn.BatchNorm2d(c_in),
        nn.ReLU(),
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias),
    ]


class DenseBlock(nn.Module):
    """Dense block: each layer sees the concatenation of the input and every earlier output."""

    def __init__(
        self, c_in: int, num_layers: int, growth_rate: int, bn_size: int | None, conv_bias: bool
    ):
        super().__init__()
        layers = []
        for i in range(num_layers):
            c = c_in + i * growth_rate
            if bn_size is None:  # the book's layer: BN, ReLU, 3x3 conv
                layer = bn_relu_conv(c, growth_rate, 3, conv_bias)
            else:  # DenseNet-B: a 1x1 conv to bn_size * growth_rate channels first
                mid = bn_size * growth_rate
                layer = bn_relu_conv(c, mid, 1, conv_bias) + bn_relu_conv(
                    mid, growth_rate, 3, conv_bias
                )
            layers.append(nn.Sequential(*layer))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return x


def densenet(
    *,
    in_channels: int,
    num_classes: int,
    growth_rate: int = 32,
    block_config: tuple[int, ...] = (4, 4, 4, 4),
    stem_channels: int = 64,
    bn_size: int | None = None,
    compression: float = 0.5,
    conv_bias: bool = True,
) -> nn.Sequential:
    """DenseNet: 7x7 stem, dense blocks joined by transitions (BN, ReLU, 1x1 conv shrinking the
    channels by ``compression``, 2x2 average pool), then BN, ReLU and global average pooling."""
    layers: list[nn.Module] = [stem7x7(in_channels, stem_channels, bias=conv_bias)]
    c = stem_channels
    for i, num_layers in enumerate(block_config):
        layers.append(DenseBlock(c, num_layers, growth_rate, bn_size, conv_bias))
        c += num_layers * growth_rate
        if i < len(block_config) - 1:
            c_out = int(c * compression)
            layers.append(
                nn.Sequential(*bn_relu_conv(c, c_out, 1, conv_bias), nn.AvgPool2d(2, stride=2))
            )
            c = c_out
    return nn.Sequential(
        *layers, nn.Sequential(nn.BatchNorm2d(c), nn.ReLU()), classifier_head(c, num_classes)
    )


register(
    "densenet",
    densenet,
    family="densenet",
    section="8.7",
    paper=PAPER,
    image_size=96,
    recipe=Recipe(lr=0.01, resize=96),
    summary="the book's DenseNet: growth 32, blocks (4, 4, 4, 4)",
)
# Table 1 of the paper: DenseNet-BC with growth 32; layers per dense block.
TABLE1 = {
    "densenet121": (6, 12, 24, 16),
    "densenet169": (6, 12, 32, 32),
    "densenet201": (6, 12, 48, 32),
}
for _name, _blocks in TABLE1.items():
    register(
        _name,
        densenet,
        family="densenet",
        section="8.7",
        paper=PAPER,
        image_size=224,
        reference=_name,
        options=dict(block_config=_blocks, bn_size=4, conv_bias=False),
        summary=f"Table 1, DenseNet-BC, blocks {_blocks}",
    )
