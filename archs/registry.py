"""The model registry: every network of D2L chapters 7-8 by name, with the facts about it.

Builders are plain functions ``builder(*, in_channels, num_classes, **options) -> nn.Module``.
``build`` constructs the module on the meta device, runs one meta forward pass at the requested
input size (which sizes the lazy layers and proves the input is large enough, at no compute
cost), then allocates the weights on the requested device and initializes them as the book does.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from archs.meta import ShapeCache

Builder = Callable[..., nn.Module]

# The search for the smallest accepted input stops here: nothing in the chapters needs more.
_MAX_MIN_INPUT = 512
# How a network refuses an input's size: torch's ops raise RuntimeError, models check it with
# assertions (torchvision's ViT) or ValueError.
_REFUSALS = (RuntimeError, ValueError, AssertionError)
# The chapter's nine networks, in the book's order: the ones each of its sections trains.
BOOK_MODELS = (
    "lenet",
    "bn_lenet",
    "alexnet",
    "vgg11_small",
    "nin",
    "googlenet",
    "resnet18",
    "densenet",
    "regnetx32",
)


@dataclass(frozen=True)
class Recipe:
    """The book's training settings for one network (chapter 8: SGD, batch 128, 10 epochs)."""

    lr: float
    resize: int | None = None  # side the 28x28 images are resized to; None keeps 28
    batch_size: int = 128
    epochs: int = 10
    optimizer: str = "sgd"


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one network, besides how to build it."""

    name: str
    family: str
    section: str  # the book section that defines it, e.g. "8.6"
    paper: str
    image_size: int  # the side the book (or, for paper-table models, the paper) feeds it
    builder: Builder = field(repr=False)
    options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    recipe: Recipe | None = None  # the book's, or its parent's for an exercise variant; None: none
    reference: str | None = None  # torchvision builder with the same architecture, if any
    summary: str = ""
    in_channels: int = 1  # what it takes unless told: Fashion-MNIST's one channel
    num_classes: int = 10
    external: bool = False  # a tv:/timm: network: built and initialized as its source does

    @functools.cached_property
    def min_image_size(self) -> int:
        """The smallest square input side the network accepts, found by trying; for a network
        from outside the chapters that takes no side the search tries (a fixed input size, a
        ViT's), its own."""
        try:
            return _min_image_size(self, dict(self.options))
        except ValueError:
            if self.external:
                return self.image_size
            raise

    def accepts(self, size: int) -> bool:
        """Whether the network takes a ``size`` x ``size`` input: one try on the meta device
        (cheaper than finding the smallest side), once per size."""
        if "min_image_size" in self.__dict__:  # already found
            return size >= self.min_image_size
        tried = self.__dict__.setdefault("_tried", {})  # size -> whether it fits
        if size not in tried:
            with torch.no_grad():
                model = self.meta_model(num_classes=2, **self.options)
                tried[size] = _fits(model, self.in_channels, size)
        return tried[size]

    def meta_model(self, **kwargs: Any) -> nn.Module:
        """The builder's module on the meta device (shapes, no values). A network from outside
        the chapters keeps its integer buffers real: its constructor may compute with tensors
        (torchvision's RegNet widths) or keep data in them (Swin's relative-position indices).
        It is built in a ``ShapeCache``, where initializers do not write meta tensors."""
        kwargs.setdefault("in_channels", self.in_channels)
        if not self.external:
            with torch.device("meta"), ShapeCache():
                return self.builder(**kwargs)
        with _parameters_on_meta(), ShapeCache():
            model = self.builder(**kwargs)
        for module in model.modules():
            for key, buffer in module._buffers.items():
                if buffer is not None and buffer.is_floating_point():
                    module._buffers[key] = buffer.to("meta")
        return model


_REGISTRY: dict[str, ModelSpec] = {}
# networks from outside the chapters, by prefix ("tv", "timm"): the spec of a prefixed name
_SOURCES: dict[str, Callable[[str], ModelSpec]] = {}


def register_source(prefix: str, resolve: Callable[[str], ModelSpec]) -> None:
    """Serve every ``<prefix>:<name>`` from ``resolve`` (it raises KeyError for unknown names)."""
    _SOURCES[prefix] = resolve


def register(
    name: str,
    builder: Builder,
    *,
    family: str,
    section: str,
    paper: str,
    image_size: int,
    options: dict[str, Any] | None = None,
    recipe: Recipe | None = None,
    reference: str | None = None,
    summary: str = "",
) -> ModelSpec:
    """Add ``name``: ``builder`` called with ``options`` (overridable in build), and its facts."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    options = MappingProxyType(dict(options or {}))
    _check_options(name, builder, options)
    entry = ModelSpec(
        name=name,
        family=family,
        section=section,
        paper=paper,
        image_size=image_size,
        builder=builder,
        options=options,
        recipe=recipe,
        reference=reference,
        summary=summary,
    )
    _REGISTRY[name] = entry
    return entry


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern``, in book order."""
    entries = sorted(_REGISTRY.values(), key=lambda e: tuple(map(int, e.section.split("."))))
    return [e.name for e in entries if fnmatch.fnmatchcase(e.name, pattern)]


def spec(name: str) -> ModelSpec:
    """The registry entry for ``name`` (or a ``tv:``/``timm:`` network's); an unknown name
    raises KeyError listing close matches."""
    if ":" in name:
        prefix = name.partition(":")[0]
        if prefix not in _SOURCES:
            raise KeyError(
                f"unknown model {name!r}: a name with a colon starts with "
                + " or ".join(f"{p}:" for p in _SOURCES)
            )
        return _SOURCES[prefix](name)
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; python -m archs lists them"
        raise KeyError(f"unknown model {name!r}{hint}") from None


def build(
    name: str,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | None = None,
    device: torch.device | str = "cpu",
    **overrides: Any,
) -> nn.Module:
    """Build ``name`` for square inputs of ``image_size`` (default: its book input size), with
    ``num_classes`` outputs and ``in_channels`` input channels (default: the network's own, 10
    and 1 for the chapters' networks, 1,000 and 3 for a ``tv:``/``timm:`` one, which is built
    and initialized as its source does).

    The returned module is in training mode on ``device``, with every lazy layer materialized
    and conv/linear weights Xavier-uniform initialized as in the book; seed torch for repeatable
    weights. On the meta device it has shapes but no values (for counting at no cost). An input
    smaller than the network accepts raises ValueError naming the minimum.
    """
    entry = spec(name)
    num_classes = entry.num_classes if num_classes is None else num_classes
    in_channels = entry.in_channels if in_channels is None else in_channels
    size = entry.image_size if image_size is None else image_size
    if min(size, num_classes, in_channels) < 1:
        raise ValueError("image_size, num_classes and in_channels must be positive")
    _check_options(name, entry.builder, overrides)
    options = {**entry.options, **overrides}
    with torch.no_grad():
        model = entry.meta_model(in_channels=in_channels, num_classes=num_classes, **options)
        if not _fits(model, in_channels, size):  # sizes the lazy layers, or raises
            _refuse(entry, options, in_channels, size)
    on_meta = torch.device(device).type == "meta"
    if entry.external and not on_meta:  # its source's own initialization, on the device
        with torch.device(device):
            return entry.builder(in_channels=in_channels, num_classes=num_classes).train()
    if not on_meta:
        model.to_empty(device=device)
        init_weights(model)
    return model.train()


def _refuse(entry: ModelSpec, options: dict, in_channels: int, size: int) -> None:
    """Raise ValueError naming the smallest side when ``size`` is below it; otherwise run the
    input through once more for the network's own error (a chapter network's is a bug; an
    outside network's is the input size it insists on)."""
    try:
        smallest = _min_image_size(entry, options, in_channels)
    except ValueError:  # no side fits: a fixed input size
        smallest = entry.image_size
    if size < smallest:
        raise ValueError(
            f"{entry.name} needs inputs of at least {smallest}x{smallest} pixels, got {size}x{size}"
        )
    model = entry.meta_model(in_channels=in_channels, num_classes=2, **options).eval()
    try:
        model(torch.empty(1, in_channels, size, size, device="meta"))
    except _REFUSALS as refusal:
        if not entry.external:
            raise
        raise ValueError(f"{entry.name} does not take {size}x{size} inputs: {refusal}") from None


def init_weights(model: nn.Module) -> None:
    """The book's init: default init everywhere, then Xavier-uniform conv and linear weights."""
    for module in model.modules():
        owns_state = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        elif owns_state:
            raise TypeError(f"{type(module).__name__} holds tensors but has no reset_parameters")
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)


