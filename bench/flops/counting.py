"""Counting on the meta device: FLOPs and bytes of every op by (layer, op, phase), the bytes
autograd saves for backward, and the peak bytes alive during inference.

A forward op belongs to the innermost module running; a backward op to the module whose forward
created the autograd node being run; ops of neither kind (a loss's, an optimizer's) are not the
model's and are not counted. Rules come from a handler table (``bench.flops.handlers``).
"""

from __future__ import annotations

import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from bench.flops.handlers import FLOPS, FREE, Handler, bind
from bench.flops.workspace import NO_WORK, Work, conv_work

aten = torch.ops.aten


class OpCounter(TorchDispatchMode):
    """FLOPs and bytes of every op of ``model`` by (layer, op, phase), and the output shape of
    every layer.

    A forward op belongs to the innermost module running. A backward op belongs to the module
    whose forward created the autograd node being run: after each module's forward, the nodes
    between its output and its inputs that no inner module claimed are claimed for it. An op
    that belongs to no module (a loss's, forward or backward; an optimizer's) is not counted.
    """

    def __init__(self, model: nn.Module, handlers: Mapping[Any, Handler] = FLOPS):
        super().__init__()
        self.model, self.handlers = model, handlers
        self.running: list[str] = []
        self.owner: dict[Any, str] = {}  # autograd node -> layer
        self.output_shapes: dict[str, tuple[int, ...]] = {}
        self.counts: dict[tuple[str, Any, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        self.uncounted: Counter[tuple[str, str]] = Counter()

    def __enter__(self) -> OpCounter:
        self.hooks = []
        for name, module in self.model.named_modules():
            self.hooks.append(module.register_forward_pre_hook(self._enter_hook(name)))
            self.hooks.append(module.register_forward_hook(self._exit_hook(name)))
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        for hook in self.hooks:
            hook.remove()
        return super().__exit__(*exc)

    def _enter_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any) -> None:
            self.running.append(name)

        return hook

    def _exit_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self.running.pop()
            outputs = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor)]
            self.output_shapes[name] = tuple(outputs[0].shape)
            boundary = {t.grad_fn for t in tree_flatten(inputs)[0] if isinstance(t, torch.Tensor)}
            todo = [t.grad_fn for t in outputs if t.grad_fn is not None]
            seen = set()
            while todo:
                node = todo.pop()
                if node is None or node in boundary or node in seen:
                    continue
                seen.add(node)
                self.owner.setdefault(node, name)
                todo.extend(next_node for next_node, _ in node.next_functions)

        return hook

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = func.overloadpacket
        if op in FREE and op not in self.handlers:
            return out
        backward = torch._C._current_graph_task_id() != -1
        if backward:
            layer = self.owner.get(torch._C._current_autograd_node())
        else:
            layer = self.running[-1] if self.running else None
        if layer is None:  # not the model's
            return out
        phase = "backward" if backward else "forward"
        if op not in self.handlers:
            self.uncounted[(str(op), phase)] += 1
            return out
        entry = self.counts[(layer, op, phase)]
        entry[0] += 1
        entry[1] += self.handlers[op](bind(func, args, kwargs), out)
        entry[2] += sum(t.numel() * t.element_size() for t in _op_tensors(args, kwargs, out))
        return out


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages that ops create, while any tensor on them is alive, and the
    working memory each convolution holds while it runs (``bench.flops.workspace``); keeps the
    peak. Storages in ``existing`` (weights, the input) are not counted, nor are views of them.
    ``on_conv`` is told each forward convolution's working bytes, forward and backward."""

    def __init__(self, existing: set[int], on_conv: Callable[[Work], None] = lambda work: None):
        super().__init__()
        self.existing, self.on_conv = existing, on_conv
        self.live = self.peak = 0
        self.storages: dict[int, list[int]] = {}  # storage -> [bytes, tensors alive]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in _op_tensors(out):
            key = t.untyped_storage()._cdata
            if key in self.existing:
                continue
            if key not in self.storages:
                self.storages[key] = [t.untyped_storage().nbytes(), 0]
                self.live += self.storages[key][0]
                self.peak = max(self.peak, self.live)
            self.storages[key][1] += 1
            weakref.finalize(t, self._release, key)
        if func is aten.convolution.default:
            work = conv_work(bind(func, args, kwargs or {}), out.shape)
            self.on_conv(work)
            self.peak = max(self.peak, self.live + work.forward)
        elif func is aten.convolution_backward.default:
            a = bind(func, args, kwargs or {})
            self.peak = max(self.peak, self.live + conv_work(a, a["grad_output"].shape).backward)
        return out

    def _release(self, key: int) -> None:
        entry = self.storages[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self.storages[key]


def _op_tensors(*values: Any) -> list[torch.Tensor]:
    """The tensors in an op's arguments or outputs: tensors, lists and tuples of them, and the
    values of a keyword dict (what ATen ops take and return; cheaper than a general tree)."""
    found = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found += _op_tensors(*value)
        elif isinstance(value, dict):
            found += _op_tensors(*value.values())
    return found


def output_tensors(out: Any) -> list[torch.Tensor]:
    """Every tensor a forward pass returned: the logits alone, or, for a network with auxiliary
    classifiers in training mode (torchvision's GoogLeNet and Inception v3 return named
    tuples), the logits first and each auxiliary head after; a training loss takes them all."""
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def one_step(model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> None:
    """One step as every memory reading takes it: with ``labels``, a training step (forward in
    training mode, cross-entropy on each output, a sum for one that is not a batch of logits,
    backward, a plain SGD step; the gradients are then dropped); without, one inference pass."""
    if labels is None:
        with torch.no_grad():
            model.eval()(x)
        return
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    outs = output_tensors(model.train()(x))
    losses = [
        torch.nn.functional.cross_entropy(out, labels) if out.dim() == 2 else out.sum()
        for out in outs
    ]
    sum(losses).backward()
    optimizer.step()
    model.zero_grad(set_to_none=True)


def _resident(model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> dict[int, int]:
    """What a step finds allocated, storage -> bytes: weights, buffers, the input and labels."""
    tensors = [x, *([] if labels is None else [labels]), *model.parameters(), *model.buffers()]
    return {t.untyped_storage()._cdata: t.untyped_storage().nbytes() for t in tensors}


def resident_bytes(model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> int:
    """The bytes a step finds allocated: weights, buffers, the input and its labels."""
    return sum(_resident(model, x, labels).values())


@dataclass(frozen=True)
class LayerBytes:
    """One leaf module's part in a training step: what autograd saves in its forward (storages
    that no earlier module saved and that are not the weights or the input), its output, its
    parameters' gradients, and the working memory its convolutions hold, forward and backward
    (``bench.flops.workspace``)."""

    saved: int
    output: int
    grads: int
    work: Work = NO_WORK


@dataclass(frozen=True)
class StepBytes:
    """What one training step and one inference pass on a batch hold, tracked as ops make and
    free storages (on the meta device as a real step on this CPU allocates them, the working
    memory of convolutions included). ``train``, ``infer``: the most bytes alive at once, the
    weights, buffers, input and (training) labels included; ``infer_activations``: inference's
    without them; ``saved``: the bytes autograd saves in the training forward, weights aside;
    ``layers``: per leaf module in the order of the forward pass (one that runs twice counts
    once). The training fields are None where the batch cannot train (batch norm on one image)."""

    infer: int
    infer_activations: int
    train: int | None
    saved: int | None
    layers: list[LayerBytes] | None


def read_step(model: nn.Module, x: torch.Tensor, counter: OpCounter | None = None) -> StepBytes:
    """One inference pass and one training step (``one_step``) on ``x``, read at once;
    ``counter``, where given, counts the training step's ops (a step that cannot train then
    raises)."""
    activations = _peak(model, x, None)
    infer = activations + resident_bytes(model, x, None)
    labels = torch.zeros(len(x), dtype=torch.long, device=x.device)
    try:
        with ForwardSaves(model, x) as saves, counter or nullcontext():
            train = _peak(model, x, labels, saves.charge) + resident_bytes(model, x, labels)
    except ValueError:  # batch norm needs two examples per channel to train
        if counter is not None:
            raise
        return StepBytes(infer, activations, None, None, None)
    return StepBytes(infer, activations, train, saves.total, saves.layers())


def _peak(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor | None,
    on_conv: Callable[[Work], None] = lambda work: None,
) -> int:
    """The most bytes alive (or held by a convolution at work) at once through ``one_step``
    beyond what it found allocated."""
    with LiveBytes(set(_resident(model, x, labels)), on_conv) as live:
        one_step(model, x, labels)
    return live.peak


class ForwardSaves(saved_tensors_hooks):
    """What autograd saves during ``model``'s forward (not the loss's after it): unique storages
    other than the weights in all (``total``), and per leaf module (``layers()``), where the
    input is not counted either and ops after a leaf (a functional ReLU, an addition in a
    container's forward) are charged to the leaf entered last."""

    def __init__(self, model: nn.Module, x: torch.Tensor):
        weights = {t.untyped_storage()._cdata for t in [*model.parameters(), *model.buffers()]}
        existing = weights | {x.untyped_storage()._cdata}
        self.model, self.running = model, False
        self.storages: dict[int, int] = {}  # every storage saved, weights aside
        self.last: list[str] = []  # the leaf module entered last
        self.by_leaf: dict[str, int] = {}
        self.seen: set[int] = set()
        self.outputs: dict[str, LayerBytes] = {}
        self.work: dict[str, Work] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            if not self.running:
                return t
            key = t.untyped_storage()._cdata
            if key not in weights:
                self.storages[key] = t.untyped_storage().nbytes()
            if key not in existing and key not in self.seen and self.last:
                self.seen.add(key)
                leaf = self.last[-1]
                self.by_leaf[leaf] = self.by_leaf.get(leaf, 0) + t.untyped_storage().nbytes()
            return t

        super().__init__(pack, lambda t: t)

    def __enter__(self) -> ForwardSaves:
        leaves = [(n, m) for n, m in self.model.named_modules() if not list(m.children())]
        self.hooks = [
            self.model.register_forward_pre_hook(lambda *_: setattr(self, "running", True)),
            *(h for n, m in leaves for h in self._leaf_hooks(n, m)),
            self.model.register_forward_hook(lambda *_: setattr(self, "running", False)),
        ]
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        for hook in self.hooks:
            hook.remove()

    def _leaf_hooks(self, name: str, module: nn.Module) -> list[Any]:
        def leave(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            grads = sum(p.numel() * p.element_size() for p in module.parameters(recurse=False))
            self.outputs.setdefault(
                name, LayerBytes(0, output.numel() * output.element_size(), grads)
            )

        return [
            module.register_forward_pre_hook(lambda *_: self.last.append(name)),
            module.register_forward_hook(leave),
        ]

    def charge(self, work: Work) -> None:
        """Charge a convolution's working memory to the leaf running it (the most of each)."""
        if self.running and self.last:
            held = self.work.get(self.last[-1], NO_WORK)
            self.work[self.last[-1]] = Work(*map(max, held, work))

    @property
    def total(self) -> int:
        return sum(self.storages.values())

    def layers(self) -> list[LayerBytes]:
        return [
            LayerBytes(self.by_leaf.get(n, 0), b.output, b.grads, self.work.get(n, NO_WORK))
            for n, b in self.outputs.items()
        ]
