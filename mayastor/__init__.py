"""Kernel-native reimplementation of the OpenEBS Mayastor io-engine data plane."""

__version__ = "0.1.0"
