"""AlexNet (Krizhevsky et al., 2012) as in D2L section 8.1: one stream instead of the paper's
two GPUs, one input channel for Fashion-MNIST resized to 224x224."""

from __future__ import annotations

from torch import nn

from archs.registry import Recipe, register

PAPER = "Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep CNNs, NeurIPS 2012"


def alexnet(*, in_channels: int, num_classes: int, dropout: float = 0.5) -> nn.Sequential:
    """Five convs (96-256-384-384-256: 11x11/4, 5x5, 3x3) and three max pools; 4096-4096 FC."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 96, 11, stride=4, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(96, 256, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(256, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        nn.Flatten(),
        nn.LazyLinear(4096),
        nn.ReLU(),
        nn.Dropout(dropout),  # 6400 inputs at 224x224
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(4096, num_classes),
    )


register(
    "alexnet",
    alexnet,
    family="alexnet",
    section="8.1",
    paper=PAPER,
    image_size=224,
    recipe=Recipe(lr=0.01, resize=224),
    summary="the book's single-stream AlexNet",
)
