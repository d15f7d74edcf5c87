"""`apt-fast demo`: the end-to-end demonstration on a task whose quality can be measured, sorting the
letters of a word (see :mod:`apt_fast.demo.task`).

1. train a small APT model (d_model 128, 1+1 layers) from scratch on words of 2-6 letters;
2. fine-tune it on words of 2-9 letters with the embedding and the encoder frozen (only the decoder
   learns): the base model sorts few 7-9-letter words, the tuned one nearly all;
3. distil the fine-tuned model into a student of half its width (fused distillation loss);
4. score each before and after on held-out words: exact match of greedy generation, token accuracy and
   loss of the teacher-forced targets;
5. quantize the fine-tuned model (int8 weight-only, int8 dynamic, FP8 e4m3) and score it again: the change in
   loss and exact match against fp32;
6. time the same fine-tuning steps with apt_fast's kernels and with ``--no-fast``, losses compared: on
   the demo's model (words of a few letters: attention is a small part of a step) and on the APT
   benchmark configuration (128-token sequences, the ``apt-fast bench --filter training`` case);
7. export the student to GGUF.

With ``pruning=True`` (``apt-fast demo --pruning``) stages 1 and 2 are followed by the pruning stage instead: the
fine-tuned model pruned (unstructured magnitude 30/50/70/90%, 2:4), scored after pruning and after prune-finetune
(:mod:`apt_fast.demo.pruning`), the table and plot written to pruning-accuracy.md / .png in the workdir.

Every stage goes through the same Python API the commands use; the equivalent command is printed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass

import torch

from . import speed
from .quantization import quantized_scores
from .task import HEADER, Scores, examples, score, write_task
from .workdir import prepare_workdir

BASE_MODEL = dict(d_model=128, num_heads=4, num_encoder_layers=1, num_decoder_layers=1, d_ff=256, max_seq_len=32,
                  dropout=0.0, use_dbc_dac=False)
STUDENT_MODEL = dict(BASE_MODEL, d_model=64, d_ff=128)
SHORT, LONG, MIXED = range(2, 7), range(7, 10), range(2, 10)


@dataclass(frozen=True)
class DemoSize:
    """Samples, passes and learning rates of each stage (steps = samples / batch_size x epochs)."""

    train_samples: int = 4800
    base_epochs: int = 4  # 600 steps
    finetune_samples: int = 2400
    finetune_epochs: int = 4  # 300 steps
    distill_epochs: int = 8  # 600 steps
    test_samples: int = 200
    batch_size: int = 32
    timed_steps: int = 12
    benchmark_repeats: int = 3  # runs of the APT benchmark configuration per path (0: not timed)
    base_lr: float = 2e-3
    finetune_lr: float = 1e-3
    distill_lr: float = 3e-3
    prune_finetune_epochs: int = 2  # 150 steps per pruning setting
    prune_finetune_lr: float = 1e-3


QUICK = DemoSize(train_samples=320, base_epochs=1, finetune_samples=160, finetune_epochs=1, distill_epochs=1,
                 test_samples=32, timed_steps=3, benchmark_repeats=0, prune_finetune_epochs=1)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _table(rows: list[tuple[str, str, Scores]]) -> None:
    width = max(len(label) for label, _, _ in rows)
    _say(f"   {'model':<{width}}  {'words':>5}  {HEADER}")
    for label, words, scores in rows:
        _say(f"   {label:<{width}}  {words:>5}  {scores.cells()}")


def _letters(lengths: range) -> str:
    return f"{lengths.start}-{lengths.stop - 1}"


def _bf16_flag(bf16: bool) -> str:
    return " --bf16" if bf16 else ""


def _precision(bf16: bool) -> str:
    return "bf16 autocast, float32 weights and optimizer (--bf16)" if bf16 else "float32"


def _since(start: float) -> str:
    return f"{time.perf_counter() - start:.0f} s"


def _pruning_stage(workdir: str, size: DemoSize, seed: int, tuned, tokenizer, paths: dict, bf16: bool) -> None:
    from .pruning import TABLE_FILE, prune_finetune_scores, write_results

    bs, samples = size.batch_size, size.finetune_samples
    _say(f"== 3. prune the fine-tuned model, then prune-finetune it ({samples} samples, "
         f"{math.ceil(samples / bs) * size.prune_finetune_epochs} steps each), scored on {_letters(LONG)} letters")
    _say(f"   apt-fast prune-finetune --model-path tuned --prune-type magnitude --prune-ratio R | --prune-type nm "
         f"--nm 2:4 --prune-ratio 0.5 --data-path mixed_train.jsonl --val-data-path mixed_val.jsonl --save-path "
         f"pruned-... --finetune-epochs {size.prune_finetune_epochs} --batch-size {bs} --learning-rate "
         f"{size.prune_finetune_lr:g} --eval-steps 50{_bf16_flag(bf16)}")
    stage_start = time.perf_counter()
    dense = score(tuned, tokenizer, paths["long_test"])
    rows = prune_finetune_scores(paths["tuned"], paths["mixed_train"], paths["mixed_val"], paths["long_test"], workdir,
                                 epochs=size.prune_finetune_epochs, batch_size=bs,
                                 learning_rate=size.prune_finetune_lr, seed=seed, bf16=bf16)
    header = [f"# Pruning accuracy on the demo task (`apt-fast demo --pruning`, seed {seed})", "",
              f"The demo's fine-tuned model (d_model {BASE_MODEL['d_model']}, {BASE_MODEL['num_encoder_layers']}+"
              f"{BASE_MODEL['num_decoder_layers']} layers, d_ff {BASE_MODEL['d_ff']}) pruned, then fine-tuned with "
              f"the pruned weights held at zero on {samples} words of {_letters(MIXED)} letters "
              f"({_precision(bf16)}, {size.prune_finetune_epochs} epochs, batch {bs}, learning rate "
              f"{size.prune_finetune_lr:g}, cosine, "
              f"AdamW; best by loss on {size.test_samples // 2} validation words). Scored on {size.test_samples} "
              f"held-out words of {_letters(LONG)} letters: exact match of greedy generation, loss of the "
              f"teacher-forced targets. Sparsity is of the pruned nn.Linear weights (the output projection tied to "
              f"the embedding stays dense). Stage time {_since(stage_start)} on {torch.get_num_threads()} threads."]
    table = write_results(workdir, header, dense, rows, f"apt-fast demo --pruning: exact match and loss against "
                                                        f"sparsity ({_letters(LONG)} letters)")
    for line in table:
        _say(f"   {line}")
    _say(f"   table and plot: {os.path.join(workdir, TABLE_FILE)}, pruning-accuracy.png")


def run_demo(workdir: str, size: DemoSize = DemoSize(), seed: int = 0, progress: bool = True,
             pruning: bool = False, bf16: bool = False) -> None:
    """Run every stage under ``workdir`` (new, empty or an earlier demo's, which is replaced; see
    :mod:`apt_fast.demo.workdir`) and print what each achieved; ``progress``: the export's progress bar;
    ``pruning``: stages 1, 2 and the pruning stage only; ``bf16``: every training (and the timed steps) under
    bfloat16 autocast with float32 weights (``--bf16``); the scores are of the float32 models."""
    from ..export.checkpoint import export_checkpoint, export_summary
    from ..models.apt.loading import load
    from ..models.apt.tokenization_byte import APTByteTokenizer
    from ..train import distill, fine_tune_model, train_model
    from ..train.distillation import build_student
    from ..train.pretrain import config_for_tokenizer, new_model

    logging.getLogger("apt_fast.train").setLevel(logging.WARNING)
    prepare_workdir(workdir)
    rng = random.Random(seed)
    path = lambda name: os.path.join(workdir, name)
    short_train = write_task(path("short_train.jsonl"), size.train_samples, SHORT, rng)
    short_test = write_task(path("short_test.jsonl"), size.test_samples, SHORT, rng)
    mixed_train = write_task(path("mixed_train.jsonl"), size.finetune_samples, MIXED, rng)
    mixed_val = write_task(path("mixed_val.jsonl"), size.test_samples // 2, MIXED, rng)
    long_test = write_task(path("long_test.jsonl"), size.test_samples, LONG, rng)
    for name, fields in (("base.json", BASE_MODEL), ("student.json", STUDENT_MODEL)):
        with open(path(name), "w", encoding="utf-8") as f:
            json.dump(fields, f)
    bs, tokenizer = size.batch_size, APTByteTokenizer()
    started = time.perf_counter()
    steps = lambda samples, epochs: math.ceil(samples / bs) * epochs
    flag = _bf16_flag(bf16)
    _say(f"training precision: {_precision(bf16)}")

    _say(f"== 1. train from scratch: sort the letters of words of {_letters(SHORT)} letters "
         f"({size.train_samples} samples, {steps(size.train_samples, size.base_epochs)} steps)")
    _say(f"   apt-fast train --config base.json --data-path short_train.jsonl --save-path base "
         f"--epochs {size.base_epochs} --batch-size {bs} --learning-rate {size.base_lr:g}{flag}")
    stage_start = time.perf_counter()
    untrained = new_model(config_for_tokenizer(dict(BASE_MODEL), tokenizer), seed)  # train_model's initial weights
    base, _, _ = train_model(path("base.json"), short_train, save_path=path("base"), epochs=size.base_epochs,
                             batch_size=bs, learning_rate=size.base_lr, tensorboard=False, seed=seed, bf16=bf16)
    _table([("untrained", _letters(SHORT), score(untrained, tokenizer, short_test)),
            (f"trained ({_since(stage_start)})", _letters(SHORT), score(base, tokenizer, short_test)),
            ("trained", _letters(LONG), score(base, tokenizer, long_test))])
    _say(f"   examples: {examples(base, tokenizer, short_test)}")

    _say(f"== 2. fine-tune on {_letters(MIXED)} letters, embedding and encoder frozen "
         f"({size.finetune_samples} samples, {steps(size.finetune_samples, size.finetune_epochs)} steps)")
    _say(f"   apt-fast fine-tune --model-path base --data-path mixed_train.jsonl --val-data-path mixed_val.jsonl "
         f"--save-path tuned --freeze-embeddings --freeze-encoder-layers 1 --epochs {size.finetune_epochs} "
         f"--batch-size {bs} --learning-rate {size.finetune_lr:g} --eval-steps 50{flag}")
    stage_start = time.perf_counter()
    tuned, _, _ = fine_tune_model(path("base"), mixed_train, mixed_val, path("tuned"), freeze_embeddings=True,
                                  freeze_encoder_layers=1, epochs=size.finetune_epochs, batch_size=bs,
                                  learning_rate=size.finetune_lr, eval_steps=50, tensorboard=False, seed=seed,
                                  bf16=bf16)
    _table([("base", _letters(LONG), score(base, tokenizer, long_test)),
            (f"fine-tuned ({_since(stage_start)})", _letters(LONG), score(tuned, tokenizer, long_test)),
            ("fine-tuned", _letters(SHORT), score(tuned, tokenizer, short_test))])
    frozen_same = torch.equal(tuned.token_embedding.weight, load(path("base"))[0].token_embedding.weight)
    _say(f"   frozen embedding unchanged: {frozen_same}")
    _say(f"   examples: {examples(tuned, tokenizer, long_test)}")
    if pruning:
        _pruning_stage(workdir, size, seed, tuned, tokenizer, dict(
            tuned=path("tuned"), mixed_train=mixed_train, mixed_val=mixed_val, long_test=long_test), bf16)
        _say(f"demo finished in {time.perf_counter() - started:.0f} s; outputs in {workdir}")
        return

    _say(f"== 3. distil into a student (d_model {STUDENT_MODEL['d_model']}, d_ff {STUDENT_MODEL['d_ff']}; T 4, "
         f"alpha 0.7, beta 0.3, fused distillation loss; {steps(size.finetune_samples, size.distill_epochs)} steps)")
    _say(f"   apt-fast distill --teacher tuned --student-config student.json --data-path mixed_train.jsonl "
         f"--save-path student --epochs {size.distill_epochs} --batch-size {bs} --learning-rate {size.distill_lr:g}"
         f"{flag}")
    stage_start = time.perf_counter()
    fresh_student = build_student(tuned, None, STUDENT_MODEL, seed)  # distill's initial weights
    student, _, _ = distill(path("tuned"), mixed_train, student_config=path("student.json"), save_path=path("student"),
                            epochs=size.distill_epochs, batch_size=bs, learning_rate=size.distill_lr,
                            tensorboard=False, seed=seed, bf16=bf16)
    params = lambda m: f"{sum(p.numel() for p in m.parameters()) / 1e3:.0f}k params"
    _table([(f"teacher ({params(tuned)})", _letters(LONG), score(tuned, tokenizer, long_test)),
            (f"student untrained ({params(student)})", _letters(LONG), score(fresh_student, tokenizer, long_test)),
            (f"student distilled ({_since(stage_start)})", _letters(LONG), score(student, tokenizer, long_test)),
            ("student distilled", _letters(SHORT), score(student, tokenizer, short_test))])
    _say(f"   examples: {examples(student, tokenizer, long_test)}")

    _say(f"== 4. quantize the fine-tuned model, scored on {_letters(LONG)} letters")
    _say("   apt-fast quantize --model-path tuned --scheme int8-weight-only|int8-dynamic|fp8-e4m3 --output-dir ...")
    rows = quantized_scores(tuned, tokenizer, long_test)
    width = max(len(scheme) for scheme, _, _ in rows)
    _say(f"   {'scheme':<{width}}  {HEADER}  change")
    for scheme, scores, change in rows:
        _say(f"   {scheme:<{width}}  {scores.cells()}  {change}")

    _say("== 5. apt_fast against --no-fast")
    lines = speed.compare(path("base"), mixed_train, workdir, size.timed_steps, bs, bf16)
    if size.benchmark_repeats:
        lines += speed.benchmark_configuration(size.benchmark_repeats)
    for line in lines:
        _say(f"   {line}")

    _say("== 6. export the student")
    _say("   apt-fast export-gguf --model-path student --output student.gguf --type q8_0")
    exported = export_checkpoint(path("student"), path("student.gguf"), "q8_0", progress=progress)
    _say(f"   {export_summary(exported, 'q8_0')}")
    _say(f"demo finished in {time.perf_counter() - started:.0f} s; outputs in {workdir}")
