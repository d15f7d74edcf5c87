"""The upstream golden cases (tests/data/golden/apt/README.md): loading a case and upstream's training procedure."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "golden" / "apt"
CASES = json.loads((GOLDEN_DIR / "index.json").read_text())


def load_case(name: str, dtype=torch.float32):
    """(the case's tensors, the model with its weights in `dtype`, the forward's inputs)."""
    from apt_fast.models.apt import APTConfig, APTModel

    data = load_file(GOLDEN_DIR / f"{name}.safetensors")
    model = APTModel(APTConfig(**CASES[name]["config"]))
    model.load_state_dict({k[len("weight."):]: v for k, v in data.items() if k.startswith("weight.")}, strict=True)
    inputs = {"src_tokens": data["input.src_tokens"], "tgt_tokens": data["input.tgt_tokens"]}
    if "input.src_key_padding_mask" in data:
        inputs["src_key_padding_mask"] = data["input.src_key_padding_mask"]
    return data, model.to(dtype), inputs


def train_grads(model, inputs):
    """Upstream's golden procedure: train mode (dropout 0), unshifted CE on the logits, backward."""
    model.train()
    logits = model(**inputs)  # [B, T, V]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), inputs["tgt_tokens"].reshape(-1))
    loss.backward()
    return loss, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
