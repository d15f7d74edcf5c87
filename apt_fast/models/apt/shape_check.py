"""What the weights say about the config: the shape fields they determine, and where a config contradicts them.

Works on ``{state_dict key: shape}``, so a safetensors header is enough (no tensor is read). A checkpoint
whose config.json says ``d_ff=64`` over weights of d_ff 48, or 12 encoder layers over weights of 1, is
reported by field with both values, before any model is built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

EMBEDDING, OUTPUT = "token_embedding.weight", "output_projection.weight"


def _count_layers(shapes: Mapping[str, Sequence[int]], prefix: str) -> int:
    indices = {int(m.group(1)) for key in shapes if (m := re.match(rf"{prefix}\.(\d+)\.", key))}
    return max(indices) + 1 if indices else 0


def _sr_ratio_for(d_model: int, hidden: int) -> int | None:
    return next((r for r in range(1, d_model + 1) if max(16, d_model // r) == hidden), None)


def _sr_hidden(shapes: Mapping[str, Sequence[int]]) -> int | None:
    for prefix in ("encoder_layers.0", "decoder_layers.0"):
        if f"{prefix}.self_attn.sr_conv1.weight" in shapes:
            return shapes[f"{prefix}.self_attn.sr_conv1.weight"][0]
    return None


def infer_shape_fields(shapes: Mapping[str, Sequence[int]]) -> dict:
    """The config fields that the weights determine (spec §5.1 loader guidance); sr_ratio is the smallest
    ratio giving the weights' sr_conv width."""
    fields = {}
    if EMBEDDING in shapes:
        fields["vocab_size"], fields["d_model"] = shapes[EMBEDDING]
    if "positional_encoding.pe" in shapes:
        fields["max_seq_len"] = shapes["positional_encoding.pe"][1]
    fields["num_encoder_layers"] = _count_layers(shapes, "encoder_layers")
    fields["num_decoder_layers"] = _count_layers(shapes, "decoder_layers")
    for prefix in ("encoder_layers.0", "decoder_layers.0"):
        if f"{prefix}.linear1.weight" in shapes:
            fields["d_ff"] = shapes[f"{prefix}.linear1.weight"][0]
    hidden = _sr_hidden(shapes)
    if hidden is not None and "d_model" in fields and (ratio := _sr_ratio_for(fields["d_model"], hidden)) is not None:
        fields["sr_ratio"] = ratio
    return fields


def contradictions(saved: Mapping, shapes: Mapping[str, Sequence[int]]) -> list[str]:
    """'<field> is <saved> in the config, <inferred> in the weights' for each saved shape field the weights
    contradict (sr_ratio by the sr_conv width it gives, since several ratios give the same width)."""
    inferred = infer_shape_fields(shapes)
    found = [f"{name} is {saved[name]!r} in the config, {value} in the weights"
             for name, value in inferred.items() if name != "sr_ratio" and saved.get(name) not in (None, value)]
    hidden, sr_ratio, d_model = _sr_hidden(shapes), saved.get("sr_ratio"), inferred.get("d_model")
    if (hidden is not None and d_model and isinstance(sr_ratio, int) and sr_ratio > 0
            and max(16, d_model // sr_ratio) != hidden):
        found.append(f"sr_ratio is {sr_ratio} in the config (sr_conv width {max(16, d_model // sr_ratio)}), "
                     f"{inferred.get('sr_ratio')} in the weights (width {hidden})")
    return found
