"""archs.meta.ShapeCache: the meta device's answers, unchanged, without running its kernels twice."""

import itertools
from contextlib import nullcontext

import pytest
import torch

import archs
from archs.meta import RULES, ShapeCache
from bench.flops.counting import OpCounter, output_tensors, read_step

aten = torch.ops.aten


def layouts(out):
    return [None if t is None else (t.dtype, t.shape, t.stride()) for t in output_tensors(out)]


def batch_norm_cases():
    for dtype, channels_last, training in itertools.product(
        (torch.float32, torch.bfloat16), (False, True), (True, False)
    ):
        x = torch.empty(4, 3, 5, 5, device="meta", dtype=dtype)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        w = torch.empty(3, device="meta", dtype=dtype)
        yield aten.native_batch_norm.default, (x, w, w, w, w, training, 0.1, 1e-5)
        _, mean, invstd = aten.native_batch_norm.default(x, w, w, w, w, training, 0.1, 1e-5)
        for mask in ([True, True, True], [True, False, False], [False, True, True]):
            args = (torch.empty_like(x), x, w, w, w, mean, invstd, training, 1e-5, mask)
            yield aten.native_batch_norm_backward.default, args
        yield aten.relu.default, (x,)
        yield aten.threshold_backward.default, (torch.empty_like(x), x, 0)


@pytest.mark.parametrize("func,args", list(batch_norm_cases()))
def test_each_rule_gives_the_layouts_of_the_meta_kernel(func, args):
    assert func in RULES
    assert layouts(RULES[func](*args)) == layouts(func(*args))


def count(name: str, size: int, cached: bool) -> tuple:
    """Every figure a profile reads from the meta device, with or without the cache."""
    model = archs.build(name, image_size=size, device="meta")
    x = torch.empty(2, archs.spec(name).in_channels, size, size, device="meta")
    with ShapeCache() if cached else nullcontext():
        steps = [read_step(model, x) for _ in range(2)]  # the second one from the cache
        with OpCounter(model.train()) as counter:
            outs = output_tensors(model(x))
            torch.autograd.backward(outs, [torch.ones_like(out) for out in outs])
    return steps, dict(counter.counts), counter.output_shapes


@pytest.mark.parametrize(
    "name,size",
    [
        ("bn_lenet", 28),  # batch norm, training and inference
        ("densenet", 32),  # concatenations
        ("tv:mobilenet_v3_small", 64),  # hardswish in place, squeeze-excitation products
        ("tv:vit_b_16", 224),  # _unsafe_view returns its input's storage, unannotated
    ],
)
def test_the_cache_changes_no_figure(name, size):
    assert count(name, size, cached=True) == count(name, size, cached=False)


def test_a_view_the_schema_does_not_announce_keeps_its_input_storage():
    x = torch.empty(2, 3, 4, device="meta")
    with ShapeCache():
        views = [aten._unsafe_view.default(x, [6, 4]) for _ in range(2)]
    assert all(v.untyped_storage()._cdata == x.untyped_storage()._cdata for v in views)


def test_an_op_on_real_tensors_runs_as_it_would():
    x = torch.tensor([-1.0, 2.0])
    with ShapeCache():
        y = torch.relu(x)
        y.add_(1)
        filled = torch.zeros(1000).uniform_(2, 3)  # an initializer's fill writes a real tensor
    assert y.tolist() == [1.0, 3.0]
    assert filled.min() >= 2 and filled.max() <= 3 and filled.std() > 0
