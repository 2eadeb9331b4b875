"""The op handler table: FLOPs of one call of each aten op, from its arguments and output
(tensors with shapes, no values).

A handler takes the op's arguments by name, as the op's schema names them (``a["input"]``,
``a["transposed"]``), and its output; ``bind`` maps a call's positional and keyword arguments
to those names. FLOPs = 2 x MACs, so an op doing one arithmetic operation per element counts
1 FLOP. Ops that do no arithmetic (views, allocation, copies) are in ``FREE``; any op in
neither table is reported as not counted, never silently as zero. Bias additions of conv and
linear layers, and conv bias gradients, are not counted (as in fvcore and torch's
FlopCounterMode). ``profile(..., handlers={op: handler})`` adds or replaces rules, as fvcore's
``set_op_handle`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

aten = torch.ops.aten

Handler = Callable[[Mapping[str, Any], Any], int]  # (arguments by name, output) -> FLOPs


def bind(func: Any, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a call of ``func`` (an aten overload) by their schema names, defaults
    filled in."""
    bound = {}
    for i, argument in enumerate(func._schema.arguments):
        if i < len(args):
            bound[argument.name] = args[i]
        elif argument.name in kwargs:
            bound[argument.name] = kwargs[argument.name]
        elif argument.has_default_value():
            bound[argument.name] = argument.default_value
    return bound


def _conv(a: Mapping[str, Any], out: Any) -> int:
    # Each output (input, if transposed) point multiplies one weight slice of weight[0].numel().
    return 2 * (a["input"] if a["transposed"] else out).numel() * a["weight"][0].numel()


def _conv_backward(a: Mapping[str, Any], out: Any) -> int:
    points = a["input"] if a["transposed"] else a["grad_output"]
    forward = 2 * points.numel() * a["weight"][0].numel()
    mask = a["output_mask"]
    return forward * (int(mask[0]) + int(mask[1]))  # input gradient, weight gradient


def _matmul(first: str, second: str) -> Handler:
    def handler(a: Mapping[str, Any], out: Any) -> int:
        return 2 * out.numel() * a[first].shape[-1]

    return handler


def _batch_norm(a: Mapping[str, Any], out: Any) -> int:
    # training: mean (1 add), variance (subtract, multiply-add: 3), normalize and scale
    # (subtract, multiply-add: 3) per element; inference folds into one multiply-add.
    return (7 if a.get("training", False) else 2) * a["input"].numel()


def _batch_norm_backward(a: Mapping[str, Any], out: Any) -> int:
    # two reductions (sum of dy: 1, of dy * xhat: 2), recomputing xhat (2), combining (3)
    return 8 * a["input"].numel()


def _per_output(flops: int) -> Handler:
    def handler(a: Mapping[str, Any], out: Any) -> int:
        first = out[0] if isinstance(out, tuple) else out
        return flops * first.numel()

    return handler


def _per_element_of(argument: str) -> Handler:
    def handler(a: Mapping[str, Any], out: Any) -> int:
        return a[argument].numel()

    return handler


def _window(kernel: Any) -> int:
    kernel = [kernel] * 2 if isinstance(kernel, int) or len(kernel) == 1 else kernel
    return math.prod(kernel)


def _max_pool(a: Mapping[str, Any], out: Any) -> int:
    return (_window(a["kernel_size"]) - 1) * out[0].numel()  # comparisons per output


def _avg_pool(a: Mapping[str, Any], out: Any) -> int:
    return _window(a["kernel_size"]) * out.numel()  # additions and one scaling per output


def _avg_pool_backward(a: Mapping[str, Any], out: Any) -> int:
    return _window(a["kernel_size"]) * a["grad_output"].numel()


FLOPS: dict[Any, Handler] = {
    aten.convolution: _conv,
    aten.convolution_backward: _conv_backward,
    aten.mm: _matmul("self", "mat2"),
    aten.bmm: _matmul("self", "mat2"),
    aten.addmm: _matmul("mat1", "mat2"),
    aten.native_batch_norm: _batch_norm,
    aten._native_batch_norm_legit: _batch_norm,
    aten._native_batch_norm_legit_no_training: _batch_norm,
    aten.cudnn_batch_norm: _batch_norm,
    aten.native_batch_norm_backward: _batch_norm_backward,
    aten.cudnn_batch_norm_backward: _batch_norm_backward,
    aten.relu: _per_output(1),
    aten.relu_: _per_output(1),
    aten.threshold_backward: _per_output(1),
    aten.sigmoid: _per_output(4),  # negate, exponentiate, add, divide
    aten.sigmoid_backward: _per_output(3),  # dy * y * (1 - y)
    aten.max_pool2d_with_indices: _max_pool,
    aten.max_pool2d_with_indices_backward: _per_element_of("grad_output"),  # a scatter-add each
    aten.avg_pool2d: _avg_pool,
    aten.avg_pool2d_backward: _avg_pool_backward,
    aten.mean: _per_element_of("self"),
    aten.sum: _per_element_of("self"),
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
FREE = frozenset(
    {
        aten.detach,
        aten.view,
        aten._unsafe_view,
        aten.reshape,
        aten.t,
        aten.transpose,
        aten.permute,
        aten.expand,
        aten.slice,
        aten.select,
        aten.squeeze,
        aten.unsqueeze,
        aten.as_strided,
        aten.alias,
        aten.split,
        aten.split_with_sizes,
        aten.empty,
        aten.empty_like,
        aten.empty_strided,
        aten.zeros,
        aten.zeros_like,
        aten.ones,
        aten.ones_like,
        aten.full,
        aten.full_like,
        aten.new_empty,
        aten.new_zeros,
        aten.new_ones,
        aten.fill_,
        aten.zero_,
        aten.copy_,
        aten.clone,
        aten._to_copy,
        aten.lift_fresh,
        aten.scalar_tensor,
    }
)


def category(op: Any) -> str:
    """conv, linear (matrix products) or other: what the cross-checks count and tables split."""
    return CATEGORY.get(op, "other")
