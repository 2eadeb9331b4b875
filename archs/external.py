"""Networks from outside the chapters, by a prefixed name: ``tv:<name>`` builds torchvision's
model, ``timm:<name>`` timm's where timm is installed; random weights, the model's own classes
(1,000) and 3 input channels, at its default input size (torchvision: its weights' crop size).
"""

from __future__ import annotations

import difflib
import functools
from typing import Any

from torch import nn

from archs.registry import ModelSpec, register_source


def _known(name: str, names: list[str], source: str) -> None:
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
        prefix = "tv:" if source == "torchvision" else "timm:"
        hint = (
            f"; did you mean {', '.join(prefix + c for c in close)}?"
            if close
            else f"; see {source}'s list_models()"
        )
        raise KeyError(f"unknown {source} model {name!r}{hint}")


# Where torchvision's class builds another model than its weights describe: GoogLeNet's
# auxiliary classifiers, which loading the weights removes; ViT-H/14's weights, for 518-pixel
# inputs, whose position table the 224-pixel default lacks.
_AS_PUBLISHED = {"googlenet": {"aux_logits": False}, "vit_h_14": {"image_size": 518}}


def _torchvision(name: str) -> tuple[Any, int]:
    import torchvision

    _known(name, torchvision.models.list_models(), "torchvision")
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        side = weights.transforms.keywords.get("crop_size", 224)
    except (ValueError, AttributeError):  # no weights described: the common ImageNet side
        side = 224

    def builder(*, in_channels: int, num_classes: int) -> nn.Module:
        return torchvision.models.get_model(
            name, weights=None, num_classes=num_classes, **_AS_PUBLISHED.get(name, {})
        )

    return builder, side


def _timm(name: str) -> tuple[Any, int]:
    try:
        import timm
    except ImportError:
        raise KeyError(
            f"timm:{name} needs timm, which is not installed: pip install timm"
        ) from None
    _known(name, timm.list_models(), "timm")
    side = timm.create_model(name, pretrained=False).default_cfg["input_size"][-1]

    def builder(*, in_channels: int, num_classes: int) -> nn.Module:
        return timm.create_model(
            name, pretrained=False, in_chans=in_channels, num_classes=num_classes
        )

    return builder, side


@functools.cache
def external_spec(name: str) -> ModelSpec:
    """The spec of a ``tv:`` or ``timm:`` name; an unknown one raises KeyError with close
    matches."""
    source, _, model = name.partition(":")
    builder, side = _torchvision(model) if source == "tv" else _timm(model)
    return ModelSpec(
        name=name,
        family=source,
        section="-",
        paper=f"{source} {model}",
        image_size=side,
        builder=builder,
        in_channels=3,
        num_classes=1000,
        external=True,
        summary=f"{source}'s {model}, random weights",
    )


for _source in ("tv", "timm"):
    register_source(_source, external_spec)
