"""bf16 training and evaluation (bf16=True, --bf16): the patched model under bfloat16 autocast gets bf16 q/k/v and
float32 parameters, returns float32 gradients as close to the float32 ones as torch's own bf16 path does; the engine
keeps float32 weights and optimizer state; the fused distillation loss receives the teacher's bf16 logits as they
are; every command that trains or evaluates takes --bf16; a model whose weights are not float32 is refused."""

from __future__ import annotations

import copy
import json
import os

import pytest
import torch
from train_helpers import TINY, make_tiny_model, reversal_records

import apt_fast
import apt_fast.modules.apt_attention as fused_module
from apt_fast.cli import main
from apt_fast.train import DistillObjective, DistillSettings, LanguageModelObjective, collate, tokenize_examples
from apt_fast.train.checkpointing import TRAINER_STATE, save_model
from apt_fast.train.precision import autocast
from apt_fast.train.records import Example

STUDENT = dict(TINY, d_model=8, num_encoder_layers=1, num_decoder_layers=1, d_ff=16)
QUICK = ["--batch-size", "8", "--no-tensorboard"]
BF16_COMMANDS = ("fine-tune", "train", "evaluate", "distill", "demo", "prune-finetune", "lottery-ticket")
CPU = torch.device("cpu")


def _batch(tokenizer, n: int = 6):
    """Samples of 2-6 letters: padded sources (a key padding mask) and padded targets."""
    examples = [Example(r["prompt"], r["response"]) for r in reversal_records(n, seed=3)]
    return collate(tokenize_examples(examples, tokenizer, max_length=32), list(range(n)), pad_id=0, bos_id=1, eos_id=2)


def _loss_and_grads(model, batch, bf16: bool) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    with autocast(CPU, bf16):
        ce, count = LanguageModelObjective()(model, batch)["ce"]
    (ce / count).backward()
    return ce.detach(), {name: p.grad for name, p in model.named_parameters() if p.grad is not None}


def _relative_error(grads: dict, exact: dict) -> float:
    """Norm of the difference over all gradients, relative to the norm of ``exact``."""
    names = sorted(exact)
    got = torch.cat([grads[n].double().flatten() for n in names])
    want = torch.cat([exact[n].double().flatten() for n in names])
    return float((got - want).norm() / want.norm())


def test_patched_model_under_bf16_autocast_takes_bf16_and_returns_fp32_gradients(monkeypatch):
    model, tokenizer = make_tiny_model()
    reference, patched, torch_bf16 = copy.deepcopy(model).double(), copy.deepcopy(model), copy.deepcopy(model)
    apt_fast.patch(patched)
    batch = _batch(tokenizer)
    seen = []
    correct = fused_module.apt_attention

    def recording(q, k, v, sr1_w, sr1_b, sr2_w, sr2_b, tau, **kwargs):  # q [B, H, T, d], k, v [B, H, S, d]
        seen.append((q.dtype, k.dtype, v.dtype, sr1_w.dtype, sr2_w.dtype, tau.dtype))
        return correct(q, k, v, sr1_w, sr1_b, sr2_w, sr2_b, tau, **kwargs)

    monkeypatch.setattr(fused_module, "apt_attention", recording)
    _, bf16_grads = _loss_and_grads(patched, batch, bf16=True)
    assert len(seen) == 6  # every APT attention of the 2+2 layers (decoder: self and cross)
    assert set(seen) == {(torch.bfloat16,) * 3 + (torch.float32,) * 3}
    assert all(p.dtype == torch.float32 for p in patched.parameters())
    assert all(g.dtype == torch.float32 and bool(g.isfinite().all()) for g in bf16_grads.values())
    assert {n for n, p in patched.named_parameters() if p.requires_grad} - set(bf16_grads) == {
        n for n, _ in patched.named_parameters() if "sr_layernorm" in n}  # upstream never uses sr_layernorm

    # Accuracy: against the float64 model, within 2x the error of torch's own bf16 path (the reference modules,
    # unpatched, under the same autocast) plus float32 noise. That path leaves tau without a gradient: upstream's
    # torch.quantile refuses a bf16 Φ, so it takes the T15 fallback; apt_fast keeps the statistics in float32.
    _, exact = _loss_and_grads(reference, batch, bf16=False)
    _, torch_grads = _loss_and_grads(torch_bf16, batch, bf16=True)
    assert set(exact) - set(torch_grads) == {n for n in exact if n.endswith(".tau")}
    exact = {n: g for n, g in exact.items() if n in torch_grads}
    ours, theirs = _relative_error(bf16_grads, exact), _relative_error(torch_grads, exact)
    print(f"\ngradient relative error vs fp64: patched bf16 {ours:.2e}, torch's bf16 {theirs:.2e}")
    assert ours <= 2 * theirs + 1e-5


