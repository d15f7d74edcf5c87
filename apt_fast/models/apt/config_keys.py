"""Keyword arguments of APTConfig that are not its fields: which are known, which are errors, which warn.

An unknown key used to be kept as an attribute that nothing reads, so ``{"num_layers": 1}`` silently built
the default 12+12-layer model. Now, for a key that is not an APTConfig field:

* **known** — transformers' own config keys (those of v4 and v5 config.json files and the constructor's
  extra arguments), the ``attribute_map`` aliases (``hidden_size``, ``num_attention_heads``) and upstream
  APTConfig's trainer fields (warmup_steps, ..., APT_SPEC.md §1, inert here) and apt_fast's own entries
  (``sparsity_config``): accepted as before;
* **a misspelling of a field** — another model's name for it (``num_layers``, ``n_heads``, ``ffn_dim``, ...)
  or a near miss (``num_head``): ValueError naming the key and the field(s) meant, since the intended
  value would otherwise be ignored;
* **anything else**: accepted as an attribute with a :class:`UnknownConfigKeyWarning` saying no APT code
  reads it.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable

# transformers' config keys: v4 PretrainedConfig attributes and generation defaults, v5 constructor arguments.
TRANSFORMERS_KEYS = frozenset({
    "_attn_implementation_autoset", "_attn_implementation_internal", "_commit_hash", "_experts_implementation_internal",
    "_name_or_path", "add_cross_attention", "architectures", "assistant_confidence_threshold", "assistant_lookbehind",
    "attn_implementation", "bad_words_ids", "begin_suppress_tokens", "chunk_size_feed_forward",
    "cross_attention_hidden_size", "decoder_start_token_id", "diversity_penalty", "do_sample", "dtype",
    "early_stopping", "encoder_no_repeat_ngram_size", "encoder_repetition_penalty", "epsilon_cutoff", "eta_cutoff",
    "experts_implementation", "exponential_decay_length_penalty", "finetuning_task", "forced_bos_token_id",
    "forced_eos_token_id", "gradient_checkpointing", "id2label", "is_decoder", "is_encoder_decoder", "label2id",
    "length_penalty", "max_length", "min_length", "model_type", "name_or_path", "no_repeat_ngram_size",
    "num_assistant_tokens", "num_assistant_tokens_schedule", "num_beam_groups", "num_beams", "num_labels",
    "num_return_sequences", "output_attentions", "output_hidden_states", "output_scores", "per_layer_config",
    "prefix", "problem_type", "pruned_heads", "quantization_config",
    "remove_invalid_values", "repetition_penalty", "return_dict",
    "return_dict_in_generate", "sep_token_id", "suppress_tokens", "target_lookbehind", "task_specific_params",
    "temperature", "tf_legacy_loss", "tie_encoder_decoder", "tokenizer_class", "top_k", "top_p", "torch_dtype",
    "torchscript", "transformers_version", "typical_p", "use_bfloat16", "use_cache",
})
# Upstream APTConfig's fields that the model never reads (APT_SPEC.md §1); its checkpoints carry them.
UPSTREAM_TRAINER_KEYS = frozenset({"warmup_steps", "weight_decay", "attention_dropout", "layer_norm_eps",
                                   "gradient_clip", "tokenizer_type", "language"})
# apt_fast's own config.json entries besides the fields (apt_fast.sparsify's sparse layers).
APT_FAST_KEYS = frozenset({"sparsity_config"})
_LAYERS = ("num_encoder_layers", "num_decoder_layers")
# Other models' names for APTConfig's fields.
OTHER_NAMES = {
    **dict.fromkeys(("num_layers", "num_hidden_layers", "n_layer", "n_layers", "layers"), _LAYERS),
    **dict.fromkeys(("encoder_layers", "num_encoder_layer", "n_encoder_layers"), ("num_encoder_layers",)),
    **dict.fromkeys(("decoder_layers", "num_decoder_layer", "n_decoder_layers"), ("num_decoder_layers",)),
    **dict.fromkeys(("n_head", "n_heads", "nhead", "heads", "num_attention_head"), ("num_heads",)),
    **dict.fromkeys(("d_hidden", "hidden_dim", "dim", "n_embd", "d_embed", "embed_dim", "model_dim"), ("d_model",)),
    **dict.fromkeys(("ffn_dim", "d_ffn", "dim_feedforward", "intermediate_size", "d_inner", "n_inner", "ff_dim"),
                    ("d_ff",)),
    **dict.fromkeys(("max_position_embeddings", "n_positions", "max_len", "max_seq_length", "max_sequence_length",
                     "seq_len"), ("max_seq_len",)),
    **dict.fromkeys(("n_vocab", "vocab"), ("vocab_size",)),
    **dict.fromkeys(("hidden_act", "activation_function", "act_fn"), ("activation",)),
    **dict.fromkeys(("dropout_rate", "hidden_dropout", "hidden_dropout_prob", "dropout_prob"), ("dropout",)),
    "tie_embeddings": ("tie_word_embeddings",),
}


class UnknownConfigKeyWarning(UserWarning):
    """An APTConfig keyword that is no APT field: it is kept as an attribute and no APT code reads it."""


def _meant(key: str, fields: Iterable[str]) -> tuple[str, ...]:
    if key in OTHER_NAMES:
        return OTHER_NAMES[key]
    return tuple(difflib.get_close_matches(key, list(fields), n=2, cutoff=0.8))


def check_extra_keys(kwargs: dict, fields: Iterable[str], attribute_map: dict) -> None:
    """Raise for keys in ``kwargs`` (what APTConfig got besides its ``fields``) that misspell a field, warn
    for the unknown rest; transformers' keys, ``attribute_map`` aliases and upstream's inert keys pass."""
    fields = list(fields)
    unknown = [k for k in kwargs
               if k not in TRANSFORMERS_KEYS and k not in UPSTREAM_TRAINER_KEYS and k not in APT_FAST_KEYS
               and k not in attribute_map]
    misspelt = {key: meant for key in unknown if (meant := _meant(key, fields))}
    if misspelt:
        details = "; ".join(f"{key!r} (did you mean {' or '.join(meant)}?)" for key, meant in misspelt.items())
        raise ValueError(f"APTConfig: unknown field {details}; APT reads no such field, so the value would be "
                         f"silently ignored")
    for key in unknown:
        warnings.warn(f"APTConfig: unknown field {key!r} is kept as an attribute, but no APT code reads it",
                      UnknownConfigKeyWarning, stacklevel=4)
