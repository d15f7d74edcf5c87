"""`apt-fast demo --bf16`: every training stage runs under bfloat16 autocast and says so; the demo's first stage
(600 steps, words of 2-6 letters) reaches the same exact match in bf16 as in float32, at least 99% (slow: about
20 s; the full demo's figures are in the README)."""

from __future__ import annotations

import json
import random

import pytest


def test_quick_demo_trains_every_stage_in_bf16(tmp_path, capsys):
    from apt_fast.cli import main

    workdir = tmp_path / "demo"
    assert main(["demo", "--quick", "--bf16", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    assert "training precision: bf16 autocast, float32 weights and optimizer (--bf16)" in out
    commands = [line.strip() for line in out.splitlines() if line.strip().startswith(("apt-fast train",
                                                                                       "apt-fast fine-tune",
                                                                                       "apt-fast distill"))]
    assert len(commands) == 3 and all(command.endswith(" --bf16") for command in commands)
    assert "bf16 autocast, same data and start" in out and "demo finished" in out
    for stage in ("base", "tuned", "student", "timing_fast", "timing_nofast"):
        assert json.loads((workdir / stage / "training_log.json").read_text())["settings"]["bf16"] is True, stage


@pytest.mark.slow
def test_demo_first_stage_reaches_the_float32_exact_match_in_bf16(tmp_path):
    import torch

    from apt_fast.demo import DemoSize
    from apt_fast.demo.run import BASE_MODEL, SHORT
    from apt_fast.demo.task import score, write_task
    from apt_fast.train import train_model

    size = DemoSize()
    rng = random.Random(0)
    train = write_task(str(tmp_path / "train.jsonl"), size.train_samples, SHORT, rng)
    test = write_task(str(tmp_path / "test.jsonl"), size.test_samples, SHORT, rng)
    matches = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        model, tokenizer, _ = train_model(dict(BASE_MODEL), train, save_path=str(tmp_path / f"base-{bf16}"),
                                          epochs=size.base_epochs, batch_size=size.batch_size,
                                          learning_rate=size.base_lr, tensorboard=False, seed=0, bf16=bf16,
                                          progress_bar=False)
        matches[bf16] = score(model, tokenizer, test).exact_match
    print(f"\nexact match on {size.test_samples} words of 2-6 letters: fp32 {matches[False]:.1%}, bf16 "
          f"{matches[True]:.1%}")
    assert matches[False] >= 0.99 and matches[True] >= 0.99
