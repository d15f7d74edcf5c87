"""Upstream's ``APTModel.generate`` (APT_SPEC.md §3.5): re-decode the whole prefix at every step.

The attention statistics pool over all query rows, so no KV cache or incremental decoding can
reproduce upstream; every step runs the decoder on the full prefix and keeps the last position.

apt_fast additions: ``attention_mask`` (1 = token, 0 = padding, as tokenizers return it) replaces
upstream's ``input_ids == pad`` as the source padding, so ``model.generate(**tokenizer(texts))`` works;
``max_new_tokens`` is another name for ``max_length`` (upstream's counts the generated tokens only);
``num_beams`` > 1 is refused (upstream ignores it: there is no beam search); and a model whose weights
or logits are not finite raises :class:`~.weight_check.NonFiniteWeightsError` instead of sampling garbage.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .weight_check import check_finite_logits, check_finite_weights


def apply_repetition_penalty(
    logits: Tensor,  # [B, V]
    generated: Tensor,  # [B, L] tokens generated so far (no prompt, no BOS)
    penalty: float,
) -> Tensor:  # [B, V]
    """For each distinct token a row has generated: a logit > 0 is divided by ``penalty``, else multiplied."""
    seen = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, generated, True)
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def top_k_filter(logits: Tensor, k: int) -> Tensor:  # [B, V] -> [B, V]
    """Keep the logits >= the k-th largest of each row (ties kept); the rest become -inf."""
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[:, -1:]  # [B, 1]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:  # [B, V] -> [B, V]
    """Nucleus filter: drop tokens whose cumulative probability (sorted, descending) exceeds ``p``,
    shifted right by one so the most likely token is always kept."""
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cumulative = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
    remove_sorted = cumulative > p
    remove_sorted[:, 1:] = remove_sorted[:, :-1].clone()
    remove_sorted[:, 0] = False
    remove = torch.zeros_like(remove_sorted).scatter_(1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def _special_id(argument: int | None, config_value: int | None, fallback: int) -> int:
    if argument is not None:
        return argument
    return config_value if config_value is not None else fallback


def special_token_ids(config, eos_token_id: int | None = None, pad_token_id: int | None = None) -> tuple[int, int, int]:
    """(bos, eos, pad) as upstream's generate picks them: BOS from the config (else 2), EOS and PAD from the
    arguments, then the config, then 3 / 0."""
    return (_special_id(None, config.bos_token_id, 2), _special_id(eos_token_id, config.eos_token_id, 3),
            _special_id(pad_token_id, config.pad_token_id, 0))


def check_generate_arguments(input_ids: Tensor | None, attention_mask: Tensor | None, max_length: int | None,
                             max_new_tokens: int | None, num_beams: int | None) -> int:
    """Validate what upstream's signature does not say; returns the number of tokens to generate."""
    if input_ids is None:
        raise TypeError("generate() needs input_ids [B, S], the source token ids")
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
        raise ValueError(f"generate: attention_mask must have the shape of input_ids {list(input_ids.shape)}, "
                         f"got {list(attention_mask.shape)}")
    if max_length is not None and max_new_tokens is not None:
        raise TypeError("generate() got both max_length= and max_new_tokens=, which mean the same here (the number "
                        "of tokens to generate); pass one of them")
    if num_beams is not None and num_beams != 1:
        raise ValueError(f"generate: num_beams={num_beams!r} is not supported: APT has no beam search (upstream "
                         f"ignores num_beams); use do_sample=False for greedy decoding, or leave num_beams unset")
    return next((n for n in (max_length, max_new_tokens) if n is not None), 50)


@torch.no_grad()
def generate(
    model,
    input_ids: Tensor,  # [B, S] source token ids
    max_length: int = 50,
    temperature: float = 1.0,
    top_p: float = 0.9,
    top_k: int = 50,
    repetition_penalty: float = 1.0,
    do_sample: bool = True,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    attention_mask: Tensor | None = None,  # [B, S], 1 = token, 0 = padding; default input_ids != pad
) -> Tensor:  # [B, <= max_length] generated ids, BOS excluded
    """Sample or greedily decode up to ``max_length`` tokens after BOS (upstream semantics).

    BOS comes from the config (default 2 when unset), EOS and PAD from the arguments, then the config,
    then 3 / 0. Each step: repetition penalty on the generated tokens, division by
    max(temperature, 1e-5), PAD and UNK banned, then top-k, top-p and multinomial sampling, or argmax
    when ``do_sample`` is False. Stops early only when every row emits EOS at the same step; rows that
    finished earlier keep generating. The model runs in eval mode; its train mode is restored after.
    The weights are checked to be finite first, and each step's logits before they are filtered.
    """
    config = model.config
    bos, eos, pad = special_token_ids(config, eos_token_id, pad_token_id)
    unk = getattr(config, "unk_token_id", None)
    check_finite_weights(model)
    was_training = model.training
    model.eval()
    try:
        source_padding = input_ids == pad if attention_mask is None else attention_mask == 0  # [B, S]
        memory = model.encode(input_ids, src_key_padding_mask=source_padding)  # [B, S, D]
        tokens = torch.full((input_ids.shape[0], 1), bos, dtype=torch.long, device=input_ids.device)
        for step in range(1, max_length + 1):
            hidden = model.decode(tokens, memory, memory_key_padding_mask=source_padding)  # [B, L, D]
            logits = model.output_projection(hidden[:, -1])  # [B, V]
            check_finite_logits(model, logits, step)
            if repetition_penalty != 1.0 and tokens.shape[1] > 1:
                logits = apply_repetition_penalty(logits, tokens[:, 1:], repetition_penalty)
            logits = logits / max(temperature, 1e-5)
            logits[:, pad] = float("-inf")
            if unk is not None:
                logits[:, unk] = float("-inf")
            if do_sample:
                if top_k > 0:
                    logits = top_k_filter(logits, top_k)
                if 0.0 < top_p < 1.0:
                    logits = top_p_filter(logits, top_p)
                next_tokens = torch.multinomial(torch.softmax(logits, dim=-1), 1)  # [B, 1]
            else:
                next_tokens = logits.argmax(dim=-1, keepdim=True)  # [B, 1]
            tokens = torch.cat([tokens, next_tokens], dim=1)
            if bool((next_tokens == eos).all()):
                break
    finally:
        model.train(was_training)
    return tokens[:, 1:]
