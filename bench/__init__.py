"""Measurement, training and reporting for the networks in ``archs``.

>>> import bench
>>> summary, layers, ops = bench.profile("resnet18", batch_size=128)
"""

from bench.complexity import Profile, profile

__all__ = ["Profile", "profile"]
