"""``load(path) -> (model, tokenizer)`` for every APT checkpoint format (APT_SPEC.md §5.1), and ``save``.

Formats, detected from the path:

* **apt_fast directory**: ``config.json`` (model_type "apt") + ``model.safetensors`` (tied weights
  stored once) + tokenizer files, as written by :func:`save`; a model quantized by ``apt_fast.quantize`` is
  rebuilt quantized from config.json's ``quantization_config`` (:mod:`.quantized_layout`), and a model sparsified
  by ``apt_fast.sparsify`` with its SparseLinear layers from ``sparsity_config`` (:mod:`.sparse_layout`);
* **upstream directory**: ``model.pt`` (a torch.save'd state_dict, APTLargeModel's ``taylor_*`` keys
  included) + ``config.json`` (upstream APTConfig.to_dict) + ``tokenizer/``;
* **CheckpointManager file** ``.../checkpoints/<name>_epoch<E>_step<S>[_best].pt``: a dict with
  ``model_state_dict`` and ``config``; the tokenizer is read from ``.../tokenizer/`` if present;
* **HLBD single file** ``.pt``: ``model_state_dict``, ``config`` and the char tokenizer's
  ``tokenizer_char_to_id`` / ``tokenizer_id_to_char`` / ``tokenizer_next_id`` fields;
* **GGUF file** (starts with b"GGUF"), as written by ``apt_fast.export.export_gguf``: read by
  :func:`apt_fast.models.apt.gguf_loading.load_gguf`; Q8_0 weight matrices stay int8 (Int8Linear), the other
  types are dequantized to float32.

Pickled files are read with ``torch.load(weights_only=True)``: a checkpoint never runs code. Pruned
weights (``*.weight_orig`` / ``*.weight_mask``) load as weight = orig * mask, and apt_fast.pruning's masked
layers (``*.weight`` / ``*.weight_mask``) as weight * mask: a plain model with the zeros, no masks attached.
Shapes give vocab_size, d_model, max_seq_len, the layer counts, d_ff and sr_ratio; **num_heads and epsilon cannot be
inferred and must be in the config** (or in ``config_overrides``), never guessed. Missing optional
fields take the defaults of the upstream config class that wrote the format (upstream APTConfig for
directories and CheckpointManager files, APTModelConfiguration for HLBD files). Every problem raises
:class:`CheckpointError` naming the file; no model is returned half-loaded.
"""

from __future__ import annotations

import json
import os
import warnings

import torch
from torch import Tensor

from ...modules.sparse_linear import FLOAT_VALUE_DTYPES, SparseLinear
from .configuration_apt import APTConfig
from .empty_model import materialize, meta_model, quantized_embedding, sparse_embedding, swap_in
from .errors import CheckpointError
from .gguf_loading import load_gguf
from .modeling_apt import APTModel
from .quantized_layout import (
    OUTPUT_LAYER,
    QuantizedLayout,
    check_no_unlisted_qweight,
    check_quantized_tensors,
    expected_shapes,
    split_quantization_config,
)
from .shape_check import EMBEDDING as _EMBEDDING
from .shape_check import OUTPUT as _OUTPUT
from .shape_check import contradictions, infer_shape_fields
from .sparse_layout import (
    SparseLayout,
    check_no_unlisted_sparse,
    dense_dtype_of,
    dense_shapes,
    sparse_weights,
    split_sparsity_config,
)
from .tokenization_apt import load_tokenizer
from .tokenization_char import HLBDCharTokenizer

REQUIRED_FIELDS = ("num_heads", "epsilon")
# Upstream's APTConfig (apt_model/config/apt_config.py): the defaults behind its directory format and
# CheckpointManager files, where they differ from APTModelConfiguration (APTConfig()'s defaults here).
UPSTREAM_APTCONFIG_DEFAULTS = {
    "vocab_size": 50257, "d_model": 768, "d_ff": 2048, "num_heads": 12, "num_encoder_layers": 6,
    "num_decoder_layers": 6, "dropout": 0.15, "max_seq_len": 512, "epsilon": 0.08, "alpha": 0.0008,
    "beta": 0.003, "base_lr": 4e-5, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
    "activation": "gelu", "sr_ratio": 6, "init_tau": 1.3, "use_dbc_dac": False,
}


