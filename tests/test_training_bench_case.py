"""The fine-tuning throughput benchmark case: registered, losses checked, tokens in the shape column."""

from apt_fast.benchmarking import Targets, run_case, select_cases
from apt_fast.benchmarking.cases.training import fine_tune_case
from apt_fast.train.throughput import FineTuneShape

TINY = dict(vocab_size=50, d_model=16, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, d_ff=32,
            dropout=0.0, use_dbc_dac=False, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def test_case_is_registered_on_the_benchmark_configuration():
    (case,) = select_cases(name_filter="training")
    assert case.name == "fine_tune_throughput[B=4,T=S=128,D=256,2+2]" and case.targets == Targets(min_speedup=4)


def test_tiny_case_runs_through_the_harness():
    result = run_case(fine_tune_case(FineTuneShape(TINY, batch=2, length=8, steps=3)), quick=True, repeats=1)
    assert result.ratio > 0 and len(result.candidate.times) == 1
    assert result.shape.endswith("2 steps = 64 tokens")  # --quick runs 2 steps a call
