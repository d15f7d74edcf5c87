"""GGUF tensor names of the APT model's state_dict keys, both ways.

==========================================================  ===========================================
apt_fast / upstream state_dict key                          GGUF tensor name
==========================================================  ===========================================
token_embedding.weight                 [V, D]               token_embd.weight (also the output, if tied)
output_projection.weight               [V, D]               output.weight (only when untied)
positional_encoding.pe                 [1, L, D]            position_embd.weight        [L, D]
encoder_norm.{weight,bias}             [D]                  enc.output_norm.{weight,bias}
decoder_norm.{weight,bias}             [D]                  dec.output_norm.{weight,bias}
taylor_epsilon, taylor_alpha           []                   taylor_epsilon, taylor_alpha  [1]
encoder_layers.N.self_attn.A           (attention, below)   enc.blk.N.attn_A'
decoder_layers.N.self_attn.A                                dec.blk.N.attn_A'
decoder_layers.N.multihead_attn.A                           dec.blk.N.cross_attn_A'
{encoder,decoder}_layers.N.linear1.{weight,bias}            {enc,dec}.blk.N.ffn_up.{weight,bias}
{encoder,decoder}_layers.N.linear2.{weight,bias}            {enc,dec}.blk.N.ffn_down.{weight,bias}
{encoder,decoder}_layers.N.norm1.{weight,bias}              {enc,dec}.blk.N.attn_norm.{weight,bias}
encoder_layers.N.norm2.{weight,bias}                        enc.blk.N.ffn_norm.{weight,bias}
decoder_layers.N.norm2.{weight,bias}                        dec.blk.N.cross_attn_norm.{weight,bias}
decoder_layers.N.norm3.{weight,bias}                        dec.blk.N.ffn_norm.{weight,bias}
==========================================================  ===========================================

Attention parameters A -> A': ``tau`` [1] -> ``tau``; ``{q,k,v,out}_proj.{weight,bias}`` [D, D] / [D] ->
``{q,k,v,o}.{weight,bias}``; ``sr_conv1.{weight,bias}`` [Hd, 1, 1, 1] / [Hd] -> ``sr_conv1.{weight,bias}``;
``sr_layernorm.{weight,bias}`` [Hd] -> ``sr_norm.{weight,bias}``; ``sr_conv2.{weight,bias}`` [1, Hd, 1, 1] / [1]
-> ``sr_conv2.{weight,bias}``. Shapes are in PyTorch order; GGUF stores the dimensions reversed.
"""

from __future__ import annotations

import re

_ATTENTION = {"tau": "tau", "q_proj": "q", "k_proj": "k", "v_proj": "v", "out_proj": "o",
              "sr_conv1": "sr_conv1", "sr_layernorm": "sr_norm", "sr_conv2": "sr_conv2"}
_ATTENTION_BLOCKS = {"encoder_layers.{i}.self_attn": "enc.blk.{i}.attn_",
                     "decoder_layers.{i}.self_attn": "dec.blk.{i}.attn_",
                     "decoder_layers.{i}.multihead_attn": "dec.blk.{i}.cross_attn_"}
_LAYER_PARTS = {
    "encoder_layers.{i}.linear1": "enc.blk.{i}.ffn_up", "encoder_layers.{i}.linear2": "enc.blk.{i}.ffn_down",
    "encoder_layers.{i}.norm1": "enc.blk.{i}.attn_norm", "encoder_layers.{i}.norm2": "enc.blk.{i}.ffn_norm",
    "decoder_layers.{i}.linear1": "dec.blk.{i}.ffn_up", "decoder_layers.{i}.linear2": "dec.blk.{i}.ffn_down",
    "decoder_layers.{i}.norm1": "dec.blk.{i}.attn_norm", "decoder_layers.{i}.norm2": "dec.blk.{i}.cross_attn_norm",
    "decoder_layers.{i}.norm3": "dec.blk.{i}.ffn_norm",
    "encoder_norm": "enc.output_norm", "decoder_norm": "dec.output_norm",
}


def _rules() -> list[tuple[str, str]]:
    """(state_dict template, GGUF template) pairs; ``{i}`` is a layer index."""
    rules = [("token_embedding.weight", "token_embd.weight"), ("output_projection.weight", "output.weight"),
             ("positional_encoding.pe", "position_embd.weight"),
             ("taylor_epsilon", "taylor_epsilon"), ("taylor_alpha", "taylor_alpha")]
    for block, prefix in _ATTENTION_BLOCKS.items():
        rules.append((f"{block}.tau", f"{prefix}tau"))
        rules += [(f"{block}.{part}.{p}", f"{prefix}{short}.{p}")
                  for part, short in _ATTENTION.items() if part != "tau" for p in ("weight", "bias")]
    rules += [(f"{module}.{p}", f"{gguf}.{p}") for module, gguf in _LAYER_PARTS.items() for p in ("weight", "bias")]
    return rules


def _compile(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)") + r"\Z")


_TO_GGUF = [(_compile(src), dst) for src, dst in _rules()]
_FROM_GGUF = [(_compile(dst), src) for src, dst in _rules()]


def _translate(name: str, table) -> str | None:
    for pattern, template in table:
        match = pattern.match(name)
        if match:
            return template.format(**match.groupdict())
    return None


def gguf_name(key: str) -> str:
    """The GGUF name of a state_dict key; ValueError for a key outside the APT layout."""
    name = _translate(key, _TO_GGUF)
    if name is None:
        raise ValueError(f"state_dict key {key!r} is not part of the APT model (no GGUF name for it)")
    return name


def state_dict_key(name: str) -> str | None:
    """The state_dict key of a GGUF tensor name, or None for a name outside the APT layout."""
    return _translate(name, _FROM_GGUF)
