"""Triton GPU kernels, installed as apt_fast.kernels (imported lazily: triton is optional)."""
