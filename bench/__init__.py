"""Measurement, training and reporting for the networks in ``archs``."""
