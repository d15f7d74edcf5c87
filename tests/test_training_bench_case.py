"""The training benchmark cases (training step with AdamW, fine-tuning throughput, fp32 and bf16): registered with
their targets, run through the harness on a tiny model with their outputs checked."""

from apt_fast.benchmarking import Targets, run_case, select_cases
from apt_fast.benchmarking.cases import training
from apt_fast.benchmarking.cases.training import fine_tune_case
from apt_fast.train.throughput import FineTuneShape

TINY = dict(vocab_size=50, d_model=16, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, d_ff=32,
            dropout=0.0, use_dbc_dac=False, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def test_cases_are_registered_on_the_benchmark_configuration():
    name = "fine_tune_throughput[B=4,T=S=128,D=256,2+2]"
    cases = {case.name: case for case in select_cases(name_filter="fine_tune_throughput")}
    assert set(cases) == {name, name[:-1] + ",bf16]"}
    assert cases[name].targets == Targets(min_speedup=4)
    bf16 = cases[name[:-1] + ",bf16]"]
    amx = training.amx_bf16()
    assert bf16.targets == Targets(min_speedup=2 if amx else 1.4)
    assert ("AMX-BF16 detected" if amx else "no AMX-BF16") in bf16.baseline_name


def test_training_step_cases():
    """Every step case runs AdamW; the wide ones stay out of --quick; the bf16 target says which CPU it assumed."""
    cases = {case.name: case for case in select_cases(name_filter="apt_model_train_step")}
    assert len(cases) == 6 and sum(case.quick for case in cases.values()) == 3
    assert cases["apt_model_train_step[patched vs unpatched]"].targets == Targets(min_speedup=5)
    assert cases["apt_model_train_step[patched vs use_autopoietic=False,wide]"].targets == Targets(max_time_ratio=1.15)
    bf16 = cases["apt_model_train_step[bf16 vs fp32 patched]"]
    assert bf16.targets == Targets(min_speedup=2.5 if training.amx_bf16() else 1.4)
    assert "AdamW" in bf16.shape(None)


def test_tiny_step_cases_run_through_the_harness():
    tiny = training.StepModel({k: v for k, v in TINY.items() if not k.endswith("token_id")}, batch=2, length=8,
                              tag=",tiny")
    for against in ("unpatched", "use_autopoietic=False", "fp32 patched"):
        result = run_case(training.step_case(tiny, against), quick=True, repeats=1)
        assert result.ratio > 0 and len(result.candidate.times) == 1


def test_bf16_fine_tune_case_runs_through_the_harness():
    result = run_case(fine_tune_case(FineTuneShape(TINY, batch=2, length=8, steps=3), bf16=True), quick=True,
                      repeats=1)
    assert result.ratio > 0 and "--bf16 (autocast), 2 steps" in result.shape


def test_tiny_case_runs_through_the_harness():
    result = run_case(fine_tune_case(FineTuneShape(TINY, batch=2, length=8, steps=3)), quick=True, repeats=1)
    assert result.ratio > 0 and len(result.candidate.times) == 1
    assert result.shape.endswith("2 steps = 64 tokens")  # --quick runs 2 steps a call
