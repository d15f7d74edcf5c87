"""The training commands end to end, in process through apt_fast.cli.main, on tiny generated data."""

from __future__ import annotations

import io
import json
import os

import pytest
from train_helpers import TINY

from apt_fast.cli import main

STUDENT = dict(TINY, d_model=8, num_encoder_layers=1, num_decoder_layers=1, d_ff=16)
QUICK = ["--epochs", "1", "--batch-size", "8", "--no-tensorboard"]


def _json(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(json.dumps(obj), encoding="utf-8")
    return str(path)


def test_train_fine_tune_evaluate_chat_distill(tmp_path, train_file, val_file, capsys, monkeypatch):
    config = _json(tmp_path, "model.json", TINY)
    base, tuned, student = (str(tmp_path / n) for n in ("base", "tuned", "student"))
    assert main(["train", "--config", config, "--data-path", train_file, "--val-data-path", val_file,
                 "--save-path", base, "--learning-rate", "3e-3", "--eval-steps", "3", *QUICK]) == 0
    assert main(["fine-tune", "--model-path", base, "--data-path", train_file, "--val-data-path", val_file,
                 "--save-path", tuned, "--freeze-embeddings", "--freeze-encoder-layers", "1",
                 "--freeze-decoder-layers", "1", "--eval-steps", "2", "--save-steps", "3", "--max-samples", "32",
                 "--no-fast", *QUICK]) == 0
    assert sorted(os.listdir(tuned)) == ["README.md", "best", "checkpoints", "config.json", "last",
                                         "model.safetensors", "tokenizer_config.json", "training_log.json"]
    log = json.loads((tmp_path / "tuned" / "training_log.json").read_text())
    assert log["command"] == "fine-tune" and log["train_samples"] == 32 and len(log["history"]) == 4
    capsys.readouterr()

    assert main(["evaluate", "--model-path", tuned, "--data-path", val_file, "--exact-match"]) == 0
    out = capsys.readouterr().out
    for field in ("loss: ", "perplexity: ", "token accuracy: ", "samples: 16", "exact match: "):
        assert field in out

    monkeypatch.setattr("sys.stdin", io.StringIO("abc\n\n/reset\nfed\n/exit\nnever read\n"))
    assert main(["chat", "--model-path", tuned, "--greedy", "--max-new-tokens", "4"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2  # one reply per message from a pipe

    assert main(["distill", "--teacher", tuned, "--student-config", _json(tmp_path, "s.json", STUDENT),
                 "--data-path", train_file, "--save-path", student, "--temperature", "2", "--alpha", "0.5",
                 "--beta", "0.5", "--distill-type", "combined", *QUICK]) == 0
    log = json.loads((tmp_path / "student" / "training_log.json").read_text())
    assert log["distill"] == {"distill_type": "combined", "temperature": 2.0, "alpha": 0.5, "beta": 0.5,
                              "feature_weight": 0.1}


def test_fine_tune_defaults_are_the_guides():
    from apt_fast.cli import build_parser

    args = build_parser().parse_args(["fine-tune", "--model-path", "m", "--data-path", "d"])
    assert (args.epochs, args.batch_size, args.learning_rate, args.save_path, args.early_stopping_patience,
            args.eval_steps, args.save_steps, args.val_data_path, args.max_samples, args.freeze_embeddings,
            args.freeze_encoder_layers, args.freeze_decoder_layers) == (
        5, 8, 1e-5, "apt_model_finetuned", 3, 100, 500, None, None, False, None, None)
    distill = build_parser().parse_args(["distill", "--teacher", "t", "--student", "s", "--data-path", "d"])
    assert (distill.temperature, distill.alpha, distill.beta, distill.distill_type) == (4.0, 0.7, 0.3, "response")


@pytest.mark.parametrize("argv, message", [
    (["fine-tune", "--model-path", "{tmp}/nope", "--data-path", "{train}"],
     "apt-fast fine-tune: error: --model-path {tmp}/nope: no such file or directory"),
    (["fine-tune", "--model-path", "{model}", "--data-path", "{tmp}/missing.txt", "--save-path", "{tmp}/o"],
     "apt-fast fine-tune: error: --data-path {tmp}/missing.txt: no such file"),
    (["fine-tune", "--model-path", "{model}", "--data-path", "{train}", "--save-path", "{model}"],
     "apt-fast fine-tune: error: --save-path {model} already holds a model; pass --overwrite to replace it, "
     "or --resume to continue its training"),
    (["fine-tune", "--model-path", "{model}", "--data-path", "{train}", "--freeze-decoder-layers", "9"],
     "apt-fast fine-tune: error: --freeze-decoder-layers is 9, but the model has 2 decoder layers"),
    (["fine-tune", "--model-path", "{model}", "--data-path", "{train}", "--freeze-encoder-layers", "-1"],
     "apt-fast fine-tune: error: argument --freeze-encoder-layers: must be an int >= 0, got -1 (see --help)"),
    (["fine-tune", "--model-path", "{model}", "--data-path", "{train}", "--epochs", "0"],
     "apt-fast fine-tune: error: argument --epochs: must be an int >= 1, got 0 (see --help)"),
    (["train", "--config", "{tmp}/nope.json", "--data-path", "{train}", "--max-length", "1"],
     "apt-fast train: error: argument --max-length: must be an int >= 2, got 1 (see --help)"),
    (["train", "--config", "{tmp}/nope.json", "--data-path", "{train}"],
     "apt-fast train: error: --config {tmp}/nope.json: no such file"),
    (["distill", "--teacher", "{model}", "--student", "{model}", "--student-config", "x", "--data-path", "{train}"],
     "argument --student-config: not allowed with argument --student"),
    (["evaluate", "--model-path", "{model}", "--data-path", "{tmp}/empty.txt"],
     "apt-fast evaluate: error: --data-path {tmp}/empty.txt: the file is empty (expected one sample per line)"),
])
def test_bad_input_gives_one_line_and_exit_code_2(tmp_path, train_file, tiny_model_dir, capsys, argv, message):
    (tmp_path / "empty.txt").write_text("")
    fill = {"tmp": str(tmp_path), "train": train_file, "model": tiny_model_dir}
    assert main([a.format(**fill) for a in argv]) == 2
    assert message.format(**fill) in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["generate", "--prompt", "abc"],
    ["evaluate", "--data-path", "{train}"],
    ["fine-tune", "--data-path", "{train}", "--save-path", "{tmp}/out"],
])
def test_model_without_tokenizer_is_the_one_line_error_alone(tmp_path, train_file, capsys, recwarn, command):
    from train_helpers import make_tiny_model

    from apt_fast.models.apt.loading import MissingTokenizerWarning
    from apt_fast.train.checkpointing import save_model

    model_path = str(tmp_path / "no-tokenizer")
    save_model(make_tiny_model()[0], model_path, tokenizer=None)
    argv = [command[0], "--model-path", model_path, *(a.format(train=train_file, tmp=tmp_path) for a in command[1:])]
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"apt-fast {command[0]}: error: --model-path {model_path}: the checkpoint has no tokenizer; save the model "
        f"with one"]
    assert [str(w.message) for w in recwarn if issubclass(w.category, MissingTokenizerWarning)] == []
