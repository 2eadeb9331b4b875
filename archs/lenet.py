"""LeNet-5 (LeCun et al., 1998): D2L section 7.6, its modernized exercise variant, and the
batch-normalized LeNets of section 8.5 (with the from-scratch BatchNorm and with torch's)."""

from __future__ import annotations

from torch import nn

from archs.ops import BatchNorm
from archs.registry import Recipe, register

PAPER = "LeCun et al., Gradient-Based Learning Applied to Document Recognition, Proc. IEEE 1998"
BN_PAPER = "Ioffe & Szegedy, Batch Normalization, ICML 2015"

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


def _norm(kind: str | None, num_features: int, num_dims: int) -> list[nn.Module]:
    if kind is None:
        return []
    if kind == "scratch":
        return [BatchNorm(num_features, num_dims)]
    if kind == "torch":
        return [nn.BatchNorm2d(num_features) if num_dims == 4 else nn.BatchNorm1d(num_features)]
    raise ValueError(f"norm must be None, 'scratch' or 'torch', got {kind!r}")


def lenet(
    *,
    in_channels: int,
    num_classes: int,
    activation: str = "sigmoid",
    pool: str = "avg",
    norm: str | None = None,
    first_padding: int = 2,
    conv_bias: bool = True,
    norm_linear: bool = True,
    dropout: float = 0.0,
) -> nn.Sequential:
    """LeNet-5: two 5x5 convs with 2x2 pooling, then 120-84-classes fully connected layers.

    ``norm`` puts a batch norm ("scratch": archs.ops.BatchNorm, "torch": nn.BatchNorm) after
    every hidden conv and, with ``norm_linear``, every hidden linear layer; ``conv_bias`` is the
    bias of those hidden layers. ``dropout`` follows each hidden linear layer's activation.
    """
    if activation not in ACTIVATIONS or pool not in POOLS:
        raise ValueError(f"activation must be in {list(ACTIVATIONS)} and pool in {list(POOLS)}")
    act, pool_layer = ACTIVATIONS[activation], POOLS[pool]
    linear_norm = norm if norm_linear else None
    drop = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=first_padding, bias=conv_bias),
        *_norm(norm, 6, 4),
        act(),
        pool_layer(2, stride=2),
        nn.Conv2d(6, 16, 5, bias=conv_bias),
        *_norm(norm, 16, 4),
        act(),
        pool_layer(2, stride=2),
        nn.Flatten(),
        nn.LazyLinear(120, bias=conv_bias),
        *_norm(linear_norm, 120, 2),
        act(),
        *drop,
        nn.Linear(120, 84, bias=conv_bias),
        *_norm(linear_norm, 84, 2),
        act(),
        *drop,
        nn.Linear(84, num_classes),
    )


_common = dict(family="lenet", image_size=28, recipe=Recipe(lr=0.1))
register("lenet", lenet, section="7.6", paper=PAPER, summary="sigmoid, average pooling", **_common)
register(
    "lenet_modern",
    lenet,
    section="7.6",
    paper=PAPER,
    summary="ReLU, max pooling (exercise 7.6)",
    options=dict(activation="relu", pool="max"),
    **_common,
)
register(
    "lenet_dropout",
    lenet,
    section="7.6",
    paper=PAPER,
    summary="ReLU, and dropout 0.5 after the hidden linear layers (exercise 8.1.5.7)",
    options=dict(activation="relu", dropout=0.5),
    **_common,
)
# The book's batch-normalized LeNets drop the first conv's padding (28 -> 24 after the first conv).
register(
    "bn_lenet_scratch",
    lenet,
    section="8.5",
    paper=BN_PAPER,
    summary="LeNet with archs.ops.BatchNorm",
    options=dict(norm="scratch", first_padding=0),
    **_common,
)
register(
    "bn_lenet",
    lenet,
    section="8.5",
    paper=BN_PAPER,
    summary="LeNet with nn.BatchNorm",
    options=dict(norm="torch", first_padding=0),
    **_common,
)
register(
    "bn_lenet_nobias",
    lenet,
    section="8.5",
    paper=BN_PAPER,
    summary="bn_lenet without the bias of layers before a batch norm (exercise 8.5.7.1)",
    options=dict(norm="torch", first_padding=0, conv_bias=False),
    **_common,
)
register(
    "bn_lenet_convs",
    lenet,
    section="8.5",
    paper=BN_PAPER,
    summary="bn_lenet with batch norm after the convs only (exercise 8.5.7.3)",
    options=dict(norm="torch", first_padding=0, norm_linear=False),
    **_common,
)
register(
    "lenet_28",
    lenet,
    section="8.5",
    paper=BN_PAPER,
    summary="LeNet-sized and modern at 28x28: ReLU, max pooling, batch norm, no conv bias",
    options=dict(activation="relu", pool="max", norm="torch", conv_bias=False),
    **_common,
)
