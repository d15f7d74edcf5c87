"""What the APT model decoding cases share: the model shape (D=1024, 4+4 layers, 16 heads, d_ff 4096, vocab 32000:
about 600 MB in fp32), the 32-token prompt, greedy generation of a fixed number of tokens (APT re-decodes the whole
prefix at every step, so the decoder's M grows from 1 to the number of tokens), and the agreement of two greedy
generations."""

from __future__ import annotations

import torch

PROMPT, NEW_TOKENS = 32, 64
SHAPE = dict(vocab_size=32000, d_model=1024, num_encoder_layers=4, num_decoder_layers=4, num_heads=16, d_ff=4096,
             max_seq_len=256, dropout=0.0, bos_token_id=1, eos_token_id=2, pad_token_id=0)
SHAPE_LABEL = "D=1024, 4+4 layers, d_ff 4096, V=32000"


def model():
    """A fresh fp32 APT model of SHAPE in eval mode, the same weights every time (seed 0)."""
    from ...models.apt import APTConfig, APTModel

    torch.manual_seed(0)
    return APTModel(APTConfig(**SHAPE)).eval()


def prompt() -> torch.Tensor:  # [1, PROMPT] token ids
    return torch.randint(3, SHAPE["vocab_size"], (1, PROMPT), generator=torch.Generator().manual_seed(1))


def generate_tokens(model, prompt: torch.Tensor, tokens: int = NEW_TOKENS) -> torch.Tensor:  # [1, tokens]
    with torch.no_grad():  # eos -1: never stops early, both sides decode exactly `tokens` steps
        return model.generate(prompt, max_length=tokens, do_sample=False, eos_token_id=-1)


def agreement(baseline: torch.Tensor, candidate: torch.Tensor) -> dict:
    """How far two greedy generations agree: equal tokens and the length of the common prefix."""
    if baseline.shape != candidate.shape:
        raise AssertionError(f"generations of different shapes: {tuple(baseline.shape)} vs {tuple(candidate.shape)}")
    same = (baseline == candidate).reshape(-1)
    prefix = int(same.long().cumprod(0).sum())
    return {"greedy_tokens_equal": f"{int(same.sum())}/{same.numel()}", "greedy_common_prefix": prefix}
