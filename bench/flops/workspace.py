"""The working memory a convolution holds on the CPU while it runs, beyond its arguments and its
result: what a count of tensors cannot see, and what the allocator's reading of a real step
(``bench.allocator``) does.

PyTorch picks a kernel for each call (``torch._C._select_conv_backend``, asked here with
zero-stride CPU tensors of the call's shapes, so nothing is allocated):

- oneDNN computes in a blocked layout whose channels are padded to the vector width (8 floats
  with AVX2, 16 with AVX-512): forward, it holds a blocked copy of the larger of its input (an
  input of fewer channels than a block is read as it lies) and its output, and a reordered copy
  of the weight; backward, blocked copies of the output's gradient and of the input, or, when
  larger, of the weight (the data and weight gradients are computed one after the other);
- the native kernel (``slow_conv2d``) unfolds its input into columns (im2col), forward and
  backward, unless the kernel is 1x1 with stride 1 and no padding;
- any other kernel: nothing counted.

These rules were read off torch.profiler's record of single convolutions; ``bench memory``
checks them against the allocator through whole steps of every network on its page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import Any, NamedTuple

import torch

from bench.device import cpu_flags, widest_vectors
from bench.peaks import FP32_LANES

Backend = torch._C._ConvBackend
# the threads a real step runs on, which the kernel's choice depends on (a profile counts on
# one thread: bench.flops.profile.profile_job)
STEP_THREADS = torch.get_num_threads()


@cache
def block() -> int | None:
    """Channels per oneDNN block on this CPU: its fp32 vector lanes; None off x86 (no rule)."""
    return FP32_LANES.get(widest_vectors(cpu_flags()) or "")


def _blocked(shape: Sequence[int], itemsize: int, lanes: int) -> int:
    """Bytes of a tensor of ``shape`` in oneDNN's blocked layout: channels padded to a block."""
    return itemsize * shape[0] * math.ceil(shape[1] / lanes) * lanes * math.prod(shape[2:])


@cache
def _backend(dtype: torch.dtype, x: tuple, w: tuple, conv: tuple, threads: int) -> Backend:
    """The CPU kernel PyTorch picks for a convolution of these shapes and ``conv`` (stride,
    padding, dilation, groups) on ``threads`` threads, asked with zero-stride tensors."""
    stride, padding, dilation, groups = conv
    plain = [torch.empty(1, dtype=dtype).expand(shape) for shape in (x, w)]
    transposed, output_padding = False, [0] * len(stride)
    counting = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return torch._C._select_conv_backend(
            *plain, None, stride, padding, dilation, transposed, output_padding, groups
        )
    finally:
        torch.set_num_threads(counting)


class Work(NamedTuple):
    """The working bytes of one convolution call, and of its backward."""

    forward: int
    backward: int


NO_WORK = Work(0, 0)


def conv_work(a: dict[str, Any], out_shape: Sequence[int]) -> Work:
    """The working bytes of a convolution (``a``: its arguments by schema name) whose output,
    or output gradient, has ``out_shape``, forward and backward."""
    lanes = block()
    x, w = a["input"], a["weight"]
    if lanes is None or a["transposed"] or x.dim() != 4:
        return NO_WORK
    stride, padding, dilation = (tuple(a[k]) for k in ("stride", "padding", "dilation"))
    conv = stride, padding, dilation, a["groups"]
    backend = _backend(x.dtype, tuple(x.shape), tuple(w.shape), conv, STEP_THREADS)
    size = x.element_size()
    if backend == Backend.Mkldnn:
        weight = w.numel() * w.element_size()
        output, source = _blocked(out_shape, size, lanes), _blocked(x.shape, size, lanes)
        forward = max(output, source if x.shape[1] >= lanes else 0) + weight
        return Work(forward, max(output + source, weight))
    if backend == Backend.Slow2d:
        if tuple(w.shape[2:]) == (1, 1) and set(stride) == {1} and set(padding) == {0}:
            return NO_WORK
        columns = size * x.shape[0] * math.prod(w.shape[1:]) * math.prod(out_shape[2:])
        return Work(columns, columns)
    return NO_WORK
