"""Chapter 7 from scratch (archs.ops) against the seeds' worked examples and torch's operators."""

import pytest
import torch
import torch.nn.functional as F

from archs import ops

X3 = torch.arange(9.0).reshape(3, 3)
K2 = torch.tensor([[0.0, 1.0], [2.0, 3.0]])


def test_corr2d_worked_example():
    assert torch.equal(ops.corr2d(X3, K2), torch.tensor([[19.0, 25.0], [37.0, 43.0]]))


def test_corr2d_unfold_matches_the_loop():
    torch.manual_seed(0)
    x, k = torch.randn(9, 7), torch.randn(3, 2)
    torch.testing.assert_close(ops.corr2d_unfold(x, k), ops.corr2d(x, k))
    assert torch.equal(ops.corr2d_unfold(X3, K2), torch.tensor([[19.0, 25.0], [37.0, 43.0]]))


def test_corr2d_detects_vertical_edges_only():
    x = torch.ones(6, 8)
    x[:, 2:6] = 0
    edges = ops.corr2d(x, torch.tensor([[1.0, -1.0]]))
    assert torch.equal(edges, torch.tensor([[0.0, 1, 0, 0, 0, -1, 0]]).expand(6, 7))
    assert torch.equal(ops.corr2d(x.t(), torch.tensor([[1.0, -1.0]])), torch.zeros(8, 5))


def test_multi_channel_worked_examples():
    x = torch.stack([X3, X3 + 1])
    k = torch.stack([K2, K2 + 1])
    assert torch.equal(ops.corr2d_multi_in(x, k), torch.tensor([[56.0, 72.0], [104.0, 120.0]]))
    out = ops.corr2d_multi_in_out(x, torch.stack([k, k + 1, k + 2]))
    assert torch.equal(out[1], torch.tensor([[76.0, 100.0], [148.0, 172.0]]))
    assert torch.equal(out[2], torch.tensor([[96.0, 128.0], [192.0, 224.0]]))


@pytest.mark.parametrize("kernel", [(1, 1), (2, 3), (3, 3)])
def test_corr2d_multi_in_out_matches_conv2d(kernel):
    torch.manual_seed(0)
    x, k = torch.randn(3, 7, 6), torch.randn(4, 3, *kernel)
    expected = F.conv2d(x[None], k)[0]
    torch.testing.assert_close(ops.corr2d_multi_in_out(x, k), expected)


def test_1x1_as_matmul_matches_conv2d():
    torch.manual_seed(0)
    x, k = torch.randn(3, 5, 4), torch.randn(2, 3, 1, 1)
    torch.testing.assert_close(ops.corr2d_1x1(x, k), F.conv2d(x[None], k)[0])
    torch.testing.assert_close(ops.corr2d_1x1(x, k), ops.corr2d_multi_in_out(x, k))


def test_pool2d_worked_example_and_torch():
    assert torch.equal(ops.pool2d(X3, (2, 2)), torch.tensor([[4.0, 5.0], [7.0, 8.0]]))
    assert torch.equal(ops.pool2d(X3, (2, 2), "avg"), torch.tensor([[2.0, 3.0], [5.0, 6.0]]))
    torch.manual_seed(0)
    x = torch.randn(6, 5)
    torch.testing.assert_close(ops.pool2d(x, (3, 2)), F.max_pool2d(x[None], (3, 2), stride=1)[0])
    torch.testing.assert_close(
        ops.pool2d(x, (3, 2), "avg"), F.avg_pool2d(x[None], (3, 2), stride=1)[0]
    )
    with pytest.raises(ValueError, match="mode"):
        ops.pool2d(x, (2, 2), "median")


def test_conv2d_module_learns_the_edge_kernel():
    x = torch.ones(6, 8)
    x[:, 2:6] = 0
    y = ops.corr2d(x, torch.tensor([[1.0, -1.0]]))
    torch.manual_seed(0)
    layer = ops.Conv2D((1, 2))
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.01)  # 0.03 diverges with a bias
    for _ in range(200):
        optimizer.zero_grad()
        ((layer(x) - y) ** 2).sum().backward()
        optimizer.step()
    torch.testing.assert_close(
        layer.weight.detach(), torch.tensor([[1.0, -1.0]]), atol=1e-3, rtol=0
    )


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 6, 7)])
def test_batchnorm_matches_torch_in_train_and_eval(shape):
    torch.manual_seed(0)
    x = torch.randn(*shape) * 3 + 1
    ours = ops.BatchNorm(shape[1], num_dims=len(shape))
    with torch.no_grad():
        ours.gamma.uniform_(0.5, 2)
        ours.beta.normal_()
    gamma, beta = ours.gamma.detach().flatten(), ours.beta.detach().flatten()
    expected = F.batch_norm(x, None, None, gamma, beta, training=True)
    torch.testing.assert_close(ours(x), expected)

    dims = (0,) if len(shape) == 2 else (0, 2, 3)
    torch.testing.assert_close(ours.moving_mean.flatten(), 0.1 * x.mean(dims))
    torch.testing.assert_close(ours.moving_var.flatten(), 0.9 + 0.1 * x.var(dims, unbiased=False))

    ours.eval()
    mean, var = ours.moving_mean.flatten(), ours.moving_var.flatten()
    torch.testing.assert_close(ours(x), F.batch_norm(x, mean, var, gamma, beta, training=False))


def test_batchnorm_rejects_wrong_rank():
    with pytest.raises(ValueError, match="num_dims"):
        ops.BatchNorm(3, num_dims=3)
    with pytest.raises(ValueError, match="4-D input"):
        ops.BatchNorm(3, num_dims=4)(torch.randn(2, 3))