def _check_options(name: str, builder: Builder, options: dict) -> None:
    accepted = set(inspect.signature(builder).parameters) - {"in_channels", "num_classes"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(
            f"{name} does not take {', '.join(unknown)}; it takes: {', '.join(sorted(accepted))}"
        )


def _min_image_size(entry: ModelSpec, options: dict, in_channels: int | None = None) -> int:
    # Bisection on the meta device. Every conv and pool maps a larger input to an output at least
    # as large, and fails only when an output would be empty, so the sizes a network accepts are
    # all those from some minimum up. Lazy layers fix their size on first use: a model that has
    # any is rebuilt for every try.
    in_channels = in_channels or entry.in_channels
    with torch.no_grad():
        probe = entry.meta_model(in_channels=in_channels, num_classes=2, **options).eval()
        lazy = any(isinstance(m, LazyModuleMixin) for m in probe.modules())

        def fits(size: int) -> bool:
            model = (
                entry.meta_model(in_channels=in_channels, num_classes=2, **options)
                if lazy
                else probe
            )
            return _fits(model, in_channels, size)

        high = 1  # double until a size fits, then bisect between the last two
        while not fits(high):
            if high >= _MAX_MIN_INPUT:
                raise ValueError(f"no input up to {_MAX_MIN_INPUT}x{_MAX_MIN_INPUT} fits")
            high *= 2
        low = high // 2  # fails, or is 0
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if fits(mid) else (mid, high)
    return high


def _fits(model: nn.Module, in_channels: int, size: int) -> bool:
    """Whether ``model`` (on the meta device) runs on a ``size`` x ``size`` input."""
    try:
        with ShapeCache():
            model.eval()(torch.empty(1, in_channels, size, size, device="meta"))
    except _REFUSALS:
        return False
    return True


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """While active, every parameter a module registers moves to the meta device."""
    register = nn.Module.register_parameter

    def on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register
