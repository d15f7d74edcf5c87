"""Helpers of the pruning commands' tests: the tiny model, the printed sparsity table, PNG, weight and file checks."""

from __future__ import annotations

import os
import re

import torch

TINY = dict(d_model=32, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, d_ff=64, max_seq_len=24,
            dropout=0.0, use_dbc_dac=False)
# "  encoder_layers.0.linear1  64x32  1024/2048  50.00%  unstructured"
TABLE_ROW = re.compile(r"^\s+(?P<layer>[\w.]+)\s+(?P<rows>\d+)x(?P<cols>\d+)\s+(?P<kept>\d+)/(?P<total>\d+)\s+"
                       r"(?P<sparsity>[\d.]+)%\s+(?P<pattern>.+)$")


def tiny_model(**overrides):
    from apt_fast.models.apt import APTConfig, APTModel
    from apt_fast.models.apt.tokenization_byte import APTByteTokenizer

    tokenizer = APTByteTokenizer()
    torch.manual_seed(0)
    config = APTConfig(vocab_size=tokenizer.vocab_size, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                       **{**TINY, **overrides})
    return APTModel(config).eval(), tokenizer


def png_size(path) -> tuple[int, int]:
    """(width, height) of a PNG file, after checking that Pillow decodes it whole."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


def linear_weights(model) -> dict:
    """path -> weight of every nn.Linear but the output projection tied to the embedding."""
    return {name: module.weight.detach() for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name != "output_projection"}


def load_linear_weights(path) -> dict:
    """apt_fast.load(path)'s :func:`linear_weights`."""
    import apt_fast

    return linear_weights(apt_fast.load(path)[0])


def sparsity_table(lines) -> dict:
    """layer -> (kept, total, sparsity in %, pattern) of the per-layer sparsity table in printed ``lines``."""
    rows = {}
    for line in lines:
        match = TABLE_ROW.match(line)
        if match:
            rows[match["layer"]] = (int(match["kept"]), int(match["total"]), float(match["sparsity"]),
                                    match["pattern"])
    return rows


def zero_share(weight: torch.Tensor) -> float:
    return float((weight == 0).sum()) / weight.numel()


def file_states(*roots) -> dict:
    """path -> (bytes, mtime in ns) of every file under ``roots`` (a missing root has none)."""
    states = {}
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    states[path] = (f.read(), os.stat(path).st_mtime_ns)
    return states
