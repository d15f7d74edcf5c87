"""Modelfile pieces: the Go template from a Jinja chat template, and the stop tokens."""

from __future__ import annotations

import json

from apt_fast.export.ollama import PLAIN_TEMPLATE, ollama_template, stop_tokens

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_chat_template_becomes_a_go_template():
    template = ollama_template(CHATML)
    assert template == ("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n<|im_start|>user\n{{ .Prompt }}"
                        "<|im_end|>\n<|im_start|>assistant\n{{ else }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n"
                        "<|im_start|>assistant\n{{ end }}")
    assert ollama_template(None) == PLAIN_TEMPLATE
    assert ollama_template("{{ raise_me(") == PLAIN_TEMPLATE  # not renderable: the plain template


def test_stop_tokens_cover_every_end_of_generation_token(tmp_path, model):
    from transformers import GPT2Tokenizer

    vocab = {"<|endoftext|>": 0, "a": 1, "b": 2, "<|im_end|>": 3}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = GPT2Tokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    model.config.eos_token_id = 2  # the model's own EOS differs from the tokenizer's
    assert stop_tokens(tokenizer, model.config) == ["<|endoftext|>", "b", "<|im_end|>"]
