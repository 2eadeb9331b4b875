"""Counting what a network costs: the op handler table (``handlers``), the counters that run it
on the meta device (``counting``) and the profile built from them (``profile``)."""

from bench.flops.profile import Profile, profile, profile_job, step_flops_per_image

__all__ = ["Profile", "profile", "profile_job", "step_flops_per_image"]
