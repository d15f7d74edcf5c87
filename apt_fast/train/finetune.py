"""Fine-tuning with the guide's Python API: ``fine_tune_model(...)`` and ``FineTuner(path)``.

    model, tokenizer, config = fine_tune_model(pretrained_model_path="apt_model", train_data_path="train.txt",
                                               val_data_path="val.txt", freeze_embeddings=True,
                                               freeze_encoder_layers=2, save_path="apt_model_finetuned")
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Sequence

from .config import TrainConfig
from .distributed import Runtime, init_runtime
from .freezing import FreezeReport, freeze_layers, report_frozen
from .inputs import load_pretrained, load_train_val
from .objectives import LanguageModelObjective
from .precision import check_master_weights
from .trainer import Trainer

logger = logging.getLogger("apt_fast.train")
FINE_TUNE_DEFAULTS = TrainConfig()  # the guide's: 5 epochs, batch 8, lr 1e-5, eval 100, save 500, patience 3


def run_language_model_training(model, tokenizer, *, train_data_path, val_data_path, save_path, config: TrainConfig,
                                max_samples, resume, overwrite, callbacks, runtime: Runtime, desc: str, run_info: dict,
                                progress_bar: bool | None):
    """Tokenize the data and run the token cross-entropy objective; returns the Trainer's result."""
    check_master_weights(model, config.bf16)  # before the data is read
    train, val = load_train_val(train_data_path, val_data_path, tokenizer, max_length=config.max_length,
                                max_samples=max_samples)
    info = {**run_info, "train_data_path": os.fspath(train_data_path), "train_samples": len(train),
            "val_data_path": os.fspath(val_data_path) if val_data_path else None}
    trainer = Trainer(model, tokenizer, LanguageModelObjective(config.label_smoothing), train, val, config, save_path,
                      runtime=runtime, desc=desc, callbacks=callbacks, run_info=info, progress_bar=progress_bar)
    return trainer.train(resume=resume, overwrite=overwrite)


class FineTuner:
    """Load a pretrained APT model, optionally freeze parts of it, fine-tune it.

    ``model_path`` is any checkpoint :func:`apt_fast.load` reads; it must include a tokenizer.
    """

    def __init__(self, model_path: str | os.PathLike, *, runtime: Runtime | None = None):
        self.model_path = os.fspath(model_path)
        self.model, self.tokenizer = load_pretrained(model_path)
        self.runtime = runtime or init_runtime()
        self.freeze_report: FreezeReport = report_frozen(self.model)

    def freeze_layers(self, freeze_embeddings: bool = False, freeze_encoder_layers: int | None = None,
                      freeze_decoder_layers: int | None = None) -> FreezeReport:
        """Freeze the embedding (tied to the output projection) and the first N encoder / decoder layers."""
        self.freeze_report = freeze_layers(self.model, freeze_embeddings=freeze_embeddings,
                                           freeze_encoder_layers=freeze_encoder_layers,
                                           freeze_decoder_layers=freeze_decoder_layers)
        logger.info(self.freeze_report.describe())
        return self.freeze_report

    def fine_tune(
        self,
        train_data_path: str | os.PathLike,
        val_data_path: str | os.PathLike | None = None,
        save_path: str | os.PathLike = "apt_model_finetuned",
        *,
        max_samples: int | None = None,
        resume: str | None = None,
        overwrite: bool = False,
        callbacks: Sequence[Callable] = (),
        config: TrainConfig | None = None,
        progress_bar: bool | None = None,
        **settings,
    ):
        """Fine-tune on ``train_data_path``; ``settings`` are TrainConfig fields (epochs, batch_size,
        learning_rate, early_stopping_patience, eval_steps, save_steps, seed, max_length, fast, ...).
        ``progress_bar``: the tqdm bar on stderr; None (the default) shows it when stderr is a terminal.

        Returns ``(model, tokenizer, model_config)``; the model holds the best weights when there was
        validation data, else the last ones, and is also saved to ``save_path``.
        """
        config = TrainConfig.from_overrides(config or FINE_TUNE_DEFAULTS, **settings)
        run_language_model_training(
            self.model, self.tokenizer, train_data_path=train_data_path, val_data_path=val_data_path,
            save_path=save_path, config=config, max_samples=max_samples, resume=resume, overwrite=overwrite,
            callbacks=callbacks, runtime=self.runtime, desc="fine-tune", progress_bar=progress_bar,
            run_info={"command": "fine-tune", "model_path": self.model_path,
                      "frozen_parameters": self.freeze_report.frozen_elements})
        return self.model, self.tokenizer, self.model.config


def fine_tune_model(
    pretrained_model_path: str | os.PathLike,
    train_data_path: str | os.PathLike,
    val_data_path: str | os.PathLike | None = None,
    save_path: str | os.PathLike = "apt_model_finetuned",
    *,
    freeze_embeddings: bool = False,
    freeze_encoder_layers: int | None = None,
    freeze_decoder_layers: int | None = None,
    max_samples: int | None = None,
    resume: str | None = None,
    overwrite: bool = False,
    callbacks: Sequence[Callable] = (),
    progress_bar: bool | None = None,
    **settings,
):
    """The guide's one-call fine-tuning: load, freeze, fine-tune, save. Returns (model, tokenizer, config).
    ``progress_bar``: the tqdm bar on stderr; None (the default) shows it when stderr is a terminal."""
    finetuner = FineTuner(pretrained_model_path)
    finetuner.freeze_layers(freeze_embeddings=freeze_embeddings, freeze_encoder_layers=freeze_encoder_layers,
                            freeze_decoder_layers=freeze_decoder_layers)
    return finetuner.fine_tune(train_data_path, val_data_path, save_path, max_samples=max_samples, resume=resume,
                               overwrite=overwrite, callbacks=callbacks, progress_bar=progress_bar, **settings)
