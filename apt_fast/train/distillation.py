"""Knowledge distillation (``apt-fast distill``): a student learns from a frozen teacher through apt_fast's
fused distillation loss, at any batch size (upstream's plugin took sample 0 of the batch as the logits)."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from typing import Callable, Sequence

from torch import nn

from ..models.apt import APTConfig
from .config import DISTILL_DEFAULTS, TrainConfig
from .distributed import Runtime, init_runtime
from .fast_path import apply_fast_path
from .inputs import load_pretrained, load_train_val
from .objectives import DistillObjective, DistillSettings
from .precision import check_master_weights
from .pretrain import new_model, read_model_config
from .trainer import Trainer

logger = logging.getLogger("apt_fast.train")


def build_student(teacher: nn.Module, student, student_config, seed: int) -> nn.Module:
    """The student: a loaded model, or a new one from ``student_config`` (vocabulary and special ids
    taken from the teacher when the config leaves them out). Its vocabulary must be the teacher's."""
    if (student is None) == (student_config is None):
        raise ValueError("give exactly one of --student (a model path) or --student-config (a JSON config)")
    if student_config is not None:
        fields = read_model_config(student_config, argument="--student-config")
        for name in ("vocab_size", "pad_token_id", "bos_token_id", "eos_token_id"):
            fields.setdefault(name, getattr(teacher.config, name))
        try:
            model = new_model(APTConfig(**fields), seed)
        except (TypeError, ValueError) as err:
            raise ValueError(f"--student-config: invalid model config: {err}") from None
    else:
        model = student if isinstance(student, nn.Module) else load_pretrained(student, "--student")[0]
    if model.config.vocab_size != teacher.config.vocab_size:
        raise ValueError(f"the student's vocab_size must equal the teacher's ({teacher.config.vocab_size}), "
                         f"got {model.config.vocab_size}")
    return model


def distill(
    teacher: str | os.PathLike | nn.Module,
    train_data_path: str | os.PathLike,
    *,
    student: str | os.PathLike | nn.Module | None = None,
    student_config: str | os.PathLike | dict | APTConfig | None = None,
    tokenizer=None,
    val_data_path: str | os.PathLike | None = None,
    save_path: str | os.PathLike = "apt_model_distilled",
    distill_type: str = "response",
    temperature: float = 4.0,
    alpha: float = 0.7,
    beta: float = 0.3,
    feature_weight: float = 0.1,
    max_samples: int | None = None,
    resume: str | None = None,
    overwrite: bool = False,
    callbacks: Sequence[Callable] = (),
    runtime: Runtime | None = None,
    config: TrainConfig | None = None,
    progress_bar: bool | None = None,
    **settings,
):
    """Distil ``teacher`` (a path, or a model plus ``tokenizer``) into ``student`` or a new model built from
    ``student_config``. See :class:`DistillSettings` for the loss; ``settings`` are TrainConfig fields.

    The teacher is frozen (eval mode, no gradients, never in the optimizer). Returns
    ``(student, tokenizer, student_config)``; the student is saved to ``save_path`` with the teacher's tokenizer.
    ``progress_bar``: the tqdm bar on stderr; None (the default) shows it when stderr is a terminal.
    """
    loss_settings = DistillSettings(distill_type, temperature, alpha, beta, feature_weight)
    config = TrainConfig.from_overrides(config or DISTILL_DEFAULTS, **settings)
    if isinstance(teacher, nn.Module):
        if tokenizer is None:
            raise ValueError("tokenizer is required when the teacher is given as a model")
        teacher_path = None
    else:
        teacher_path = os.fspath(teacher)
        teacher, tokenizer = load_pretrained(teacher, "--teacher")
    runtime = runtime or init_runtime()
    student_model = build_student(teacher, student, student_config, config.seed)
    check_master_weights(student_model, config.bf16)  # before the data is read
    teacher.to(runtime.device)
    apply_fast_path(teacher, config.fast)
    objective = DistillObjective(teacher, loss_settings, fused=config.fast)
    train, val = load_train_val(train_data_path, val_data_path, tokenizer, max_length=config.max_length,
                                max_samples=max_samples)
    info = {"command": "distill", "teacher": teacher_path, "distill": asdict(loss_settings),
            "train_data_path": os.fspath(train_data_path), "train_samples": len(train)}
    Trainer(student_model, tokenizer, objective, train, val, config, save_path, runtime=runtime, desc="distill",
            callbacks=callbacks, run_info=info, progress_bar=progress_bar).train(resume=resume, overwrite=overwrite)
    return student_model, tokenizer, student_model.config
