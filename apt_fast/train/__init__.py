"""Training, fine-tuning and distillation of APT models: the engine behind ``apt-fast fine-tune``,
``train``, ``evaluate``, ``chat`` and ``distill``.

    from apt_fast.train import fine_tune_model, FineTuner, distill, train_model
"""

# The engine imports the model (and so transformers, seconds to import); the CLI needs only the argument
# definitions, so every name is loaded from its module on first use.
_LAZY = {
    "IGNORE_INDEX": "batching",
    "Batch": "batching",
    "TokenizedData": "batching",
    "collate": "batching",
    "tokenize_examples": "batching",
    "TrainConfig": "config",
    "DataFile": "data",
    "read_data_file": "data",
    "distill": "distillation",
    "NonFiniteError": "errors",
    "TrainingError": "errors",
    "TrainingFailed": "errors",
    "UnreadableCheckpoint": "errors",
    "EvalResult": "evaluation",
    "evaluate": "evaluation",
    "exact_match": "evaluation",
    "generate_text": "evaluation",
    "FineTuner": "finetune",
    "fine_tune_model": "finetune",
    "FreezeReport": "freezing",
    "freeze_layers": "freezing",
    "DistillObjective": "objectives",
    "DistillSettings": "objectives",
    "LanguageModelObjective": "objectives",
    "train_model": "pretrain",
    "Example": "records",
    "render_prompt": "records",
    "Trainer": "trainer",
    "TrainingInterrupted": "interrupt",
    "TrainResult": "trainer",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "IGNORE_INDEX", "Batch", "DataFile", "DistillObjective", "DistillSettings", "EvalResult", "Example", "FineTuner",
    "FreezeReport", "LanguageModelObjective", "NonFiniteError", "TokenizedData", "TrainConfig", "TrainResult",
    "Trainer", "TrainingError", "TrainingFailed", "TrainingInterrupted", "UnreadableCheckpoint", "collate", "distill",
    "evaluate", "exact_match", "fine_tune_model", "freeze_layers", "generate_text", "read_data_file", "render_prompt",
    "tokenize_examples", "train_model",
]
