"""The model card (README.md) that every save writes next to the weights, and the Hub upload carries.

The card says what the model is (its config in short, its size, its quantization, its tokenizer) and how to
load it with apt_fast and, unless it is quantized, with transformers. It is rewritten on every save, unless the
directory holds a README.md that apt_fast did not write (it lacks :data:`MARKER`): a hand-written card is never
replaced.
"""

from __future__ import annotations

import os

from ...modules.quantized_linear import QuantizedLinear

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


def _quantization(model) -> tuple[str, int] | None:
    """(what the quantization_config says, in short; weights in quantized layers), or None."""
    entry = getattr(model.config, "quantization_config", None)
    if not entry:
        return None
    settings = {k: v for k, v in entry.items() if k not in ("quant_method", "scheme", "modules", "include_embedding")}
    shown = ", ".join(f"{k} {'per output channel' if v is None else v}" for k, v in settings.items())
    embedding = ", the tied embedding too" if entry.get("include_embedding") else ""
    text = f"{entry['scheme']} ({shown}): {len(entry.get('modules', []))} linear layers{embedding}"
    return text, sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, QuantizedLinear))


def _transformers_section(quantized: bool, tokenizer) -> str:
    if quantized:
        return ("transformers' `from_pretrained` cannot build apt_fast's quantized layers and refuses this directory "
                "with a message pointing to `apt_fast.load`.")
    auto_tokenizer = ""
    if tokenizer is not None:
        auto_tokenizer = '\ntokenizer = AutoTokenizer.from_pretrained("path/to/this/directory")'
    return f"""With transformers (`import apt_fast` registers model_type `apt` with its Auto classes):

```python
import apt_fast  # noqa: F401
from transformers import AutoModelForSeq2SeqLM{", AutoTokenizer" if tokenizer is not None else ""}

model = AutoModelForSeq2SeqLM.from_pretrained("path/to/this/directory"){auto_tokenizer}
```"""


def model_card(model, tokenizer) -> str:
    """The card's Markdown for ``model`` (an APTModel) saved with ``tokenizer`` (or None)."""
    c = model.config
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    quantization = _quantization(model)
    parameters = sum(p.numel() for p in model.parameters()) + (quantization[1] if quantization else 0)
    if quantization:
        dtype += f"; {quantization[1]:,} of them in quantized layers"
    if tokenizer is None:
        tokenizer_line = ("No tokenizer is saved with this model: `apt_fast.load` returns `tokenizer=None` "
                          "(save with `model.save_pretrained(path, tokenizer=tok)`).")
    else:
        tokenizer_line = (f"Tokenizer: `{type(tokenizer).__name__}` (vocabulary size {tokenizer.vocab_size}), "
                          "saved alongside.")
    rows = [
        ("parameters", f"{parameters:,} ({dtype})"),
        ("vocab_size", c.vocab_size), ("d_model", c.d_model), ("num_heads", c.num_heads),
        ("encoder / decoder layers", f"{c.num_encoder_layers} / {c.num_decoder_layers}"), ("d_ff", c.d_ff),
        ("max_seq_len", c.max_seq_len), ("activation", c.activation), ("epsilon", c.epsilon),
        ("use_autopoietic", c.use_autopoietic), ("tied input/output embeddings", c.tie_word_embeddings),
        ("pad / bos / eos ids", f"{c.pad_token_id} / {c.bos_token_id} / {c.eos_token_id}"),
    ]
    if quantization:
        rows.append(("quantization (apt_fast)", quantization[0]))
    weights = ("`model.safetensors` (tied weights stored once; each quantized layer as its 8-bit codes `qweight` and "
               "float32 `scales`)" if quantization else "`model.safetensors` (tied weights stored once)")
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    if tokenizer is None:
        apt_fast_use = 'model, _ = apt_fast.load("path/to/this/directory")'
    else:
        apt_fast_use = ('model, tokenizer = apt_fast.load("path/to/this/directory")\n'
                        'ids = model.generate(**tokenizer(["hello"], return_tensors="pt"), '
                        'max_new_tokens=32, do_sample=False)\n'
                        'print(tokenizer.decode(ids[0]))')
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

An APT ("Autopoietic Transformer") encoder-decoder, saved by apt_fast: `config.json` (model_type `apt`) and
{weights}.

| field | value |
| --- | --- |
{table}

{tokenizer_line}

## Loading

```python
import apt_fast

{apt_fast_use}
```

{_transformers_section(quantization is not None, tokenizer)}

`generate` samples (or decodes greedily with `do_sample=False`); there is no beam search.
"""
