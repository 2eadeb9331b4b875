"""Measurement, training and reporting for the networks in ``archs``.

>>> import bench
>>> summary, layers, ops = bench.profile("resnet18", batch_size=128)
>>> table = bench.speed("lenet", batch_sizes=(1, 32), modes=("infer",))
"""

from bench.flops import Profile, profile
from bench.timing import speed

__all__ = ["Profile", "profile", "speed"]
