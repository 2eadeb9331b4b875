"""Measurement, training and reporting for the networks in ``archs``.

>>> import bench
>>> summary, layers, ops = bench.profile("resnet18", batch_size=128)
>>> table = bench.speed("lenet", batch_sizes=(1, 32), modes=("infer",))

``profile`` and ``speed`` are imported on first use, so that importing the package alone (as
``python -m bench`` does before it starts its children) does not import torch.
"""

from typing import Any

__all__ = ["Profile", "profile", "speed"]


def __getattr__(name: str) -> Any:
    if name in ("Profile", "profile"):
        from bench import flops

        return getattr(flops, name)
    if name == "speed":
        from bench.timing import speed

        return speed
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
