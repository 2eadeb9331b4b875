"""What a network costs before it runs: parameters, MACs/FLOPs forward and backward, activation
memory and arithmetic intensity, all counted on the meta device (shapes, no arithmetic).

Conventions. A MAC is one multiply-accumulate; FLOPs = 2 x MACs, always, so an op that does one
arithmetic operation per element (a ReLU, an addition) counts 1 FLOP = 0.5 MAC per element.
FLOPs of every aten op come from the handler table ``FLOPS`` below, one rule per op (a
concatenation is counted, at 0 FLOPs: it only copies); ops that do no arithmetic (views,
allocation, copies) are listed in ``FREE``; any other op is reported as not counted, never
silently as zero. Bias additions of conv and linear layers, and
conv bias gradients, are not counted (as in fvcore and torch's FlopCounterMode).

Two independent counters check the conv and matmul part: fvcore (forward; one fused
multiply-add = one flop, i.e. it counts MACs) and torch.utils.flop_counter.FlopCounterMode
(forward and backward; 2 FLOPs per MAC), the latter with its grouped-convolution backward
corrected (torch's formula charges the weight gradient ``groups`` times).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import warnings
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd
import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

import archs

aten = torch.ops.aten


def _conv(x, w, *args, out, **kwargs) -> int:
    transposed = args[4] if len(args) > 4 else kwargs.get("transposed", False)
    # Each output (input, if transposed) point multiplies one weight slice of w[0].numel().
    return 2 * (x if transposed else out).numel() * w[0].numel()


def _conv_backward(grad_out, x, w, *args, out, **kwargs) -> int:
    transposed, mask = args[4], args[7]
    forward = 2 * (x if transposed else grad_out).numel() * w[0].numel()
    return forward * (int(mask[0]) + int(mask[1]))  # input gradient, weight gradient


def _mm(a, b, *args, out, **kwargs) -> int:
    return 2 * out.numel() * a.shape[-1]


def _addmm(bias, a, b, *args, out, **kwargs) -> int:
    return 2 * out.numel() * a.shape[-1]


def _batch_norm(x, *args, out, **kwargs) -> int:
    training = next(a for a in [*args, *kwargs.values()] if isinstance(a, bool))
    # training: mean (1 add), variance (subtract, multiply-add: 3), normalize and scale
    # (subtract, multiply-add: 3) per element; inference folds into one multiply-add.
    return (7 if training else 2) * x.numel()


def _batch_norm_eval(x, *args, out, **kwargs) -> int:
    return 2 * x.numel()


def _batch_norm_backward(grad_out, *args, out, **kwargs) -> int:
    # two reductions (sum of dy: 1, of dy * xhat: 2), recomputing xhat (2), combining (3)
    return 8 * grad_out.numel()


def _per_output(flops: int) -> Callable[..., int]:
    def handler(*args, out, **kwargs) -> int:
        first = out[0] if isinstance(out, tuple) else out
        return flops * first.numel()

    return handler


def _per_input(*args, out, **kwargs) -> int:
    return args[0].numel()


def _window(kernel) -> int:
    kernel = [kernel] * 2 if isinstance(kernel, int) or len(kernel) == 1 else kernel
    return math.prod(kernel)


def _max_pool(x, kernel, *args, out, **kwargs) -> int:
    return (_window(kernel) - 1) * out[0].numel()  # comparisons per output


def _avg_pool(x, kernel, *args, out, **kwargs) -> int:
    return _window(kernel) * out.numel()  # additions and one scaling per output


def _avg_pool_backward(grad_out, x, kernel, *args, out, **kwargs) -> int:
    return _window(kernel) * grad_out.numel()


# op -> FLOPs of one call, from its arguments and output (tensors with shapes, no values).
FLOPS: dict[Any, Callable[..., int]] = {
    aten.convolution: _conv,
    aten.convolution_backward: _conv_backward,
    aten.mm: _mm,
    aten.bmm: _mm,
    aten.addmm: _addmm,
    aten.native_batch_norm: _batch_norm,
    aten._native_batch_norm_legit: _batch_norm,
    aten._native_batch_norm_legit_no_training: _batch_norm_eval,
    aten.cudnn_batch_norm: _batch_norm,
    aten.native_batch_norm_backward: _batch_norm_backward,
    aten.cudnn_batch_norm_backward: _batch_norm_backward,
    aten.relu: _per_output(1),
    aten.relu_: _per_output(1),
    aten.threshold_backward: _per_output(1),
    aten.sigmoid: _per_output(4),  # negate, exponentiate, add, divide
    aten.sigmoid_backward: _per_output(3),  # dy * y * (1 - y)
    aten.max_pool2d_with_indices: _max_pool,
    aten.max_pool2d_with_indices_backward: _per_input,  # one scatter-add per gradient
    aten.avg_pool2d: _avg_pool,
    aten.avg_pool2d_backward: _avg_pool_backward,
    aten.mean: _per_input,
    aten.sum: _per_input,
    aten.add: _per_output(1),
    aten.add_: _per_output(1),
    aten.sub: _per_output(1),
    aten.mul: _per_output(1),
    aten.mul_: _per_output(1),
    aten.div: _per_output(1),
    aten.div_: _per_output(1),
    aten.neg: _per_output(1),
    aten.pow: _per_output(1),
    aten.sqrt: _per_output(1),
    aten.rsqrt: _per_output(1),
    aten.lerp_: _per_output(2),
    aten.cat: _per_output(0),  # a copy: bytes, no arithmetic
}
CATEGORY = {
    aten.convolution: "conv",
    aten.convolution_backward: "conv",
    aten.mm: "linear",
    aten.bmm: "linear",
    aten.addmm: "linear",
}
FREE = frozenset({
    aten.detach, aten.view, aten._unsafe_view, aten.reshape, aten.t, aten.transpose,
    aten.permute, aten.expand, aten.slice, aten.select, aten.squeeze, aten.unsqueeze,
    aten.as_strided, aten.alias, aten.split, aten.split_with_sizes, aten.empty, aten.empty_like,
    aten.empty_strided, aten.zeros, aten.zeros_like, aten.ones, aten.ones_like, aten.full,
    aten.full_like, aten.new_empty, aten.new_zeros, aten.new_ones, aten.fill_, aten.zero_,
    aten.copy_, aten.clone, aten._to_copy, aten.lift_fresh, aten.scalar_tensor,
})  # fmt: skip


def _category(op) -> str:
    return CATEGORY.get(op, "other")


def _corrected_conv_backward(
    grad_out, x, w, _bias, _stride, _padding, _dilation, transposed, _output_padding, _groups,
    output_mask, out_shape=None, **kwargs,
) -> int:  # fmt: skip
    """FlopCounterMode's rule with the weight gradient charged once, not ``groups`` times."""
    forward = conv_flop_count(x, w, grad_out, transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


class _OpCounter(TorchDispatchMode):
    """FLOPs and bytes of every op by (layer, op, phase), and the output shape of every layer.

    A forward op belongs to the innermost module running. A backward op belongs to the module
    whose forward created the autograd node being run: after each module's forward, the nodes
    between its output and its inputs that no inner module claimed are claimed for it.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.running: list[str] = []
        self.owner: dict[Any, str] = {}  # autograd node -> layer
        self.output_shapes: dict[str, tuple[int, ...]] = {}
        self.counts: dict[tuple[str, Any, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        self.uncounted: Counter[tuple[str, str]] = Counter()

    def __enter__(self) -> _OpCounter:
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
        if op in FREE:
            return out
        backward = torch._C._current_graph_task_id() != -1
        phase = "backward" if backward else "forward"
        if op not in FLOPS:
            self.uncounted[(str(op), phase)] += 1
            return out
        if backward:
            layer = self.owner.get(torch._C._current_autograd_node(), OUTSIDE)
        else:
            layer = self.running[-1] if self.running else OUTSIDE
        entry = self.counts[(layer, op, phase)]
        entry[0] += 1
        entry[1] += FLOPS[op](*args, out=out, **kwargs)
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        entry[2] += sum(t.numel() * t.element_size() for t in tensors)
        return out


OUTSIDE = "(outside any module)"


class _LiveBytes(TorchDispatchMode):
    """Bytes of the storages that ops create, while any tensor on them is alive; keeps the peak.
    Storages in ``existing`` (weights, the input) are not counted, nor are views of them."""

    def __init__(self, existing: set[int]):
        super().__init__()
        self.existing = existing
        self.live = self.peak = 0
        self.storages: dict[int, list[int]] = {}  # storage -> [bytes, tensors alive]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                key = t.untyped_storage()._cdata
                if key in self.existing:
                    continue
                if key not in self.storages:
                    self.storages[key] = [t.untyped_storage().nbytes(), 0]
                    self.live += self.storages[key][0]
                    self.peak = max(self.peak, self.live)
                self.storages[key][1] += 1
                weakref.finalize(t, self._release, key)
        return out

    def _release(self, key: int) -> None:
        entry = self.storages[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self.storages[key]


class SavedBytes(saved_tensors_hooks):
    """Bytes autograd saves for backward while active: unique storages, not ``model``'s weights."""

    def __init__(self, model: nn.Module):
        weights = {t.untyped_storage()._cdata for t in [*model.parameters(), *model.buffers()]}
        self.storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            key = t.untyped_storage()._cdata
            if key not in weights:
                self.storages[key] = t.untyped_storage().nbytes()
            return t

        super().__init__(pack, lambda t: t)

    def __enter__(self) -> SavedBytes:
        super().__enter__()
        return self

    @property
    def total(self) -> int:
        return sum(self.storages.values())


def peak_inference_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Peak bytes of tensors alive during one inference pass (the input and weights excluded)."""
    existing = {t.untyped_storage()._cdata for t in [x, *model.parameters(), *model.buffers()]}
    with torch.no_grad(), _LiveBytes(existing) as live:
        model(x)
    return live.peak


def fvcore_macs(model: nn.Module, x: torch.Tensor) -> int | None:
    """Conv and matmul MACs of one forward pass by fvcore (it traces, so needs real tensors);
    None where fvcore is not installed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # fvcore uses torch.jit, now deprecated
        try:
            from fvcore.nn import FlopCountAnalysis
        except ImportError:
            return None

        logging.getLogger("fvcore").setLevel(logging.ERROR)
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        with torch.no_grad():
            by_op = analysis.by_operator()
    return sum(v for k, v in by_op.items() if k in ("conv", "linear", "addmm", "matmul", "bmm"))


class Profile(NamedTuple):
    """``summary``: one row; ``layers``: one row per module that ran ops; ``ops``: per op type."""

    summary: pd.DataFrame
    layers: pd.DataFrame
    ops: pd.DataFrame


@dataclass
class _Target:
    name: str
    meta: nn.Module  # the model on the meta device
    real: Callable[[], nn.Module]  # the model with real storage (for fvcore), made on demand
    in_channels: int
    size: int
    min_input_size: int | None


def _target(model_or_name: str | nn.Module, input_size: int | None, in_channels: int) -> _Target:
    if isinstance(model_or_name, str):
        spec = archs.spec(model_or_name)
        size = input_size or spec.input_size
        meta = archs.build(model_or_name, in_channels=in_channels, image_size=size, device="meta")
        return _Target(
            spec.name, meta, lambda: copy.deepcopy(meta).to_empty(device="cpu"), in_channels,
            size, spec.min_input_size,
        )  # fmt: skip
    if input_size is None:
        raise ValueError("input_size is required when profiling a module")
    model = model_or_name
    return _Target(
        type(model).__name__, copy.deepcopy(model).to("meta"), lambda: copy.deepcopy(model),
        in_channels, input_size, None,
    )  # fmt: skip


def profile(
    model_or_name: str | nn.Module,
    *,
    input_size: int | None = None,
    batch_size: int = 128,
    in_channels: int = 1,
) -> Profile:
    """Count parameters, MACs/FLOPs (forward and backward) and activation memory of a network.

    ``model_or_name`` is a registry name (built at ``input_size``, default its book size) or any
    nn.Module (``input_size`` required). Counting runs on a meta-device copy, so the cost does
    not depend on the network's size or ``batch_size``; only fvcore's cross-check runs one real
    forward pass at batch 1 on the CPU.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    target = _target(model_or_name, input_size, in_channels)
    model, shape = target.meta, (in_channels, target.size, target.size)
    batch = torch.empty(batch_size, *shape, device="meta")

    model.train()
    with (
        SavedBytes(model) as saved,
        _OpCounter(model) as ours,
        FlopCounterMode(
            display=False, custom_mapping={aten.convolution_backward: _corrected_conv_backward}
        ) as theirs,
    ):
        out = model(batch)
        theirs_forward = theirs.get_total_flops()
        out.backward(torch.ones_like(out))
        theirs_total = theirs.get_total_flops()
    model.zero_grad(set_to_none=True)

    ops = _op_table(ours)
    layers = _layer_table(ops, model, ours.output_shapes)
    per_image = ops.groupby("phase")["flops"].sum() / batch_size
    matmul = ops[ops["category"] != "other"].groupby("phase")["flops"].sum()
    counted_macs = int(matmul.get("forward", 0)) // 2 // batch_size
    real = target.real().eval()
    device = next(real.parameters(), torch.empty(0)).device
    fvcore = fvcore_macs(real, torch.zeros(1, *shape, device=device))
    agree = (
        fvcore in (None, counted_macs)  # a cross-check that cannot run is said so, not failed
        and theirs_forward == matmul.get("forward", 0)
        and theirs_total - theirs_forward == matmul.get("backward", 0)
    )
    summary = {
        "model": target.name,
        "image_size": target.size,
        "in_channels": in_channels,
        "batch_size": batch_size,
        **_parameters(model),
        "fwd_flops_per_image": int(per_image.get("forward", 0)),
        "bwd_flops_per_image": int(per_image.get("backward", 0)),
        **_split_by_category(ops, batch_size),
        "fvcore_fwd_macs_per_image": fvcore,
        "flopcounter_fwd_flops": theirs_forward,
        "flopcounter_bwd_flops": theirs_total - theirs_forward,
        "counters_agree": bool(agree),
        "uncounted_ops": ", ".join(
            f"{op} ({phase}, {n}x)" for (op, phase), n in sorted(ours.uncounted.items())
        ),
        "fwd_bytes_moved": int(ops.loc[ops["phase"] == "forward", "bytes"].sum()),
        **_memory(model, shape, batch_size, saved.total),
        "min_input_size": target.min_input_size,
    }
    summary["fwd_macs_per_image"] = summary["fwd_flops_per_image"] / 2
    summary["bwd_macs_per_image"] = summary["bwd_flops_per_image"] / 2
    summary["fwd_flops_per_byte"] = (
        summary["fwd_flops_per_image"] * batch_size / max(summary["fwd_bytes_moved"], 1)
    )
    return Profile(pd.DataFrame([summary]), layers, ops)


def profile_job(name: str, config: dict[str, Any]) -> tuple[dict, list[dict], list[dict]]:
    """One registry network's profile as plain values: the summary row, layer rows and op rows.

    Self-contained (it takes a name and a config, returns JSON-ready data), so it can run in
    any worker process.
    """
    torch.set_num_threads(1)  # one worker per core
    result = profile(
        name,
        input_size=config["image_size"],
        batch_size=config["batch_size"],
        in_channels=config["in_channels"],
    )
    summary, layers, ops = (json.loads(frame.to_json(orient="records")) for frame in result)
    return summary[0], layers, ops


def step_flops_per_image(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """FLOPs per image of an inference step (forward in eval mode) and of a training step
    (forward and backward in training mode), counted on ``model``, a meta-device module."""
    batch = torch.empty(2, *input_shape, device="meta")  # training batch norm needs two
    with _OpCounter(model.eval()) as infer, torch.no_grad():
        model(batch)
    with _OpCounter(model.train()) as train:
        out = model(batch)
        out.backward(torch.ones_like(out))
    model.zero_grad(set_to_none=True)
    return {
        "infer": sum(flops for _, flops, _ in infer.counts.values()) // 2,
        "train": sum(flops for _, flops, _ in train.counts.values()) // 2,
    }


def _op_table(counter: _OpCounter) -> pd.DataFrame:
    rows = [
        {
            "layer": layer,
            "op": str(op),
            "phase": phase,
            "category": _category(op),
            "calls": calls,
            "flops": flops,
            "macs": flops / 2,
            "bytes": moved,
        }
        for (layer, op, phase), (calls, flops, moved) in counter.counts.items()
    ]
    return pd.DataFrame(rows)


def _layer_table(ops: pd.DataFrame, model: nn.Module, shapes: dict) -> pd.DataFrame:
    modules = dict(model.named_modules())
    table = ops.pivot_table(
        index="layer", columns="phase", values=["flops", "bytes"], aggfunc="sum", fill_value=0
    )
    rows = []
    for name in [n for n in [*modules, OUTSIDE] if n in table.index]:
        fwd = int(table.loc[name].get(("flops", "forward"), 0))
        bwd = int(table.loc[name].get(("flops", "backward"), 0))
        moved = int(table.loc[name].get(("bytes", "forward"), 0))
        rows.append(
            {
                "layer": name or "(model)",
                "type": type(modules[name]).__name__ if name in modules else "",
                "output_shape": "x".join(map(str, shapes.get(name, ())[1:])),
                "params": sum(p.numel() for p in modules[name].parameters(recurse=False))
                if name in modules
                else 0,
                "fwd_flops": fwd,
                "fwd_macs": fwd / 2,
                "bwd_flops": bwd,
                "bwd_macs": bwd / 2,
                "fwd_bytes_moved": moved,
                "fwd_flops_per_byte": fwd / moved if moved else 0.0,
            }
        )
    return pd.DataFrame(rows)


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    return "norm" if "Norm" in type(module).__name__ else "other"


def _parameters(model: nn.Module) -> dict[str, int]:
    by_kind = Counter()
    for module in model.modules():
        by_kind[_kind(module)] += sum(p.numel() for p in module.parameters(recurse=False))
    total = sum(p.numel() for p in model.parameters())
    return {
        "params": total,
        "params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        **{f"params_{kind}": by_kind[kind] for kind in ("conv", "linear", "norm", "other")},
        "param_bytes_fp32": 4 * total,
        "param_bytes_bf16": 2 * total,
    }


def _split_by_category(ops: pd.DataFrame, batch_size: int) -> dict[str, float]:
    split = {}
    for phase, short in (("forward", "fwd"), ("backward", "bwd")):
        rows = ops[ops["phase"] == phase]
        for category in ("conv", "linear", "other"):
            flops = rows.loc[rows["category"] == category, "flops"].sum()
            split[f"{short}_{category}_macs_per_image"] = flops / 2 / batch_size
    return split


# Optimizer state per trainable parameter, in parameter copies.
OPTIMIZER_STATE = {"sgd": 0, "sgd_momentum": 1, "adam": 2}


def _memory(model: nn.Module, shape: tuple[int, ...], batch_size: int, saved: int) -> dict:
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    one, batch = (torch.empty(n, *shape, device="meta") for n in (1, batch_size))
    try:
        with SavedBytes(model) as saved_one:
            model.train()(one)
        saved_batch1 = saved_one.total
    except ValueError:  # batch norm needs two examples per channel to train
        saved_batch1 = None
    memory: dict[str, Any] = {
        "weight_bytes": weights,
        "grad_bytes": grads,
        "saved_activation_bytes_batch1": saved_batch1,
        "saved_activation_bytes": saved,
        "infer_peak_bytes_batch1": peak_inference_bytes(model.eval(), one),
        "infer_peak_bytes": peak_inference_bytes(model, batch),
    }
    for optimizer, copies in OPTIMIZER_STATE.items():
        memory[f"train_bytes_est_{optimizer}"] = weights + grads + copies * grads + saved
    memory["infer_bytes_est"] = weights + memory["infer_peak_bytes"]
    return memory
