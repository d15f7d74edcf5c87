"""APTModel: the Autopoietic Transformer encoder-decoder as a transformers PreTrainedModel (spec §3)."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from ...atomic import process_umask
from . import generation
from .attention import AutopoieticAttention
from .configuration_apt import APTConfig
from .gradient_hooks import add_gradient_hooks
from .layers import APTDecoderLayer, APTEncoderLayer, PositionalEncoding, sinusoidal_table


@dataclass
class APTModelOutput(ModelOutput):
    """``forward(..., return_dict=True)``: upstream's dict {logits, encoder_output, decoder_output}."""

    logits: Tensor | None = None  # [B, T, V]
    encoder_output: Tensor | None = None  # [B, S, D] memory (after encoder_norm)
    decoder_output: Tensor | None = None  # [B, T, D] (after decoder_norm)


def causal_mask(length: int, device=None) -> Tensor:  # [T, T] float32
    """Upstream's automatic decoder mask: 0 on and below the diagonal, -inf above (the only causal path)."""
    return torch.triu(torch.full((length, length), float("-inf"), device=device), diagonal=1)


def _as_bool(mask: Tensor | None) -> Tensor | None:
    return None if mask is None else mask.to(torch.bool)


class APTPreTrainedModel(PreTrainedModel):
    """Weight init and transformers plumbing shared by APT models."""

    config_class = APTConfig
    base_model_prefix = "apt"
    main_input_name = "src_tokens"
    _no_split_modules = ["APTEncoderLayer", "APTDecoderLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Upstream init: xavier_uniform / zero bias in the attention, N(0, 0.02) embedding with a zero
        pad row, torch's defaults elsewhere. Uses transformers' guarded init so loaded weights are kept."""
        if isinstance(module, AutopoieticAttention):
            for layer in (module.q_proj, module.k_proj, module.v_proj, module.out_proj, module.sr_conv1, module.sr_conv2):
                init.xavier_uniform_(layer.weight)
                init.zeros_(layer.bias)
            init.constant_(module.tau, module.init_tau)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=0.02)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.in_features)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, PositionalEncoding):
            init.copy_(module.pe, sinusoidal_table(module.pe.shape[1], module.pe.shape[2]))


class APTModel(APTPreTrainedModel):
    """The APT encoder-decoder with upstream's state_dict (keys, shapes and order; spec §7).

    ``output_projection.weight`` is the embedding Parameter (tied, no bias) unless the config sets
    ``tie_word_embeddings=False``. ``positional_encoding.pe`` is a persistent buffer. With
    ``config.use_dbc_dac`` every trainable parameter gets upstream's gradient hook (spec §4); with
    ``config.taylor_parameters`` the model also carries APTLargeModel's ``taylor_epsilon`` /
    ``taylor_alpha`` (first in the state_dict, unused in forward, no hook).
    """

    _tied_weights_keys = {"output_projection.weight": "token_embedding.weight"}

    def __init__(self, config: APTConfig):
        super().__init__(config)
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.positional_encoding = PositionalEncoding(config.d_model, config.max_seq_len, config.dropout)
        self.encoder_layers = nn.ModuleList(APTEncoderLayer(config) for _ in range(config.num_encoder_layers))
        self.decoder_layers = nn.ModuleList(APTDecoderLayer(config) for _ in range(config.num_decoder_layers))
        self.encoder_norm = nn.LayerNorm(config.d_model)
        self.decoder_norm = nn.LayerNorm(config.d_model)
        self.output_projection = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()
        self._add_gradient_hooks()
        if config.taylor_parameters:
            self.taylor_epsilon = nn.Parameter(torch.tensor(float(config.epsilon)))
            self.taylor_alpha = nn.Parameter(torch.tensor(float(config.alpha)))

    def _add_gradient_hooks(self) -> None:
        if not self.config.use_dbc_dac:
            self.num_gradient_hooks = 0
            return
        params = (p for name, p in self.named_parameters() if not name.startswith("taylor_"))
        self.num_gradient_hooks = add_gradient_hooks(params, self.config)

    @classmethod
    def from_pretrained(cls, *args, **kwargs) -> APTModel:
        """transformers' from_pretrained; the DBC-DAC hooks are re-registered on the loaded Parameters."""
        model = super().from_pretrained(*args, **kwargs)
        model._add_gradient_hooks()
        return model

    def get_input_embeddings(self) -> nn.Embedding:
        return self.token_embedding

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.token_embedding = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.output_projection

    def _embed(self, tokens: Tensor) -> Tensor:  # [B, L] -> [B, L, D]
        return self.positional_encoding(self.token_embedding(tokens))

    def encode(
        self,
        src_tokens: Tensor,  # [B, S]
        src_mask: Tensor | None = None,  # [S, S] | [B, S, S]; float added as is, bool adds +1 where True
        src_key_padding_mask: Tensor | None = None,  # [B, S] bool, True = pad (not converted here)
    ) -> Tensor:  # [B, S, D] memory
        """Run the encoder stack and the final ``encoder_norm``; masks are used as given."""
        x = self._embed(src_tokens)
        for layer in self.encoder_layers:
            x = layer(x, src_mask=src_mask, src_key_padding_mask=src_key_padding_mask)
        return self.encoder_norm(x)

    def decode(
        self,
        tgt_tokens: Tensor,  # [B, T]
        memory: Tensor,  # [B, S, D]
        tgt_mask: Tensor | None = None,  # [T, T] | [B, T, T]; None builds the float causal mask
        memory_mask: Tensor | None = None,  # [T, S] | [B, T, S]
        tgt_key_padding_mask: Tensor | None = None,  # [B, T] bool
        memory_key_padding_mask: Tensor | None = None,  # [B, S] bool
    ) -> Tensor:  # [B, T, D] decoder output (after decoder_norm)
        """Run the decoder stack. With ``tgt_mask=None`` the float32 0/-inf causal mask is built here,
        which is the only causal path (an explicit mask passed to ``forward`` becomes bool)."""
        if tgt_mask is None:
            tgt_mask = causal_mask(tgt_tokens.shape[1], device=tgt_tokens.device)
        y = self._embed(tgt_tokens)
        for layer in self.decoder_layers:
            y = layer(
                y,
                memory,
                tgt_mask=tgt_mask,
                memory_mask=memory_mask,
                tgt_key_padding_mask=tgt_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
            )
        return self.decoder_norm(y)

    def forward(
        self,
        src_tokens: Tensor | None = None,  # [B, S]
        tgt_tokens: Tensor | None = None,  # [B, T]; defaults to src_tokens
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,  # [B, S]
        tgt_key_padding_mask: Tensor | None = None,  # [B, T]
        memory_key_padding_mask: Tensor | None = None,  # [B, S]; defaults to src_key_padding_mask
        return_dict: bool = False,
        query: Tensor | None = None,
        key: Tensor | None = None,
        value: Tensor | None = None,
        attn_mask: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        input_ids: Tensor | None = None,
        decoder_input_ids: Tensor | None = None,
        **kwargs,
    ) -> Tensor | APTModelOutput:  # logits [B, T, V]
        """Upstream's forward: encode, decode, tied output projection.

        Aliases (upstream): ``query`` → src_tokens, ``key`` → tgt_tokens, ``attn_mask`` → src_mask,
        ``key_padding_mask`` → src_key_padding_mask (``value`` and unknown keyword arguments are ignored,
        as upstream does); apt_fast adds ``input_ids`` / ``decoder_input_ids``. **Every supplied mask is
        converted to bool**, so a float 0/-inf mask turns into +1 at the masked cells (attention is
        *favoured* there); leave ``tgt_mask=None`` for a causal decoder.
        """
        src_tokens = next(t for t in (src_tokens, query, input_ids) if t is not None)
        tgt_tokens = next((t for t in (tgt_tokens, key, decoder_input_ids) if t is not None), src_tokens)
        src_mask = src_mask if src_mask is not None else attn_mask
        if src_key_padding_mask is None:
            src_key_padding_mask = key_padding_mask
        if memory_key_padding_mask is None:
            memory_key_padding_mask = src_key_padding_mask
        memory = self.encode(src_tokens, _as_bool(src_mask), _as_bool(src_key_padding_mask))
        decoder_output = self.decode(
            tgt_tokens,
            memory,
            tgt_mask=_as_bool(tgt_mask),
            memory_mask=_as_bool(memory_mask),
            tgt_key_padding_mask=_as_bool(tgt_key_padding_mask),
            memory_key_padding_mask=_as_bool(memory_key_padding_mask),
        )
        logits = self.output_projection(decoder_output)
        if return_dict:
            return APTModelOutput(logits=logits, encoder_output=memory, decoder_output=decoder_output)
        return logits

    def generate(
        self,
        input_ids: Tensor,  # [B, S]
        max_length: int = 50,
        temperature: float = 1.0,
        top_p: float = 0.9,
        top_k: int = 50,
        repetition_penalty: float = 1.0,
        do_sample: bool = True,
        num_beams: int | None = None,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
    ) -> Tensor:  # [B, <= max_length]
        """Upstream's generate (see :func:`apt_fast.models.apt.generation.generate`); ``num_beams`` is ignored."""
        return generation.generate(
            self,
            input_ids,
            max_length=max_length,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            repetition_penalty=repetition_penalty,
            do_sample=do_sample,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
        )

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """transformers' save_pretrained (safetensors, tied weights once, config.json), made atomic:
        files are written to a temporary folder inside ``save_directory`` and moved with os.replace, with the
        mode open() would give them (safetensors writes 0600)."""
        os.makedirs(save_directory, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".tmp-save-", dir=save_directory)
        mode = 0o666 & ~process_umask()
        try:
            super().save_pretrained(staging, **kwargs)
            for name in os.listdir(staging):
                os.chmod(os.path.join(staging, name), mode)
                os.replace(os.path.join(staging, name), os.path.join(save_directory, name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
