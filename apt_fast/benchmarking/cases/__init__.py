"""Benchmark case definitions, one module per op family."""