def test_trainer_bf16_runs_autocast_and_keeps_float32_weights_and_optimizer(tmp_path):
    from apt_fast.train import TrainConfig, Trainer

    model, tokenizer = make_tiny_model()
    data = tokenize_examples([Example(r["prompt"], r["response"]) for r in reversal_records(16)], tokenizer,
                             max_length=32)
    observed = []

    def objective(model, batch):
        observed.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return LanguageModelObjective()(model, batch)

    config = TrainConfig(epochs=1, batch_size=8, learning_rate=1e-3, bf16=True, tensorboard=False, save_steps=2)
    result = Trainer(model, tokenizer, objective, data, None, config, tmp_path / "out", progress_bar=False).train()
    assert observed == [(True, torch.bfloat16)] * 2 and all(map(torch.isfinite, map(torch.tensor, result.losses)))
    saved = torch.load(tmp_path / "out" / "checkpoints" / "step-2" / TRAINER_STATE, weights_only=True)
    moments = [t for state in saved["optimizer"]["state"].values() for k, t in state.items() if k != "step"]
    assert moments and all(t.dtype == torch.float32 for t in moments)
    assert saved["config"]["bf16"] is True
    reloaded, _ = apt_fast.load(str(tmp_path / "out"))
    assert {p.dtype for p in reloaded.parameters()} == {torch.float32}


@pytest.mark.parametrize("distill_type", ["response", "combined"])
def test_fused_distillation_gets_the_bf16_teacher_logits_as_they_are(monkeypatch, distill_type):
    import apt_fast.functional as functional

    teacher, tokenizer = make_tiny_model(seed=1)
    student, _ = make_tiny_model(seed=2, **{k: v for k, v in STUDENT.items() if k != "vocab_size"})
    apt_fast.patch(teacher)
    apt_fast.patch(student)
    batch = _batch(tokenizer)
    fused = functional.fused_linear_distill_loss
    calls = []

    def recording(hidden, weight, labels, *, teacher_logits, **kwargs):  # hidden [N, D], teacher_logits [N, V]
        calls.append((hidden.dtype, weight.dtype, teacher_logits.dtype))
        return fused(hidden, weight, labels, teacher_logits=teacher_logits, **kwargs)

    monkeypatch.setattr(functional, "fused_linear_distill_loss", recording)
    losses = {}
    for bf16 in (False, True):
        student.zero_grad(set_to_none=True)
        with autocast(CPU, bf16):
            terms = DistillObjective(teacher, DistillSettings(distill_type=distill_type))(student, batch)
        loss = sum(s / c for s, c in terms.values())
        loss.backward()
        losses[bf16] = float(loss.detach())
        assert all(p.grad.dtype == torch.float32 for p in student.parameters() if p.grad is not None)
    assert calls == [(torch.float32, torch.float32, torch.float32), (torch.float32, torch.float32, torch.bfloat16)]
    # bf16 logits carry 8 significant bits: the loss moves by a few bf16 roundings, not more
    assert losses[True] == pytest.approx(losses[False], rel=2**-5)


def test_bf16_has_one_definition_on_every_command_that_trains_or_evaluates():
    from apt_fast.cli import build_parser

    parsers = build_parser().commands
    having = {name for name, parser in parsers.items() if "--bf16" in parser._option_string_actions}
    assert having == set(BF16_COMMANDS)
    helps = {parsers[name]._option_string_actions["--bf16"].help for name in BF16_COMMANDS}
    assert len(helps) == 1 and "float32" in helps.pop()


