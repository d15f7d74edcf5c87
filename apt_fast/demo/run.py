"""`apt-fast demo`: the end-to-end demonstration on a task whose quality can be measured.

1. train a small APT model from scratch to **reverse** letter strings of length 2-4;
2. fine-tune it, embedding and first encoder layer frozen, to reverse **longer** strings (5-6), which the
   base model has never seen;
3. distil the fine-tuned model into a student half its width with one layer per stack;
4. evaluate each: exact match of greedy generation, token accuracy, loss;
5. time the same fine-tuning steps with apt_fast's kernels and with ``--no-fast``, losses compared;
6. export the student to GGUF.

Every stage goes through the same Python API the commands use; the equivalent command is printed.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import statistics
import time
from dataclasses import dataclass

import torch

BASE_MODEL = dict(d_model=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, d_ff=128, max_seq_len=32,
                  dropout=0.0, use_dbc_dac=False)
STUDENT_MODEL = dict(BASE_MODEL, d_model=32, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, d_ff=64)
ALPHABET = "abcdef"


@dataclass(frozen=True)
class DemoSize:
    """Samples and optimizer steps of each stage."""

    train_samples: int = 3000
    test_samples: int = 200
    base_epochs: int = 3
    finetune_epochs: int = 3
    distill_epochs: int = 3
    batch_size: int = 32
    timed_steps: int = 12


QUICK = DemoSize(train_samples=600, test_samples=60, base_epochs=2, finetune_epochs=1, distill_epochs=1,
                 timed_steps=4)


def _write_task(path: str, n: int, lengths: range, rng: random.Random) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            word = "".join(rng.choice(ALPHABET) for _ in range(rng.choice(lengths)))
            f.write(json.dumps({"prompt": word, "response": word[::-1]}) + "\n")
    return path


def _say(text: str = "") -> None:
    print(text, flush=True)


def _scores(model, tokenizer, test_path: str) -> str:
    from .train import exact_match, read_data_file
    from .train.evaluation import evaluate
    from .train.inputs import load_tokenized

    examples = read_data_file(test_path).examples
    result = evaluate(model, load_tokenized(test_path, tokenizer, max_length=32), tokenizer, batch_size=64)
    return (f"exact match {100 * exact_match(model, tokenizer, examples):5.1f}%   token accuracy "
            f"{100 * result.token_accuracy:5.1f}%   loss {result.loss:.3f}")


def _timed_fine_tune(base: str, data: str, save_path: str, steps: int, fast: bool) -> tuple[list[float], list[float]]:
    """(losses, seconds per step) of ``steps`` fine-tuning steps from ``base``."""
    from .train import fine_tune_model

    stamps = [time.perf_counter()]
    fine_tune_model(base, data, save_path=save_path, overwrite=True, max_steps=steps, batch_size=32,
                    learning_rate=1e-3, fast=fast, tensorboard=False, save_steps=10**6,
                    callbacks=[lambda trainer, state, loss: stamps.append(time.perf_counter())])
    with open(os.path.join(save_path, "training_log.json"), encoding="utf-8") as f:
        losses = [h["loss"] for h in json.load(f)["history"]]
    return losses, [b - a for a, b in zip(stamps, stamps[1:])]


def _speed(base: str, data: str, workdir: str, steps: int) -> None:
    import apt_fast

    if not hasattr(apt_fast, "patch"):
        _say("apt_fast.patch is not available in this build: no fast path to compare (speedup n/a)")
        return
    fast_losses, fast_times = _timed_fine_tune(base, data, os.path.join(workdir, "timing_fast"), steps, True)
    slow_losses, slow_times = _timed_fine_tune(base, data, os.path.join(workdir, "timing_nofast"), steps, False)
    fast_s, slow_s = statistics.median(fast_times[1:]), statistics.median(slow_times[1:])  # first step: warm-up
    diff = max(abs(a - b) for a, b in zip(fast_losses, slow_losses))
    _say(f"  {steps} fine-tuning steps, batch 32, same data and start:")
    _say(f"    --no-fast      {1000 * slow_s:8.1f} ms/step")
    _say(f"    apt_fast       {1000 * fast_s:8.1f} ms/step   speedup {slow_s / fast_s:.2f}x")
    _say(f"    losses         max |fast - no-fast| = {diff:.2e} over {len(fast_losses)} steps "
         f"(first {fast_losses[0]:.4f} vs {slow_losses[0]:.4f}, last {fast_losses[-1]:.4f} vs {slow_losses[-1]:.4f})")


def _export(student: str, workdir: str) -> None:
    from .cli import build_parser, main

    if "export-gguf" not in build_parser()._subparsers._group_actions[0].choices:
        _say("GGUF export is not available in this build")
        return
    out = os.path.join(workdir, "student.gguf")
    main(["export-gguf", "--model-path", student, "--output", out, "--type", "q8_0"])


def run_demo(workdir: str, size: DemoSize = DemoSize(), seed: int = 0) -> None:
    """Run every stage under ``workdir`` (replaced) and print what each achieved."""
    from .models.apt.loading import load
    from .train import distill, fine_tune_model, train_model

    logging.getLogger("apt_fast.train").setLevel(logging.WARNING)
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    rng = random.Random(seed)
    path = lambda name: os.path.join(workdir, name)  # noqa: E731
    short, long = range(2, 5), range(5, 7)
    short_train = _write_task(path("short_train.jsonl"), size.train_samples, short, rng)
    short_test = _write_task(path("short_test.jsonl"), size.test_samples, short, rng)
    long_train = _write_task(path("long_train.jsonl"), size.train_samples // 2, long, rng)
    long_val = _write_task(path("long_val.jsonl"), size.test_samples // 2, long, rng)
    long_test = _write_task(path("long_test.jsonl"), size.test_samples, long, rng)
    with open(path("base.json"), "w", encoding="utf-8") as f:
        json.dump(BASE_MODEL, f)
    with open(path("student.json"), "w", encoding="utf-8") as f:
        json.dump(STUDENT_MODEL, f)
    bs = size.batch_size
    started = time.perf_counter()

    _say(f"== 1. train from scratch: reverse strings of {short.start}-{short.stop - 1} letters "
         f"({size.train_samples} samples, {size.base_epochs} epochs)")
    _say(f"   apt-fast train --config base.json --data-path short_train.jsonl --save-path base "
         f"--epochs {size.base_epochs} --batch-size {bs} --learning-rate 3e-3")
    base, tokenizer, _ = train_model(path("base.json"), short_train, save_path=path("base"), epochs=size.base_epochs,
                                     batch_size=bs, learning_rate=3e-3, tensorboard=False, seed=seed)
    _say(f"   base on short strings: {_scores(base, tokenizer, short_test)}")
    _say(f"   base on long strings:  {_scores(base, tokenizer, long_test)}")

    _say(f"== 2. fine-tune on {long.start}-{long.stop - 1} letters, embedding and encoder layer 0 frozen")
    _say(f"   apt-fast fine-tune --model-path base --data-path long_train.jsonl --val-data-path long_val.jsonl "
         f"--save-path tuned --freeze-embeddings --freeze-encoder-layers 1 --epochs {size.finetune_epochs} "
         f"--batch-size {bs} --learning-rate 1e-3 --eval-steps 25")
    tuned, _, _ = fine_tune_model(path("base"), long_train, long_val, path("tuned"), freeze_embeddings=True,
                                  freeze_encoder_layers=1, epochs=size.finetune_epochs, batch_size=bs,
                                  learning_rate=1e-3, eval_steps=25, tensorboard=False, seed=seed)
    frozen_same = torch.equal(tuned.token_embedding.weight, load(path("base"))[0].token_embedding.weight)
    _say(f"   frozen embedding unchanged: {frozen_same}")
    _say(f"   tuned on long strings:  {_scores(tuned, tokenizer, long_test)}")
    _say(f"   tuned on short strings: {_scores(tuned, tokenizer, short_test)}")

    _say(f"== 3. distil into a student (d_model {STUDENT_MODEL['d_model']}, 1+1 layers; "
         f"T 4, alpha 0.7, beta 0.3, fused distillation loss)")
    _say(f"   apt-fast distill --teacher tuned --student-config student.json --data-path long_train.jsonl "
         f"--save-path student --epochs {size.distill_epochs} --batch-size {bs} --learning-rate 3e-3")
    student, _, _ = distill(path("tuned"), long_train, student_config=path("student.json"), save_path=path("student"),
                            epochs=size.distill_epochs, batch_size=bs, learning_rate=3e-3, tensorboard=False,
                            seed=seed)
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    _say(f"   student ({params(student):,} parameters vs the teacher's {params(tuned):,}) on long strings: "
         f"{_scores(student, tokenizer, long_test)}")

    _say("== 4. apt_fast against --no-fast")
    _speed(path("base"), long_train, workdir, size.timed_steps)

    _say("== 5. export the student")
    _export(path("student"), workdir)
    _say(f"demo finished in {time.perf_counter() - started:.0f} s; outputs in {workdir}")
