"""VGG (Simonyan & Zisserman, 2015), D2L section 8.2: blocks of 3x3 convs and a 2x2 max pool,
then three fully connected layers. A network is its tuple of (number of convs, channels)."""

from __future__ import annotations

from torch import nn

from archs.registry import Recipe, register

PAPER = (
    "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, "
    "ICLR 2015"
)

# Table 1 of the paper: configurations A (VGG-11), B (VGG-13), D (VGG-16) and E (VGG-19).
TABLE1 = {
    "vgg11": ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),
    "vgg13": ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512)),
    "vgg16": ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),
    "vgg19": ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)),
}
# The book trains VGG-11 with a quarter of the channels (and so 1/16 of the conv compute).
BOOK_SMALL = ((1, 16), (1, 32), (2, 64), (2, 128), (2, 128))


def vgg_block(
    c_in: int, c_out: int, num_convs: int, norm: bool = False, conv_bias: bool | None = None
) -> nn.Sequential:
    """``num_convs`` 3x3 convs with ReLU (after a batch norm with ``norm``), then a 2x2 max pool
    halving the resolution; ``conv_bias`` None: a bias where no batch norm follows."""
    bias = not norm if conv_bias is None else conv_bias
    layers: list[nn.Module] = []
    for i in range(num_convs):
        layers.append(nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=bias))
        layers += [nn.BatchNorm2d(c_out), nn.ReLU()] if norm else [nn.ReLU()]
    return nn.Sequential(*layers, nn.MaxPool2d(2, stride=2))


def vgg(
    *,
    in_channels: int,
    num_classes: int,
    arch: tuple[tuple[int, int], ...],
    fc_width: int = 4096,
    dropout: float = 0.5,
    norm: bool = False,
    conv_bias: bool | None = None,
) -> nn.Sequential:
    """VGG: one block per (num_convs, channels) in ``arch``, then fc_width-fc_width-classes;
    ``norm`` puts a batch norm after every conv; ``conv_bias`` None: conv biases unless a batch
    norm follows (torchvision's vgg*_bn keeps them: ``norm=True, conv_bias=True``)."""
    blocks = []
    c_in = in_channels
    for num_convs, channels in arch:
        blocks.append(vgg_block(c_in, channels, num_convs, norm, conv_bias))
        c_in = channels
    return nn.Sequential(
        *blocks,
        nn.Flatten(),
        nn.LazyLinear(fc_width),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(fc_width, fc_width),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(fc_width, num_classes),
    )


_common = dict(family="vgg", section="8.2", paper=PAPER, image_size=224)
for _name, _arch in TABLE1.items():
    register(
        _name,
        vgg,
        options=dict(arch=_arch),
        reference=_name,
        summary=f"Table 1, {sum(n for n, _ in _arch) + 3} weight layers",
        **_common,
    )
register(
    "vgg11_small",
    vgg,
    options=dict(arch=BOOK_SMALL),
    recipe=Recipe(lr=0.01, resize=224),
    summary="VGG-11 at a quarter width, as the book trains it",
    **_common,
)
register(
    "vgg_28",
    vgg,
    family="vgg",
    section="8.2",
    paper=PAPER,
    image_size=28,
    options=dict(arch=((1, 32), (1, 64), (2, 128)), fc_width=256, norm=True),
    recipe=Recipe(lr=0.1),
    summary="VGG-style at 28x28 (exercise 8.1.5.5.2): three blocks to 3x3, batch norm, 256-wide FC",
)
