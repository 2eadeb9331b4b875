"""What a network costs before it runs: parameters, MACs/FLOPs forward and backward, activation
memory and arithmetic intensity, all counted on the meta device (shapes, no arithmetic).

Conventions. A MAC is one multiply-accumulate; FLOPs = 2 x MACs, always (the rules:
``bench.flops.handlers``). Two independent counters check the conv and matmul part, where
asked (``checks``): fvcore (forward; one fused multiply-add = one flop, i.e. it counts MACs)
and torch.utils.flop_counter.FlopCounterMode (forward and backward; 2 FLOPs per MAC), the
latter with its grouped-convolution backward corrected (torch's formula charges the weight
gradient ``groups`` times).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

import archs
from archs.meta import ShapeCache
from bench.flops.counting import LayerBytes, OpCounter, StepBytes, output_tensors, read_step
from bench.flops.handlers import FLOPS, Handler, category
from bench.flops.workspace import block

aten = torch.ops.aten

CHECKS = ("flop_counter", "fvcore")  # the counters ``profile`` can run beside its own


def corrected_conv_backward(
    grad_out,
    x,
    w,
    _bias,
    _stride,
    _padding,
    _dilation,
    transposed,
    _output_padding,
    _groups,
    output_mask,
    out_shape=None,
    **kwargs,
) -> int:
    """FlopCounterMode's rule with the weight gradient charged once, not ``groups`` times."""
    forward = conv_flop_count(x, w, grad_out, transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


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
    min_image_size: int | None


def _target(
    model_or_name: str | nn.Module, image_size: int | None, in_channels: int | None
) -> _Target:
    if isinstance(model_or_name, str):
        spec = archs.spec(model_or_name)
        size = image_size or spec.image_size
        in_channels = in_channels or spec.in_channels
        meta = archs.build(model_or_name, in_channels=in_channels, image_size=size, device="meta")
        return _Target(
            spec.name,
            meta,
            # an outside network's integer buffers hold data that to_empty would not keep
            (lambda: archs.build(model_or_name, in_channels=in_channels, image_size=size))
            if spec.external
            else (lambda: copy.deepcopy(meta).to_empty(device="cpu")),
            in_channels,
            size,
            spec.min_image_size,
        )
    if image_size is None:
        raise ValueError("image_size is required when profiling a module")
    model = model_or_name
    return _Target(
        type(model).__name__,
        copy.deepcopy(model).to("meta"),
        lambda: copy.deepcopy(model),
        in_channels or 1,
        image_size,
        None,
    )


def profile(
    model_or_name: str | nn.Module,
    *,
    image_size: int | None = None,
    batch_size: int = 128,
    in_channels: int | None = None,
    handlers: Mapping[Any, Handler] | None = None,
    checks: Collection[str] = (),
) -> Profile:
    """Count parameters, MACs/FLOPs (forward and backward) and activation memory of a network.

    ``model_or_name`` is a registry name (built at ``image_size``, default its book size) or any
    nn.Module (``image_size`` required). Counting runs on a meta-device copy, so the cost does
    not depend on the network's size or ``batch_size``. ``handlers`` (op -> FLOPs of a call,
    see ``bench.flops.handlers``) add rules to the table or replace its rules. ``checks``
    (of ``CHECKS``) run independent counters beside ours: FlopCounterMode in a training-mode
    pass of its own on the meta device, fvcore on one real forward pass at batch 1 on the CPU
    (its column None where it is not installed); ``counters_agree`` says whether those that ran
    agree, None where none ran. Our count is taken in the training step whose memory is
    tracked at ``batch_size``; the loss's and the optimizer's ops are not the network's and
    are left out.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    unknown = set(checks) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; there are {', '.join(CHECKS)}")
    target = _target(model_or_name, image_size, in_channels or None)
    in_channels = target.in_channels
    model, shape = target.meta, (in_channels, target.size, target.size)
    ours = OpCounter(model, {**FLOPS, **(handlers or {})})
    with ShapeCache():
        one = read_step(model, torch.empty(1, *shape, device="meta"))
        batch = read_step(model, torch.empty(batch_size, *shape, device="meta"), ours)
        theirs_forward, theirs_backward = (
            _flop_counter(model, batch_size, shape) if "flop_counter" in checks else (None, None)
        )
    memory = _memory(model, shape, batch_size, one, batch)

    ops = _op_table(ours)
    layers = _layer_table(ours, model)
    per_image = ops.groupby("phase")["flops"].sum() / batch_size
    matmul = ops[ops["category"] != "other"].groupby("phase")["flops"].sum()
    counted_macs = int(matmul.get("forward", 0)) // 2 // batch_size
    fvcore = None
    if "fvcore" in checks:
        real = target.real().eval()
        device = next(real.parameters(), torch.empty(0)).device
        fvcore = fvcore_macs(real, torch.zeros(1, *shape, device=device))
    agreements = []  # of the checks that ran
    if fvcore is not None:
        agreements.append(fvcore == counted_macs)
    if theirs_forward is not None:
        agreements.append(theirs_forward == matmul.get("forward", 0))
        agreements.append(theirs_backward == matmul.get("backward", 0))
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
        "flopcounter_bwd_flops": theirs_backward,
        "counters_agree": all(agreements) if agreements else None,
        "uncounted_ops": ", ".join(
            f"{op} ({phase}, {n}x)" for (op, phase), n in sorted(ours.uncounted.items())
        ),
        "fwd_bytes_moved": int(ops.loc[ops["phase"] == "forward", "bytes"].sum()),
        **memory,
        "min_image_size": target.min_image_size,
    }
    summary["fwd_macs_per_image"] = summary["fwd_flops_per_image"] / 2
    summary["bwd_macs_per_image"] = summary["bwd_flops_per_image"] / 2
    summary["fwd_flops_per_byte"] = (
        summary["fwd_flops_per_image"] * batch_size / max(summary["fwd_bytes_moved"], 1)
    )
    return Profile(pd.DataFrame([summary]), layers, ops)


def _flop_counter(model: nn.Module, batch_size: int, shape: tuple[int, ...]) -> tuple[int, int]:
    """FlopCounterMode's FLOPs of a training-mode forward pass on a batch and of its backward
    pass (ones as the outputs' gradients: the model's ops alone)."""
    counter = FlopCounterMode(
        display=False, custom_mapping={aten.convolution_backward: corrected_conv_backward}
    )
    with counter:
        outs = output_tensors(model.train()(torch.empty(batch_size, *shape, device="meta")))
        forward = counter.get_total_flops()
        torch.autograd.backward(outs, [torch.ones_like(out) for out in outs])
    model.zero_grad(set_to_none=True)
    return forward, counter.get_total_flops() - forward


def profile_job(
    name: str, config: dict[str, Any], checks: Collection[str] = ()
) -> tuple[dict, list[dict], list[dict]]:
    """One registry network's profile as plain values: the summary row, layer rows and op rows.

    Self-contained (it takes a name and a config, returns JSON-ready data), so it can run in
    any worker process.
    """
    torch.set_num_threads(1)  # one job per core
    result = profile(
        name,
        image_size=config["image_size"],
        batch_size=config["batch_size"],
        in_channels=config["in_channels"],
        checks=checks,
    )
    summary, layers, ops = (json.loads(frame.to_json(orient="records")) for frame in result)
    return summary[0], layers, ops


def step_flops_per_image(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """FLOPs per image of an inference step (forward in eval mode) and of a training step
    (forward and backward in training mode), counted on ``model``, a meta-device module."""
    batch = torch.empty(2, *input_shape, device="meta")  # training batch norm needs two
    with ShapeCache():
        with OpCounter(model.eval()) as infer, torch.no_grad():
            model(batch)
        with OpCounter(model.train()) as train:
            outs = output_tensors(model(batch))
            torch.autograd.backward(outs, [torch.ones_like(out) for out in outs])
    model.zero_grad(set_to_none=True)
    return {
        "infer": sum(flops for _, flops, _ in infer.counts.values()) // 2,
        "train": sum(flops for _, flops, _ in train.counts.values()) // 2,
    }


def _op_table(counter: OpCounter) -> pd.DataFrame:
    rows = [
        {
            "layer": layer,
            "op": str(op),
            "phase": phase,
            "category": category(op),
            "calls": calls,
            "flops": flops,
            "macs": flops / 2,
            "bytes": moved,
        }
        for (layer, op, phase), (calls, flops, moved) in counter.counts.items()
    ]
    return pd.DataFrame(rows)


def _layer_table(counter: OpCounter, model: nn.Module) -> pd.DataFrame:
    modules = dict(model.named_modules())
    totals: dict[str, list[int]] = {}  # layer -> forward FLOPs, backward FLOPs, bytes forward
    for (layer, _, phase), (_, flops, moved) in counter.counts.items():
        total = totals.setdefault(layer, [0, 0, 0])
        total[phase == "backward"] += flops
        total[2] += moved if phase == "forward" else 0
    rows = []
    for name in [n for n in modules if n in totals]:
        fwd, bwd, moved = totals[name]
        rows.append(
            {
                "layer": name or "(model)",
                "type": type(modules[name]).__name__,
                "output_shape": "x".join(map(str, counter.output_shapes.get(name, ())[1:])),
                "params": sum(p.numel() for p in modules[name].parameters(recurse=False)),
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
        for kind in ("conv", "linear", "other"):
            flops = rows.loc[rows["category"] == kind, "flops"].sum()
            split[f"{short}_{kind}_macs_per_image"] = flops / 2 / batch_size
    return split


# Optimizer state per trainable parameter, in parameter copies.
OPTIMIZER_STATE = {"sgd": 0, "sgd_momentum": 1, "adam": 2}


def _memory(
    model: nn.Module, shape: tuple[int, ...], batch_size: int, one: StepBytes, batch: StepBytes
) -> dict:
    """Memory of a training step and an inference pass, estimated as a sum of counted parts and
    tracked through the step on the meta device (``one``: at batch 1; ``batch``: at
    ``batch_size``), with the working memory of convolutions on this CPU
    (``bench.flops.workspace``)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    image = 4 * math.prod(shape)  # float32
    memory: dict[str, Any] = {
        "conv_work_block": block(),
        "weight_bytes": weights,
        "grad_bytes": grads,
        "input_bytes": batch_size * image,
        "saved_activation_bytes_batch1": one.saved,
        "saved_activation_bytes": batch.saved,
        "infer_peak_bytes_batch1": one.infer_activations,
        "infer_peak_bytes": batch.infer_activations,
    }
    sgd = _train_estimate(batch.layers, weights, batch_size * image, batch_size)
    for optimizer, copies in OPTIMIZER_STATE.items():
        memory[f"train_bytes_est_{optimizer}"] = sgd + copies * grads
    memory["train_bytes_est_sgd_batch1"] = (
        None if one.layers is None else _train_estimate(one.layers, weights, image, 1)
    )
    memory["train_bytes_tracked_sgd"] = batch.train
    memory["train_bytes_tracked_sgd_batch1"] = one.train
    memory["infer_bytes_est"] = weights + batch.infer_activations + batch_size * image
    memory["infer_bytes_est_batch1"] = weights + one.infer_activations + image
    memory["infer_bytes_tracked"] = batch.infer
    memory["infer_bytes_tracked_batch1"] = one.infer
    return memory


def _train_estimate(layers: list[LayerBytes], weights: int, images: int, batch: int) -> int:
    """Peak bytes of a plain SGD step, from counted parts: the weights, the input and its int64
    labels, and at the fullest moment either the end of the forward pass (every saved
    activation and the logits), or module i at work in the forward pass (the activations saved
    so far, its output and its working memory), or, going backward through module i, the
    activations modules 0..i still hold, the weight gradients of modules i and after, the
    gradients module i makes (of its output and its input, the first module's input, the
    images, getting none, and, for a module that saved more than its input, one built of several
    ops, of everything it saved) and its working memory."""
    fixed = weights + images + 8 * batch
    saved = [layer.saved for layer in layers]
    grads = [layer.grads for layer in layers]
    outputs = [layer.output for layer in layers]
    inputs = [images, *outputs[:-1]]
    peak = sum(saved) + outputs[-1]
    for i, layer in enumerate(layers):
        held = sum(saved[: i + 1])
        peak = max(peak, held + outputs[i] + layer.work.forward)
        inner = saved[i] if saved[i] > inputs[i] else 0
        gradients = outputs[i] + (inputs[i] if i else 0) + inner  # the images get none
        peak = max(peak, held + sum(grads[i:]) + gradients + layer.work.backward)
    return fixed + peak
