"""Chapter 7's primitives timed against each other (exercises 7.2, 7.4.5, 7.4.7, 7.5.3), and one
forward pass of each small network. Run with ``nox -s microbench``; each check of equal outputs
runs before the timing."""

import pytest
import torch
import torch.nn.functional as F

import archs
from archs import ops

torch.manual_seed(0)


@pytest.mark.parametrize("size", [8, 16, 32, 64])
@pytest.mark.parametrize("method", ["loop", "unfold", "conv2d"])
def test_corr2d(benchmark, method, size):
    """7.2: the loop definition of cross-correlation against im2col and torch's conv2d."""
    benchmark.group = "corr2d"
    x, k = torch.randn(size, size), torch.randn(3, 3)
    run = {
        "loop": lambda: ops.corr2d(x, k),
        "unfold": lambda: ops.corr2d_unfold(x, k),
        "conv2d": lambda: F.conv2d(x[None, None], k[None, None])[0, 0],
    }[method]
    torch.testing.assert_close(run(), ops.corr2d(x, k), rtol=1e-4, atol=1e-4)
    benchmark.extra_info.update(method=method, size=size)
    benchmark(run)


@pytest.mark.parametrize("method", ["conv2d", "matmul"])
def test_1x1_conv(benchmark, method):
    """7.4.5: a 1x1 convolution as conv2d and as one matrix product, 64 -> 64 channels, 56x56."""
    benchmark.group = "conv1x1"
    x, k = torch.randn(64, 56, 56), torch.randn(64, 64, 1, 1)
    run = {"conv2d": lambda: F.conv2d(x[None], k)[0], "matmul": lambda: ops.corr2d_1x1(x, k)}[
        method
    ]
    torch.testing.assert_close(run(), F.conv2d(x[None], k)[0], rtol=1e-4, atol=1e-4)
    benchmark.extra_info.update(method=method)
    benchmark(run)


@pytest.mark.parametrize("groups", [1, 4, 32])
def test_grouped_conv(benchmark, groups):
    """7.4.7: 128 -> 128 channels, 3x3, 28x28, batch 8; MACs fall by the number of groups."""
    benchmark.group = "grouped_conv"
    x = torch.randn(8, 128, 28, 28)
    w = torch.randn(128, 128 // groups, 3, 3)
    macs = 8 * 128 * (128 // groups) * 9 * 28 * 28
    benchmark.extra_info.update(groups=groups, macs=macs)
    benchmark(lambda: F.conv2d(x, w, padding=1, groups=groups))


@pytest.mark.parametrize("method", ["avg_pool2d", "conv2d"])
def test_average_pooling(benchmark, method):
    """7.5.3: 2x2 average pooling, and the same as a depthwise conv with a constant kernel."""
    benchmark.group = "avg_pool"
    x = torch.randn(8, 64, 56, 56)
    kernel = torch.full((64, 1, 2, 2), 0.25)
    run = {
        "avg_pool2d": lambda: F.avg_pool2d(x, 2),
        "conv2d": lambda: F.conv2d(x, kernel, stride=2, groups=64),
    }[method]
    torch.testing.assert_close(run(), F.avg_pool2d(x, 2))
    benchmark.extra_info.update(method=method)
    benchmark(run)


SMALL = [name for name in archs.list_models() if archs.spec(name).image_size <= 96]


@pytest.mark.parametrize("name", SMALL)
def test_forward(benchmark, name):
    """One inference forward pass, batch 8, at the network's book input size."""
    benchmark.group = "forward"
    size = archs.spec(name).image_size
    model = archs.build(name).eval()
    x = torch.randn(8, 1, size, size)
    benchmark.extra_info.update(model=name, batch_size=8, image_size=size)
    with torch.inference_mode():
        benchmark(model, x)
