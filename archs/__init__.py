"""Every network of Dive into Deep Learning chapters 7-8 behind one registry.

>>> import archs
>>> archs.list_models("resnet*")[:2]
['resnet18', 'resnet18_preact']
>>> model = archs.build("resnet18")  # 1 channel, 10 classes, the book's 96x96 input
"""

from archs import (  # noqa: F401  (each registers its networks)
    alexnet,
    densenet,
    external,
    googlenet,
    lenet,
    nin,
    regnet,
    resnet,
    vgg,
)
from archs.registry import BOOK_MODELS, ModelSpec, Recipe, build, list_models, register, spec

__all__ = ["BOOK_MODELS", "ModelSpec", "Recipe", "build", "list_models", "register", "spec"]
