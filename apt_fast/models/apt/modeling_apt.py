"""APTModel: the Autopoietic Transformer encoder-decoder as a transformers PreTrainedModel (spec §3)."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from ...atomic import process_umask
from . import generation, hub
from .attention import AutopoieticAttention
from .configuration_apt import APTConfig
from .forward_inputs import resolve_forward_inputs
from .gradient_hooks import add_gradient_hooks
from .hf_sparsity import refuse_for_transformers
from .labels import seq2seq_loss
from .layers import APTDecoderLayer, APTEncoderLayer, PositionalEncoding, sinusoidal_table
from .model_card import CARD_FILE, may_write_card, model_card
from .pretrained_checks import check_config_matches_weights, check_loading_info
from .tokenization_apt import load_tokenizer
from .tokenization_base import TOKENIZER_CONFIG
from .tokenization_char import VOCAB_FILE


@dataclass
class APTModelOutput(ModelOutput):
    """``forward(..., return_dict=True)`` (or with ``labels``): upstream's dict {logits, encoder_output,
    decoder_output}, with the ``loss`` first when labels were given (as Seq2SeqLMOutput has it)."""

    loss: Tensor | None = None  # [] mean cross-entropy against labels
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
    main_input_name = "input_ids"
    _no_split_modules = ["APTEncoderLayer", "APTDecoderLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Upstream init: xavier_uniform / zero bias in the attention, N(0, 0.02) embedding with a zero
        pad row, torch's defaults elsewhere. Uses transformers' guarded init so loaded weights are kept."""
        if isinstance(module, AutopoieticAttention):
            for layer in (module.q_proj, module.k_proj, module.v_proj, module.out_proj,
                          module.sr_conv1, module.sr_conv2):
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

    ``model.tokenizer`` is the tokenizer the model was loaded with (``apt_fast.load``, ``from_pretrained``
    of a directory holding one), else None; ``save_pretrained`` / ``apt_fast.save`` / ``push_to_hub``
    save it unless given another with ``tokenizer=``. Set it to attach one.
    """

    _tied_weights_keys = {"output_projection.weight": "token_embedding.weight"}
    # apt_fast.pruning's masks, saved next to their weights (zeros where pruned): the weights load without them
    _keys_to_ignore_on_load_unexpected = [r"\.weight_mask$"]
    tokenizer = None

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
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """transformers' from_pretrained, refusing weights that do not fit the config (a CheckpointError
        naming the field and both values, where transformers would re-initialise them at random); the
        DBC-DAC hooks are re-registered on the loaded Parameters and a local directory's tokenizer is
        attached as ``model.tokenizer``."""
        refuse_for_transformers(pretrained_model_name_or_path, kwargs)
        check_config_matches_weights(pretrained_model_name_or_path, kwargs, cls.config_class.__dataclass_fields__)
        wants_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs)
        check_loading_info(pretrained_model_name_or_path, info)
        model._add_gradient_hooks()
        model.tokenizer = _local_tokenizer(pretrained_model_name_or_path, kwargs.get("subfolder") or "")
        return (model, info) if wants_info else model

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
        memory_key_padding_mask: Tensor | None = None,  # [B, S]; defaults to the encoder padding mask
        return_dict: bool | None = None,
        query: Tensor | None = None,
        key: Tensor | None = None,
        value: Tensor | None = None,
        attn_mask: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        input_ids: Tensor | None = None,  # [B, S]
        decoder_input_ids: Tensor | None = None,  # [B, T]
        attention_mask: Tensor | None = None,  # [B, S], 1 = token, 0 = padding
        decoder_attention_mask: Tensor | None = None,  # [B, T], 1 = token, 0 = padding
        labels: Tensor | None = None,  # [B, T], -100 = ignored
    ) -> Tensor | tuple[Tensor, Tensor] | APTModelOutput:  # logits [B, T, V]
        """Upstream's forward: encode, decode, tied output projection; plus Hugging Face's names.

        Upstream's aliases (``query``, ``key``, ``value``, ``attn_mask``, ``key_padding_mask``) and
        Hugging Face's (``input_ids``, ``decoder_input_ids``, ``attention_mask``,
        ``decoder_attention_mask``, ``labels``) are resolved by
        :func:`~apt_fast.models.apt.forward_inputs.resolve_forward_inputs`; one input given under two
        names, or any keyword not listed here, is a TypeError (upstream silently ignored unknown ones).
        ``attention_mask`` is honoured as ``src_key_padding_mask = attention_mask == 0``.

        ``labels``: the decoder inputs default to the labels shifted right after BOS, and the mean
        cross-entropy over labels != -100 is returned as ``loss`` (:mod:`.labels`).

        Returns upstream's logits tensor; an :class:`APTModelOutput` with ``return_dict=True`` or when
        ``labels`` are given (unless ``return_dict=False``, which gives ``(loss, logits)``).

        **Every supplied mask is converted to bool** (upstream), so a float 0/-inf mask turns into +1 at
        the masked cells (attention is *favoured* there); leave ``tgt_mask=None`` for a causal decoder.
        """
        inputs = resolve_forward_inputs(
            self.config, src_tokens=src_tokens, tgt_tokens=tgt_tokens, src_mask=src_mask, tgt_mask=tgt_mask,
            memory_mask=memory_mask, src_key_padding_mask=src_key_padding_mask,
            tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask, query=query,
            key=key, value=value, attn_mask=attn_mask, key_padding_mask=key_padding_mask, input_ids=input_ids,
            decoder_input_ids=decoder_input_ids, attention_mask=attention_mask,
            decoder_attention_mask=decoder_attention_mask, labels=labels,
        )
        memory = self.encode(inputs.src_tokens, _as_bool(inputs.src_mask), _as_bool(inputs.src_key_padding_mask))
        decoder_output = self.decode(
            inputs.tgt_tokens,
            memory,
            tgt_mask=_as_bool(inputs.tgt_mask),
            memory_mask=_as_bool(inputs.memory_mask),
            tgt_key_padding_mask=_as_bool(inputs.tgt_key_padding_mask),
            memory_key_padding_mask=_as_bool(inputs.memory_key_padding_mask),
        )
        logits = self.output_projection(decoder_output)
        loss = None if labels is None else seq2seq_loss(logits, labels)
        if return_dict or (return_dict is None and loss is not None):
            return APTModelOutput(loss=loss, logits=logits, encoder_output=memory, decoder_output=decoder_output)
        return logits if loss is None else (loss, logits)

    def generate(
        self,
        input_ids: Tensor | None = None,  # [B, S]
        max_length: int | None = None,  # tokens to generate (default 50); BOS not counted
        temperature: float = 1.0,
        top_p: float = 0.9,
        top_k: int = 50,
        repetition_penalty: float = 1.0,
        do_sample: bool = True,
        num_beams: int | None = None,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        attention_mask: Tensor | None = None,  # [B, S], 1 = token, 0 = padding
        max_new_tokens: int | None = None,  # another name for max_length
    ) -> Tensor:  # [B, <= max_length]
        """Upstream's generate (see :func:`apt_fast.models.apt.generation.generate`), also callable as
        ``model.generate(**tokenizer(texts))``: ``attention_mask`` gives the source padding. ``num_beams``
        other than None or 1 is a ValueError (there is no beam search); a model whose weights or logits
        are not finite raises NonFiniteWeightsError naming them."""
        max_length = generation.check_generate_arguments(
            input_ids, attention_mask, max_length, max_new_tokens, num_beams
        )
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
            attention_mask=attention_mask,
        )

    def save_pretrained(self, save_directory: str | os.PathLike, *, tokenizer=None, push_to_hub: bool = False,
                        **kwargs) -> None:
        """transformers' save_pretrained (safetensors, tied weights once, config.json), plus the tokenizer
        (``tokenizer``, else ``self.tokenizer``, if any) and the model card README.md (unless the directory
        holds a README.md apt_fast did not write), all made atomic: files are written to a temporary folder
        inside ``save_directory`` and moved with os.replace, with the mode open() would give them
        (safetensors writes 0600). ``push_to_hub=True`` then uploads with :meth:`push_to_hub` (``repo_id``
        defaults to the directory's name; ``commit_message``, ``private``, ``token``, ``revision``,
        ``create_pr``, ``commit_description`` are passed on)."""
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        hub_kwargs = {name: kwargs.pop(name) for name in _PUSH_KWARGS if name in kwargs}
        os.makedirs(save_directory, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".tmp-save-", dir=save_directory)
        mode = 0o666 & ~process_umask()
        try:
            super().save_pretrained(staging, **kwargs)
            if tokenizer is not None:
                tokenizer.save_pretrained(staging)
            if may_write_card(os.fspath(save_directory)):
                with open(os.path.join(staging, CARD_FILE), "w", encoding="utf-8") as f:
                    f.write(model_card(self, tokenizer))
            for name in os.listdir(staging):
                os.chmod(os.path.join(staging, name), mode)
                os.replace(os.path.join(staging, name), os.path.join(save_directory, name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if push_to_hub:
            repo_id = hub_kwargs.pop("repo_id", None) or os.path.basename(os.path.abspath(save_directory))
            self.push_to_hub(repo_id, tokenizer=tokenizer, **hub_kwargs)

    def push_to_hub(self, repo_id: str, *, tokenizer=None, commit_message: str | None = None,
                    commit_description: str | None = None, private: bool | None = None,
                    token: bool | str | None = None, revision: str | None = None, create_pr: bool = False,
                    max_shard_size: int | str | None = "50GB"):
        """Upload the weights, config, tokenizer (``tokenizer``, else ``self.tokenizer``) and model card to
        ``repo_id`` in one commit (:mod:`.hub`). A hand-written README.md already on the Hub is kept.
        Without a connection: ``HubUnreachableError: push_to_hub: cannot reach the Hugging Face Hub
        (offline?): ...``."""
        return hub.push_to_hub(self, repo_id, tokenizer=tokenizer, commit_message=commit_message,
                               commit_description=commit_description, private=private, token=token,
                               revision=revision, create_pr=create_pr, max_shard_size=max_shard_size)


_PUSH_KWARGS = ("repo_id", "commit_message", "commit_description", "private", "token", "revision", "create_pr")


def _local_tokenizer(path, subfolder: str):
    """The tokenizer saved in a local checkpoint directory, or None (with a warning when one is there but
    apt_fast cannot read it: the model still loads)."""
    if not isinstance(path, (str, os.PathLike)):
        return None
    directory = os.path.join(os.fspath(path), subfolder) if subfolder else os.fspath(path)
    if not any(os.path.exists(os.path.join(directory, f)) for f in (TOKENIZER_CONFIG, VOCAB_FILE)):
        return None
    try:
        return load_tokenizer(directory)
    except (OSError, ValueError, KeyError) as err:
        warnings.warn(f"APTModel.from_pretrained: the tokenizer files in {directory} cannot be read by apt_fast "
                      f"({err}); model.tokenizer is None", stacklevel=3)
        return None