class MissingTokenizerWarning(UserWarning):
    """``load`` found no tokenizer with the checkpoint; it returns ``tokenizer=None``."""


def _torch_load(path: str) -> object:
    """torch.load(weights_only=True); a refused pickle is reported as what was refused, without torch's advice
    to retry with weights_only=False (which would run whatever code the file holds)."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # a foreign pickle, globals outside torch's allowlist
        text = str(err).split("WeightsUnpickler error:", 1)[-1].strip()
        refused = text.split("\n", 1)[0].split(". ", 1)[0].rstrip(".")
        raise CheckpointError(f"{path}: not a checkpoint of tensors" + (f" ({refused})" if refused else "")
                              + "; torch.load(weights_only=True) refused it, nothing was unpickled") from None
    except Exception as err:  # a truncated or foreign zip archive
        raise CheckpointError(f"{path}: cannot be read with torch.load(weights_only=True): {err}") from err


def _read_config_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path}: the config is not UTF-8 text ({err.reason} at byte {err.start})") from err
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: cannot read the config: {err}") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: the config must be a JSON object, got {type(config).__name__}")
    return config


def _pruning_mask(mask_key: str, mask: Tensor, weight: Tensor, source: str) -> Tensor:
    """``mask`` (``mask_key`` in the checkpoint) as ``weight``'s dtype, checked to fit it: the same shape, and only
    0 and 1 (or bool)."""
    if tuple(mask.shape) != tuple(weight.shape):
        raise CheckpointError(f"{source}: pruning mask {mask_key} must have the shape of its weight, "
                              f"{tuple(weight.shape)}, got {tuple(mask.shape)}")
    if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
        raise CheckpointError(f"{source}: pruning mask {mask_key} must hold only 0 and 1, got values such as "
                              f"{mask[(mask != 0) & (mask != 1)].flatten()[0].item()}")
    return mask.to(weight.dtype)


def merge_pruned_weights(state_dict: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """Replace each ``X_orig`` / ``X_mask`` pair (torch.nn.utils.prune) by ``X = X_orig * X_mask``, and apply an
    ``X_mask`` kept next to ``X`` (apt_fast.pruning's layout, X already zero where pruned; the tied output
    projection's mask applies to the embedding stored for both) as ``X = X * X_mask``. The model gets plain
    weights with zeros where the masks are 0; a mask that does not fit its weight is an error."""
    merged, masks = {}, {}
    for key, value in state_dict.items():
        if key.endswith("_orig"):
            base = key[: -len("_orig")]
            if base + "_mask" not in state_dict:
                raise CheckpointError(f"{source}: pruned weight {key} has no {base}_mask")
            merged[base] = value * _pruning_mask(base + "_mask", state_dict[base + "_mask"], value, source)
        elif key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state_dict:
            continue
        elif key.endswith("weight_mask"):
            masks[key] = key[: -len("_mask")]
        else:
            merged[key] = value
    for key, base in masks.items():
        target = _EMBEDDING if base == _OUTPUT and base not in merged and _EMBEDDING in merged else base
        if target not in merged:
            raise CheckpointError(f"{source}: pruning mask {key} has no {base}_orig and no {base}")
        merged[target] = merged[target] * _pruning_mask(key, state_dict[key], merged[target], source)
    return merged


def build_config(
    saved: dict | None,
    state_dict: dict[str, Tensor],
    *,
    defaults: dict,
    source: str,
    overrides: dict | None = None,
) -> APTConfig:
    """APTConfig from a checkpoint's saved config: saved values first, then the shapes, then ``defaults``.

    ``num_heads`` and ``epsilon`` must come from ``saved`` or ``overrides``. A saved shape field that
    contradicts the weights is an error naming the field and both values.
    """
    saved = {**(saved or {}), **(overrides or {})}
    for name in REQUIRED_FIELDS:
        if saved.get(name) is None:
            raise CheckpointError(
                f"{source}: the config has no '{name}', and {name} cannot be inferred from the weights; "
                f"pass it explicitly, e.g. load(path, config_overrides={{'{name}': ...}})"
            )
    shapes = _weight_shapes(state_dict)
    found = contradictions(saved, shapes)
    if found:
        raise CheckpointError(f"{source}: the config contradicts the weights: {'; '.join(found)}")
    fields = {**defaults, **infer_shape_fields(shapes)}
    fields.update({k: v for k, v in saved.items() if k != "model_type"})
    fields["taylor_parameters"] = "taylor_epsilon" in state_dict
    if _OUTPUT in state_dict and _EMBEDDING in state_dict:
        fields["tie_word_embeddings"] = torch.equal(state_dict[_OUTPUT], state_dict[_EMBEDDING])
    try:
        return APTConfig(**fields)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: invalid config: {err}") from err


def _weight_shapes(state_dict: dict[str, Tensor]) -> dict[str, tuple[int, ...]]:
    """{key: shape}, a quantized layer's ``qweight`` standing for its ``weight`` (same shape) and, when the tied
    embedding is quantized with the output projection, the projection's weight for the embedding's."""
    shapes = {}
    for key, value in state_dict.items():
        if key.endswith(".scales") and key.removesuffix(".scales") + ".qweight" in state_dict:
            continue
        shapes[key.removesuffix(".qweight") + ".weight" if key.endswith(".qweight") else key] = tuple(value.shape)
    if _EMBEDDING not in shapes and _OUTPUT in shapes:
        shapes[_EMBEDDING] = shapes[_OUTPUT]
    return shapes


def check_weights(expected: dict[str, tuple[int, ...]], state_dict: dict[str, Tensor], optional: set[str],
                  source: str) -> None:
    """Every key of ``expected`` ({key: shape}) but those in ``optional`` is in ``state_dict`` with its shape, and
    no other key is; else a CheckpointError listing what differs."""
    missing = [k for k in expected if k not in state_dict and k not in optional]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"{source}: weights do not match the config: missing keys {missing}, "
                              f"unexpected keys {unexpected}")
    for key, value in state_dict.items():
        if tuple(value.shape) != expected[key]:
            raise CheckpointError(
                f"{source}: weights do not match the config: {key} expected shape {expected[key]}, "
                f"got {tuple(value.shape)}"
            )


def load_weights(model: APTModel, state_dict: dict[str, Tensor], source: str) -> None:
    """Strictly load ``state_dict`` into ``model`` after checking every key and shape.

    ``output_projection.weight`` may be absent when tied (safetensors stores a tied tensor once).
    """
    expected = model.state_dict()
    optional = {_OUTPUT} if model.config.tie_word_embeddings else set()
    check_weights({key: tuple(value.shape) for key, value in expected.items()}, state_dict, optional, source)
    with torch.no_grad():
        for key, value in state_dict.items():
            expected[key].copy_(value)


def model_from_state_dict(config: APTConfig, state_dict: dict[str, Tensor], source: str) -> APTModel:
    """Build an eval-mode APTModel in the checkpoint's dtype and load the weights into it."""
    model = APTModel(config).to(state_dict[_EMBEDDING].dtype)
    load_weights(model, state_dict, source)
    return model.eval()


def quantized_model_from_state_dict(config: APTConfig, layout: QuantizedLayout, state_dict: dict[str, Tensor],
                                    source: str) -> APTModel:
    """The eval-mode model ``layout`` describes (its listed layers empty quantized modules of its scheme, the
    embedding a QuantizedEmbedding when the tied projection is listed), the tensors checked against it first and
    then loaded strictly. Float tensors keep the checkpoint's dtype; no float32 copy of a quantized layer is made."""
    model = meta_model(config)
    check_quantized_tensors(layout, model, state_dict, source)
    tied_float_output = config.tie_word_embeddings and OUTPUT_LAYER not in layout.modules
    optional = {_OUTPUT} if tied_float_output else set()
    check_weights(expected_shapes(layout, model), state_dict, optional, source)
    materialize(model, state_dict[_EMBEDDING if _EMBEDDING in state_dict else "positional_encoding.pe"].dtype)
    for path in layout.modules:
        linear = model.get_submodule(path)
        swap_in(model, path, layout.config.empty(linear.in_features, linear.out_features, linear.bias is not None))
    if layout.quantizes_embedding(config.tie_word_embeddings):
        quantized_embedding(model)
    if tied_float_output:
        state_dict = {**state_dict, _OUTPUT: state_dict[_EMBEDDING]}
    model.load_state_dict(state_dict, strict=True)
    model.config.quantization_config = layout.entry
    model._add_gradient_hooks()
    return model.eval()


def sparse_model_from_state_dict(config: APTConfig, quantized: QuantizedLayout | None, layout: SparseLayout,
                                 state_dict: dict[str, Tensor], source: str) -> APTModel:
    """The eval-mode model ``layout`` describes: its listed layers SparseLinear modules rebuilt from the checkpoint's
    format tensors (checked against the layer first, :mod:`.sparse_layout`), the embedding a SparseEmbedding with
    include_embedding, the quantized layers of ``quantized`` (if any) as :func:`quantized_model_from_state_dict`
    builds them; pruned dense layers' masks are applied to their weights. Everything else loads strictly."""
    model = meta_model(config)
    if quantized is not None:
        check_quantized_tensors(quantized, model, state_dict, source)
    weights = sparse_weights(layout, model, state_dict, source)
    sparse_keys = {key for path in weights for key in layout.tensor_keys(path, state_dict)}
    rest = merge_pruned_weights({k: v for k, v in state_dict.items() if k not in sparse_keys}, source)
    shapes = expected_shapes(quantized, model) if quantized is not None else \
        {key: tuple(value.shape) for key, value in model.state_dict().items()}
    tied_float_output = config.tie_word_embeddings and OUTPUT_LAYER not in layout.layers and \
        (quantized is None or OUTPUT_LAYER not in quantized.modules)
    check_weights(dense_shapes(layout, shapes), rest, {_OUTPUT} if tied_float_output else set(), source)
    dtype = dense_dtype_of(state_dict)
    materialize(model, dtype)
    if quantized is not None:
        for path in quantized.modules:
            linear = model.get_submodule(path)
            swap_in(model, path, quantized.config.empty(linear.in_features, linear.out_features,
                                                        linear.bias is not None))
        if quantized.quantizes_embedding(config.tie_word_embeddings):
            quantized_embedding(model)
    for path, weight in weights.items():
        swap_in(model, path, SparseLinear(weight, model.get_submodule(path).bias, route=layout.routes[path],
                                          dense_dtype=dtype if dtype in FLOAT_VALUE_DTYPES else torch.float32))
    if layout.include_embedding:
        sparse_embedding(model)
    if tied_float_output:
        rest = {**rest, _OUTPUT: rest[_EMBEDDING]}
    missing, unexpected = model.load_state_dict(rest, strict=False)
    missing = [key for key in missing if key not in sparse_keys]
    if missing or unexpected:
        raise CheckpointError(f"{source}: weights do not match the config: missing keys {missing}, unexpected keys "
                              f"{unexpected}")
    if quantized is not None:
        model.config.quantization_config = quantized.entry
    model.config.sparsity_config = layout.entry
    model._add_gradient_hooks()
    return model.eval()


def _state_dict_from(obj: object, key: str | None, source: str) -> dict[str, Tensor]:
    state_dict = obj.get(key) if key is not None and isinstance(obj, dict) else obj
    if not isinstance(state_dict, dict) or not all(isinstance(v, Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{source}: {key or 'the file'} is not a state_dict of tensors")
    state_dict = merge_pruned_weights(dict(state_dict), source)
    if _EMBEDDING not in state_dict:
        raise CheckpointError(f"{source}: no {_EMBEDDING} in the weights; this is not an APT checkpoint")
    return state_dict


def _tokenizer_in(directory: str):
    return load_tokenizer(directory) if os.path.isdir(directory) else None


def _load_apt_fast_directory(path: str, overrides: dict | None):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = os.path.join(path, "model.safetensors")
    try:
        state_dict = load_file(weights)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights}: cannot read the safetensors file: {err}") from err
    config_path = os.path.join(path, "config.json")
    saved, layout = split_quantization_config(_read_config_json(config_path), config_path)
    saved, sparse = split_sparsity_config(saved, config_path)
    check_no_unlisted_qweight(layout, state_dict, weights)
    check_no_unlisted_sparse(sparse, state_dict, weights)
    if layout is None and sparse is None:
        state_dict = _state_dict_from(state_dict, None, weights)
    config = build_config(saved, state_dict, defaults={}, source=weights, overrides=overrides)
    if sparse is not None:
        model = sparse_model_from_state_dict(config, layout, sparse, state_dict, weights)
    elif layout is None:
        model = model_from_state_dict(config, state_dict, weights)
    else:
        model = quantized_model_from_state_dict(config, layout, state_dict, weights)
    has_tokenizer = any(os.path.exists(os.path.join(path, f)) for f in ("tokenizer_config.json", "vocab.json"))
    return model, (load_tokenizer(path) if has_tokenizer else None)


def _load_upstream_directory(path: str, overrides: dict | None):
    weights = os.path.join(path, "model.pt")
    state_dict = _state_dict_from(_torch_load(weights), None, weights)
    saved = _read_config_json(os.path.join(path, "config.json"))
    config = build_config(saved, state_dict, defaults=UPSTREAM_APTCONFIG_DEFAULTS, source=weights, overrides=overrides)
    return model_from_state_dict(config, state_dict, weights), _tokenizer_in(os.path.join(path, "tokenizer"))


def _load_pt_file(path: str, overrides: dict | None):
    checkpoint = _torch_load(path)
    if not isinstance(checkpoint, dict) or "model_state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path}: unknown checkpoint format: expected a dict with 'model_state_dict' "
            f"(CheckpointManager or HLBD file), or a directory with model.pt or model.safetensors"
        )
    state_dict = _state_dict_from(checkpoint, "model_state_dict", path)
    saved = checkpoint.get("config")
    if saved is not None and not isinstance(saved, dict):
        raise CheckpointError(f"{path}: 'config' must be a dict, got {type(saved).__name__}")
    if "tokenizer_char_to_id" in checkpoint:  # HLBD single file: APTModelConfiguration defaults
        config = build_config(saved, state_dict, defaults={}, source=path, overrides=overrides)
        tokenizer = HLBDCharTokenizer(
            checkpoint["tokenizer_char_to_id"],
            checkpoint.get("tokenizer_id_to_char"),
            checkpoint.get("tokenizer_next_id"),
        )
        return model_from_state_dict(config, state_dict, path), tokenizer
    config = build_config(saved, state_dict, defaults=UPSTREAM_APTCONFIG_DEFAULTS, source=path, overrides=overrides)
    save_dir = os.path.dirname(os.path.dirname(os.path.abspath(path)))  # <save_dir>/checkpoints/<file>.pt
    return model_from_state_dict(config, state_dict, path), _tokenizer_in(os.path.join(save_dir, "tokenizer"))


def load(path: str | os.PathLike, *, config_overrides: dict | None = None):
    """Load an APT checkpoint in any supported format; returns ``(model, tokenizer)``.

    The model is in eval mode, with the tokenizer attached as ``model.tokenizer`` (so
    ``model.save_pretrained`` saves it too). ``tokenizer`` is None, with a :class:`MissingTokenizerWarning`,
    when the checkpoint has none. ``config_overrides`` supplies or replaces config fields (e.g.
    ``{"num_heads": 12, "epsilon": 1e-6}`` for a checkpoint saved without them).
    """
    model, tokenizer = _load(os.fspath(path), config_overrides)
    model.tokenizer = tokenizer
    if tokenizer is None:
        warnings.warn(f"apt_fast.load: {os.fspath(path)} has no tokenizer, so the tokenizer returned is None; save the "
                      f"model with one: apt_fast.save(model, path, tokenizer)", MissingTokenizerWarning, stacklevel=2)
    return model, tokenizer


def _load(path: str, config_overrides: dict | None):
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "model.safetensors")):
            return _load_apt_fast_directory(path, config_overrides)
        if os.path.exists(os.path.join(path, "model.pt")):
            return _load_upstream_directory(path, config_overrides)
        raise CheckpointError(f"{path}: unknown checkpoint format: "
                              "the directory has neither model.safetensors nor model.pt")
    if os.path.isfile(path):
        if _is_gguf(path):
            return load_gguf(path, config_overrides=config_overrides)
        return _load_pt_file(path, config_overrides)
    raise CheckpointError(f"{path}: no such file or directory")


def _is_gguf(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


def save(model: APTModel, path: str | os.PathLike, tokenizer=None) -> None:
    """Write ``model`` (safetensors + config.json), ``tokenizer`` (default: the one attached to the model,
    if any) and the model card README.md to ``path``, every file atomically: ``model.save_pretrained``."""
    model.save_pretrained(path, tokenizer=tokenizer)
