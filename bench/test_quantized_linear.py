"""Quantized GEMM: int8 / FP8 GEMV against torch fp32, bf16 and _weight_int8pack_mm; W8A8 GEMM against torchao's
recipe and fp32; FP8 GEMM against bf16 and _scaled_mm; the quantized APT model's decoding against fp32 (targets in
apt_fast/benchmarking/cases/quantized_linear.py and quantized_model.py)."""

import pytest

from apt_fast.benchmarking import select_cases

CASES = select_cases(name_filter="quantized_linear")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_quantized_linear(compare, case):
    compare(case)  # fails when the outputs disagree; the targets' verdicts go to extra_info
