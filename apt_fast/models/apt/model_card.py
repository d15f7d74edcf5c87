"""The model card (README.md) that every save writes next to the weights, and the Hub upload carries.

The card says what the model is (its config in short, its size, its tokenizer) and how to load it with
apt_fast and with transformers. It is rewritten on every save, unless the directory holds a README.md that
apt_fast did not write (it lacks :data:`MARKER`): a hand-written card is never replaced.
"""

from __future__ import annotations

import os

CARD_FILE = "README.md"
MARKER = "<!-- apt_fast model card: rewritten on every save; delete this line to keep your own edits -->"


def is_apt_fast_card(text: str) -> bool:
    return MARKER in text


def may_write_card(directory: str) -> bool:
    """No README.md in ``directory``, or one that apt_fast wrote."""
    path = os.path.join(directory, CARD_FILE)
    if not os.path.exists(path):
        return True
    with open(path, encoding="utf-8", errors="replace") as f:
        return is_apt_fast_card(f.read())


def model_card(model, tokenizer) -> str:
    """The card's Markdown for ``model`` (an APTModel) saved with ``tokenizer`` (or None)."""
    c = model.config
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    parameters = sum(p.numel() for p in model.parameters())
    if tokenizer is None:
        tokenizer_line = ("No tokenizer is saved with this model: `apt_fast.load` returns `tokenizer=None` "
                          "(save with `model.save_pretrained(path, tokenizer=tok)`).")
    else:
        tokenizer_line = f"Tokenizer: `{type(tokenizer).__name__}` (vocabulary size {tokenizer.vocab_size}), saved alongside."
    rows = [
        ("parameters", f"{parameters:,} ({dtype})"),
        ("vocab_size", c.vocab_size), ("d_model", c.d_model), ("num_heads", c.num_heads),
        ("encoder / decoder layers", f"{c.num_encoder_layers} / {c.num_decoder_layers}"), ("d_ff", c.d_ff),
        ("max_seq_len", c.max_seq_len), ("activation", c.activation), ("epsilon", c.epsilon),
        ("use_autopoietic", c.use_autopoietic), ("tied input/output embeddings", c.tie_word_embeddings),
        ("pad / bos / eos ids", f"{c.pad_token_id} / {c.bos_token_id} / {c.eos_token_id}"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    if tokenizer is None:
        apt_fast_use, auto_tokenizer = 'model, _ = apt_fast.load("path/to/this/directory")', ""
    else:
        apt_fast_use = ('model, tokenizer = apt_fast.load("path/to/this/directory")\n'
                        'ids = model.generate(**tokenizer(["hello"], return_tensors="pt"), max_new_tokens=32, do_sample=False)\n'
                        'print(tokenizer.decode(ids[0]))')
        auto_tokenizer = '\ntokenizer = AutoTokenizer.from_pretrained("path/to/this/directory")'
    return f"""---
library_name: apt_fast
pipeline_tag: text2text-generation
tags:
- apt
- autopoietic-transformer
- encoder-decoder
---
{MARKER}

# APT model

An APT ("Autopoietic Transformer") encoder-decoder, saved by apt_fast: `model.safetensors` (tied
weights stored once) and `config.json` (model_type `apt`).

| field | value |
| --- | --- |
{table}

{tokenizer_line}

## Loading

```python
import apt_fast

{apt_fast_use}
```

With transformers (`import apt_fast` registers model_type `apt` with its Auto classes):

```python
import apt_fast  # noqa: F401
from transformers import AutoModelForSeq2SeqLM{", AutoTokenizer" if tokenizer is not None else ""}

model = AutoModelForSeq2SeqLM.from_pretrained("path/to/this/directory"){auto_tokenizer}
```

`generate` samples (or decodes greedily with `do_sample=False`); there is no beam search.
"""
