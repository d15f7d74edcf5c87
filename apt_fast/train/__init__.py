"""Training, fine-tuning and distillation of APT models: the engine behind ``apt-fast fine-tune``,
``train``, ``evaluate``, ``chat`` and ``distill``.

    from apt_fast.train import fine_tune_model, FineTuner, distill, train_model
"""

from .batching import IGNORE_INDEX, Batch, TokenizedData, collate, tokenize_examples
from .config import TrainConfig
from .data import DataFile, read_data_file
from .distill import distill
from .evaluation import EvalResult, evaluate, exact_match, generate_text
from .finetune import FineTuner, fine_tune_model
from .freezing import FreezeReport, freeze_layers
from .objectives import DistillObjective, DistillSettings, LanguageModelObjective
from .pretrain import train_model
from .records import Example, render_prompt
from .trainer import Trainer, TrainingInterrupted, TrainResult

__all__ = [
    "IGNORE_INDEX", "Batch", "DataFile", "DistillObjective", "DistillSettings", "EvalResult", "Example", "FineTuner",
    "FreezeReport", "LanguageModelObjective", "TokenizedData", "TrainConfig", "TrainResult", "Trainer",
    "TrainingInterrupted", "collate", "distill", "evaluate", "exact_match", "fine_tune_model", "freeze_layers",
    "generate_text", "read_data_file", "render_prompt", "tokenize_examples", "train_model",
]
