"""Shapes on the meta device, fast. Many of its kernels are Python (batch norm's is its whole
decomposition, an elementwise op's a reference implementation), so a network's meta forward
pass can take seconds; ``ShapeCache`` makes it take a fraction of that, to the same outputs.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_unflatten

aten = torch.ops.aten


def _batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps):
    # the normalized input in its layout, and the per-channel mean and inverse deviation, in
    # float32 for a half-precision input (training or not: the meta kernel's outputs)
    stats = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    channels = x.shape[1]
    return (
        torch.empty_like(x),
        x.new_empty(channels, dtype=stats),
        x.new_empty(channels, dtype=stats),
    )


def _batch_norm_backward(grad, x, weight, mean, var, save_mean, save_invstd, train, eps, mask):
    # the input's gradient always (as the meta kernel does), the affine ones where asked
    dtype = x.dtype if weight is None else weight.dtype
    channels = x.shape[1]
    return (
        torch.empty_like(x),
        x.new_empty(channels, dtype=dtype) if mask[1] else None,
        x.new_empty(channels, dtype=dtype) if mask[2] else None,
    )


def _same_layout(*tensors: torch.Tensor) -> bool:
    first = tensors[0]
    dense = first.is_contiguous() or first.is_contiguous(memory_format=torch.channels_last)
    return dense and all(
        (t.shape, t.stride(), t.dtype) == (first.shape, first.stride(), first.dtype)
        for t in tensors
    )


# elementwise in-place ops that torch does not tag pointwise, the random fills of weight
# initializers among them (on the meta device, a Python decomposition that writes nothing)
IN_PLACE = {aten.hardswish_.default, aten.normal_.default, aten.uniform_.default}

# Layout rules for the ops whose Python meta kernels cost most in the chapters' networks; a
# rule answers None where it does not apply, and the meta kernel runs.
RULES: dict[Any, Callable[..., Any]] = {
    aten.native_batch_norm.default: _batch_norm,
    aten.native_batch_norm_backward.default: _batch_norm_backward,
    aten.relu.default: lambda x: torch.empty_like(x) if _same_layout(x) else None,
    aten.threshold_backward.default: lambda grad, x, threshold: (
        torch.empty_like(grad) if _same_layout(grad, x) else None
    ),
}

# (op, its inputs' layouts, its other arguments) -> its outputs' layouts, for the process
_LAYOUTS: dict[tuple, tuple[list, Any]] = {}
_KINDS: dict[Any, str] = {}  # op -> "pure", "in place" or "other"


def _kind(func: Any) -> str:
    """What ``func`` is to the cache: "pure" (it neither mutates nor returns a view), "in
    place" (elementwise, it writes its result into its first argument and returns it) or
    "other"."""
    schema = func._schema
    aliases = [a.alias_info for a in [*schema.arguments, *schema.returns]]
    if not schema.is_mutable and not any(aliases):
        return "pure"
    returned = schema.returns[0].alias_info if len(schema.returns) == 1 else None
    first = schema.arguments[0].alias_info if schema.arguments else None
    elementwise = torch.Tag.pointwise in func.tags or func in IN_PLACE
    writes_first = (
        returned is not None
        and first is not None
        and returned.is_write
        and returned.before_set == first.before_set
    )
    return "in place" if elementwise and writes_first else "other"


_NESTED = (torch.Tensor, list, tuple, dict)  # what _layout looks into


def _layout(value: Any, tensors: list[torch.Tensor]) -> Any:
    """``value`` with each tensor in it replaced by its layout, the tensors added to
    ``tensors``."""
    if isinstance(value, torch.Tensor):
        tensors.append(value)
        return (value.dtype, tuple(value.shape), value.stride())
    if isinstance(value, (list, tuple)):
        return tuple(_layout(v, tensors) if isinstance(v, _NESTED) else v for v in value)
    if isinstance(value, dict):
        return tuple((k, _layout(v, tensors)) for k, v in value.items())
    return value


def _empty(dtype: torch.dtype, shape: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    return torch.empty_strided(shape, stride, dtype=dtype, device="meta")


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def _fresh(t: torch.Tensor) -> bool:
    """Whether ``t`` is a meta tensor alone on a storage of the size its layout needs."""
    made = _empty(t.dtype, tuple(t.shape), t.stride())
    return (
        t.device.type == "meta"
        and t.storage_offset() == 0
        and t.untyped_storage().nbytes() == made.untyped_storage().nbytes()
    )


class ShapeCache(TorchDispatchMode):
    """Ops on the meta device answered from a cache of their outputs' layouts.

    On the meta device an op's outputs depend only on its inputs' shapes, strides and dtypes
    and its other arguments. So an op on meta tensors that neither mutates nor returns a view
    runs once per distinct call, and a later call gets empty tensors of the same layouts;
    ``RULES`` give the layouts of a few ops without running their kernels; an elementwise op
    in place returns its first argument, as its kernel would, without running it. Outputs
    that share a storage, reuse an input's or are larger than their layout needs are not
    cached. Enter it before modes that watch ops (``bench.flops.counting``), so that they see
    every op.

    While it is active the cyclic garbage collector waits: a pass makes many short-lived
    objects, which reference counting frees, and each collection they trigger would scan every
    object of the process for cycles.
    """

    def __enter__(self) -> ShapeCache:
        self.collecting = gc.isenabled()
        gc.disable()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        if self.collecting:
            gc.enable()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = _KINDS.get(func) or _KINDS.setdefault(func, _kind(func))
        if kind == "other":
            return func(*args, **kwargs)
        inputs: list[torch.Tensor] = []
        key = (func, _layout(args, inputs), _layout(kwargs, inputs))
        if any(t.device.type != "meta" for t in inputs):
            return func(*args, **kwargs)
        if kind == "in place":  # a meta tensor holds no values to write
            return args[0]
        if key in _LAYOUTS:
            leaves, spec = _LAYOUTS[key]
            made = [None if leaf is None else _empty(*leaf) for leaf in leaves]
            return made[0] if spec is None else tree_unflatten(made, spec)
        rule = RULES.get(func)
        out = rule(*args, **kwargs) if rule else None
        if out is None:
            out = func(*args, **kwargs)
        leaves, spec = tree_flatten(out)
        tensors = [t for t in leaves if t is not None]
        if all(isinstance(t, torch.Tensor) for t in tensors):
            made = {_storage(t) for t in tensors}
            reused = made & {_storage(t) for t in inputs}
            if len(made) == len(tensors) and not reused and all(map(_fresh, tensors)):
                layouts = [None if t is None else _layout(t, []) for t in leaves]
                _LAYOUTS[key] = (layouts, None if isinstance(out, torch.Tensor) else spec)
        return out
