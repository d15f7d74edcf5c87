"""The "apt" architecture's GGUF metadata: every APTConfig field as a typed key, both ways.

Keys are ``apt.<suffix>``; the shape keys follow llama.cpp's names (``context_length``,
``embedding_length``, ``block_count`` = encoder layers, ``decoder_block_count``, ...). Floats are stored
as FLOAT64 so the config round-trips exactly; token ids that are None are left out. Two derived keys
are written for readers that do not know APTConfig: ``apt.attention.layer_norm_epsilon`` (always 1e-5)
and ``apt.autopoietic.sr_hidden_size`` (max(16, d_model // sr_ratio)).
"""

from __future__ import annotations

from .reader import GGUFError

ARCHITECTURE = "apt"
LAYER_NORM_EPSILON = 1e-5

# (APTConfig field, key suffix, GGUF value kind, required on import)
HYPERPARAMETERS = (
    ("vocab_size", "vocab_size", "uint32", True),
    ("max_seq_len", "context_length", "uint32", True),
    ("d_model", "embedding_length", "uint32", True),
    ("d_ff", "feed_forward_length", "uint32", True),
    ("num_encoder_layers", "block_count", "uint32", True),
    ("num_decoder_layers", "decoder_block_count", "uint32", True),
    ("num_heads", "attention.head_count", "uint32", True),
    ("activation", "activation", "string", True),
    ("epsilon", "autopoietic.epsilon", "float64", True),
    ("sr_ratio", "autopoietic.sr_ratio", "uint32", True),
    ("use_autopoietic", "autopoietic.enabled", "bool", True),
    ("alpha", "autopoietic.alpha", "float64", False),
    ("beta", "autopoietic.beta", "float64", False),
    ("init_tau", "autopoietic.init_tau", "float64", False),
    ("base_lr", "autopoietic.base_lr", "float64", False),
    ("dropout", "dropout", "float64", False),
    ("pad_token_id", "pad_token_id", "int32", False),
    ("bos_token_id", "bos_token_id", "int32", False),
    ("eos_token_id", "eos_token_id", "int32", False),
    ("tie_word_embeddings", "tie_word_embeddings", "bool", False),
    ("taylor_parameters", "taylor_parameters", "bool", False),
    ("use_dbc_dac", "dbc_dac.enabled", "bool", False),
    ("rank_ratio_proj", "dbc_dac.rank_ratio_proj", "float64", False),
    ("rank_ratio_res", "dbc_dac.rank_ratio_res", "float64", False),
    ("dbc_threshold", "dbc_dac.threshold", "float64", False),
    ("dbc_iterations", "dbc_dac.iterations", "uint32", False),
    ("dbc_stochastic_low_rank", "dbc_dac.stochastic_low_rank", "bool", False),
    ("head_dim", "attention.key_length", "uint32", False),
)
_TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id")
_PYTHON_TYPES = {"uint32": int, "int32": int, "float64": (float, int), "bool": bool, "string": str}


def key(suffix: str) -> str:
    return f"{ARCHITECTURE}.{suffix}"


def add_config(writer, config) -> None:
    """Write every hyper-parameter of ``config`` (an APTConfig) with ``writer`` (a gguf.GGUFWriter)."""
    for field, suffix, kind, _ in HYPERPARAMETERS:
        value = getattr(config, field)
        if value is None:
            continue
        getattr(writer, f"add_{kind}")(key(suffix), float(value) if kind == "float64" else value)
    writer.add_float32(key("attention.layer_norm_epsilon"), LAYER_NORM_EPSILON)
    writer.add_uint32(key("autopoietic.sr_hidden_size"), config.sr_hidden_dim)


def config_fields(metadata: dict, source: str) -> dict:
    """APTConfig keyword arguments from a GGUF file's metadata; GGUFError naming a missing or mistyped key."""
    fields = {}
    for field, suffix, kind, required in HYPERPARAMETERS:
        name = key(suffix)
        if name not in metadata:
            if required:
                raise GGUFError(f"{source}: metadata key {name} is missing; it is needed to rebuild the APT model")
            if field in _TOKEN_IDS:
                fields[field] = None
            continue
        value = metadata[name]
        expected = _PYTHON_TYPES[kind]
        if not isinstance(value, expected) or (kind != "bool" and isinstance(value, bool)):
            raise GGUFError(f"{source}: metadata key {name} must be a {kind}, got {type(value).__name__} {value!r}")
        fields[field] = float(value) if kind == "float64" else value
    return fields