def _json(tmp_path, name, obj) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(obj), encoding="utf-8")
    return str(path)


def _settings(save_path) -> dict:
    return json.loads((save_path / "training_log.json").read_text())["settings"]


def test_every_training_command_and_evaluate_take_bf16(tmp_path, train_file, val_file, tiny_model_dir, capsys):
    config, student = _json(tmp_path, "model.json", TINY), _json(tmp_path, "student.json", STUDENT)
    runs = {
        "train": ["--config", config, "--learning-rate", "3e-3", "--epochs", "1"],
        "fine-tune": ["--model-path", tiny_model_dir, "--freeze-encoder-layers", "1", "--epochs", "1"],
        "distill": ["--teacher", tiny_model_dir, "--student-config", student, "--epochs", "1"],
        "prune-finetune": ["--model-path", tiny_model_dir, "--prune-type", "magnitude", "--prune-ratio", "0.5",
                           "--eval-samples", "4", "--finetune-epochs", "1"],
    }
    for command, argv in runs.items():
        out = tmp_path / command
        assert main([command, *argv, "--data-path", train_file, "--save-path", str(out), "--bf16", *QUICK]) == 0
        assert _settings(out)["bf16"] is True, command
    capsys.readouterr()
    losses = {}
    for flags in ([], ["--bf16"], ["--no-fast"], ["--no-fast", "--bf16"]):
        assert main(["evaluate", "--model-path", tiny_model_dir, "--data-path", val_file, *flags]) == 0
        losses[tuple(flags)] = float(capsys.readouterr().out.split("loss: ")[1].split()[0])
    ours, theirs = (abs(losses[bf16] - losses[fp32]) for bf16, fp32 in ((("--bf16",), ()),
                                                                        (("--no-fast", "--bf16"), ("--no-fast",))))
    print(f"\nevaluate loss: {losses}")
    assert ours <= 2 * theirs + 1e-4  # printed with 4 decimals


def _half_model(tmp_path, dtype) -> str:
    model, tokenizer = make_tiny_model()
    path = tmp_path / f"model-{str(dtype).removeprefix('torch.')}"
    save_model(model.to(dtype), str(path), tokenizer)
    assert apt_fast.load(str(path))[0].token_embedding.weight.dtype == dtype
    return str(path)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_bf16_refuses_weights_that_are_not_float32(tmp_path, train_file, capsys, dtype):
    name = str(dtype).removeprefix("torch.")
    model_path, save_path = _half_model(tmp_path, dtype), tmp_path / "out"
    others = len(list(make_tiny_model()[0].parameters())) - 1
    message = (f"--bf16 (bf16=True) trains float32 master weights under bfloat16 autocast, but the model's weights "
               f"are {name} (token_embedding.weight and {others} more); give a float32 model or leave out --bf16")
    for argv in (["fine-tune", "--model-path", model_path], ["distill", "--teacher", model_path, "--student",
                                                               model_path]):
        assert main([*argv, "--data-path", train_file, "--save-path", str(save_path), "--bf16", "--epochs", "1",
                     "--quiet", *QUICK]) == 2
        assert capsys.readouterr().err == f"apt-fast {argv[0]}: error: {message}\n"
        assert not os.path.exists(save_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"^--bf16 \(bf16=True\) trains float32 master weights"):
        apt_fast.train.fine_tune_model(model_path, train_file, save_path=str(save_path), bf16=True, epochs=1)


def test_only_trainable_weights_need_float32():
    from apt_fast.train.precision import check_master_weights

    model, _ = make_tiny_model()
    model.token_embedding.half().requires_grad_(False)
    check_master_weights(model, bf16=True)  # frozen: no master copy is kept
    model.half()
    check_master_weights(model, bf16=False)  # without bf16 nothing is asked of the weights
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    with pytest.raises(ValueError, match=rf"are float16 \({trainable[0]} and {len(trainable) - 1} more\)"):
        check_master_weights(model, bf16=True)
