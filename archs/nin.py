"""Network in Network (Lin, Chen & Yan, 2014), D2L section 8.3, and the variants its exercises
ask for: one or three 1x1 convs per block, 3x3 instead of 1x1, a fully connected head."""

from __future__ import annotations

from torch import nn

from archs.registry import Recipe, register

PAPER = "Lin, Chen & Yan, Network In Network, ICLR 2014"

# (channels, kernel, stride, padding) of each block's first conv: AlexNet's first three shapes.
BLOCKS = ((96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1))


def nin_block(
    c_in: int, c_out: int, kernel: int, stride: int, padding: int, mlp_convs: int, mlp_kernel: int
) -> nn.Sequential:
    """A conv followed by ``mlp_convs`` convs of ``mlp_kernel`` (1: a per-pixel MLP), all ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, padding), nn.ReLU()]
    for _ in range(mlp_convs):
        layers += [nn.Conv2d(c_out, c_out, mlp_kernel, padding=mlp_kernel // 2), nn.ReLU()]
    return nn.Sequential(*layers)


def nin(
    *,
    in_channels: int,
    num_classes: int,
    mlp_convs: int = 2,
    mlp_kernel: int = 1,
    head: str = "gap",
    dropout: float = 0.5,
) -> nn.Sequential:
    """NiN: three NiN blocks with 3x3/2 max pools, a NiN block with one channel per class, then
    global average pooling (``head="gap"``) or a fully connected layer (``head="fc"``)."""
    if head not in ("gap", "fc"):
        raise ValueError(f"head must be 'gap' or 'fc', got {head!r}")
    layers: list[nn.Module] = []
    c_in = in_channels
    for channels, kernel, stride, padding in BLOCKS:
        layers += [
            nin_block(c_in, channels, kernel, stride, padding, mlp_convs, mlp_kernel),
            nn.MaxPool2d(3, stride=2),
        ]
        c_in = channels
    layers += [nn.Dropout(dropout), nin_block(c_in, num_classes, 3, 1, 1, mlp_convs, mlp_kernel)]
    if head == "gap":
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    else:
        layers += [nn.Flatten(), nn.LazyLinear(num_classes)]
    return nn.Sequential(*layers)


VARIANTS = {
    "nin": ({}, "the book's NiN: two 1x1 convs per block, global average pooling"),
    "nin_one_1x1": (dict(mlp_convs=1), "one 1x1 conv per block (exercise 8.3.5.1)"),
    "nin_three_1x1": (dict(mlp_convs=3), "three 1x1 convs per block (exercise 8.3.5.1)"),
    "nin_3x3": (dict(mlp_kernel=3), "3x3 convs in place of the 1x1 convs (exercise 8.3.5.2)"),
    "nin_fc": (
        dict(head="fc"),
        "a fully connected layer in place of global average pooling (8.3.5.3)",
    ),
}
for _name, (_options, _summary) in VARIANTS.items():
    register(
        _name,
        nin,
        family="nin",
        section="8.3",
        paper=PAPER,
        image_size=224,
        recipe=Recipe(lr=0.05, resize=224),
        options=_options,
        summary=_summary,
    )
