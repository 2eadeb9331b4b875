"""Chapter 7 from scratch: cross-correlation, channels, 1x1 convolution, pooling, batch norm.

D2L sections 7.2 (corr2d, Conv2D), 7.4 (multiple input and output channels, 1x1 as matmul),
7.5 (pooling) and 8.5 (batch normalization). Written for reading, not speed: the loops are the
definitions, and the tests hold each one to torch's built-in operator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def corr2d(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """2-D cross-correlation of one (h, w) input with one (kh, kw) kernel, no padding, stride 1."""
    kh, kw = k.shape
    out = x.new_zeros(x.shape[0] - kh + 1, x.shape[1] - kw + 1)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (x[i : i + kh, j : j + kw] * k).sum()
    return out


def corr2d_unfold(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """corr2d as one matrix product: every (kh, kw) window unfolded into a column (im2col)."""
    kh, kw = k.shape
    columns = F.unfold(x[None, None], (kh, kw))[0]  # (kh * kw, number of windows)
    return (k.reshape(1, -1) @ columns).reshape(x.shape[0] - kh + 1, x.shape[1] - kw + 1)


def corr2d_multi_in(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Cross-correlation of a (c_i, h, w) input with a (c_i, kh, kw) kernel: sum over channels."""
    return sum(corr2d(x_c, k_c) for x_c, k_c in zip(x, k, strict=True))


def corr2d_multi_in_out(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Cross-correlation with a (c_o, c_i, kh, kw) kernel: one output channel per kernel."""
    return torch.stack([corr2d_multi_in(x, k_o) for k_o in k])


def corr2d_1x1(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """A (c_o, c_i, 1, 1) convolution as one matrix product: a linear layer at every pixel."""
    c_i, h, w = x.shape
    return (k.reshape(k.shape[0], c_i) @ x.reshape(c_i, h * w)).reshape(-1, h, w)


def pool2d(x: torch.Tensor, pool_size: tuple[int, int], mode: str = "max") -> torch.Tensor:
    """Max or average pooling of one (h, w) input, no padding, stride 1."""
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    ph, pw = pool_size
    out = x.new_zeros(x.shape[0] - ph + 1, x.shape[1] - pw + 1)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            window = x[i : i + ph, j : j + pw]
            out[i, j] = window.max() if mode == "max" else window.mean()
    return out


class Conv2D(nn.Module):
    """A single-channel convolutional layer: corr2d with a learned kernel plus a scalar bias."""

    def __init__(self, kernel_size: tuple[int, int]):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(kernel_size))
        self.bias = nn.Parameter(torch.empty(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform [0, 1) kernel and zero bias, as in the book."""
        nn.init.uniform_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return corr2d(x, self.weight) + self.bias


class BatchNorm(nn.Module):
    """Batch normalization from scratch, for fully connected (N, C) or conv (N, C, H, W) inputs.

    Training mode normalizes with the batch's statistics and updates the moving averages;
    eval mode normalizes with the moving averages. Unlike nn.BatchNorm, the moving variance is
    the biased batch variance, as in the book.
    """

    def __init__(self, num_features: int, num_dims: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if num_dims not in (2, 4):
            raise ValueError(f"num_dims must be 2 (fully connected) or 4 (conv), got {num_dims}")
        shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
        self.eps, self.momentum = eps, momentum
        self.gamma = nn.Parameter(torch.empty(shape))
        self.beta = nn.Parameter(torch.empty(shape))
        self.register_buffer("moving_mean", torch.empty(shape))
        self.register_buffer("moving_var", torch.empty(shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Scale 1, shift 0; moving mean 0, moving variance 1."""
        for tensor, value in (
            (self.gamma, 1),
            (self.beta, 0),
            (self.moving_mean, 0),
            (self.moving_var, 1),
        ):
            nn.init.constant_(tensor, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.gamma.dim():
            raise ValueError(f"expected a {self.gamma.dim()}-D input, got shape {tuple(x.shape)}")
        if self.training:
            dims = (0,) if x.dim() == 2 else (0, 2, 3)
            mean = x.mean(dim=dims, keepdim=True)
            var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
            with torch.no_grad():
                self.moving_mean.lerp_(mean, self.momentum)
                self.moving_var.lerp_(var, self.momentum)
        else:
            mean, var = self.moving_mean, self.moving_var
        return self.gamma * (x - mean) / torch.sqrt(var + self.eps) + self.beta
