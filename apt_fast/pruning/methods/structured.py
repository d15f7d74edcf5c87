"""Structured pruning: remove whole FFN neurons or attention heads by a norm score and shrink the layers, then the
model's config (``d_ff``; ``num_heads`` and ``head_dim``), so that the model saves and loads as a smaller one.

Every FFN (attention) loses the same share, ``ratio`` of its neurons (heads) rounded per layer, and so, in a model
whose layers have equal widths, the same number: the APT config holds one ``d_ff`` and one ``num_heads``.
"""

from __future__ import annotations

import copy
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from ..configs import StructuredPruneConfig
from ..masks import masked_layers
from ..registry import pruning_method
from ..report import LayerPruning, PruneReport
from ..selection import count_to_prune, lowest
from ..shrink import keep_columns, keep_rows
from ..units import PROJECTIONS, attentions, feed_forwards


class _Shrinks:
    """What happens to each linear layer (a layer of a chain of FFNs loses rows and columns), for the report."""

    def __init__(self) -> None:
        self.layers: Dict[str, dict] = {}

    def _layer(self, path: str, linear: nn.Linear) -> dict:
        return self.layers.setdefault(path, dict(linear=linear, shape=tuple(linear.weight.shape), rows=(),
                                                 columns=(), patterns=[]))

    def rows(self, path: str, linear: nn.Linear, kept: Tensor, removed: Tuple[int, ...], pattern: str) -> None:
        layer = self._layer(path, linear)
        keep_rows(linear, kept)
        layer["rows"], layer["patterns"] = removed, [*layer["patterns"], f"{pattern} (rows)"]

    def columns(self, path: str, linear: nn.Linear, kept: Tensor, removed: Tuple[int, ...], pattern: str) -> None:
        layer = self._layer(path, linear)
        keep_columns(linear, kept)
        layer["columns"], layer["patterns"] = removed, [*layer["patterns"], f"{pattern} (columns)"]

    def entries(self) -> List[LayerPruning]:
        return [LayerPruning(path, x["shape"], x["linear"].weight.numel(), x["shape"][0] * x["shape"][1],
                             "; ".join(x["patterns"]), x["rows"], x["columns"]) for path, x in self.layers.items()]

    def modules(self) -> set:
        return {id(x["linear"]) for x in self.layers.values()}


def _removal(ratio: float, units: int, what: str, owner: str) -> int:
    """How many of ``units`` to remove; ValueError when none would be left."""
    remove = count_to_prune(ratio, units)
    if remove >= units:
        raise ValueError(f"ratio must be < {1 - 0.5 / units:g} to leave at least one of the {units} {what} of "
                         f"{owner}, got {ratio}")
    return remove


def _split(scores: Tensor, remove: int) -> Tuple[Tensor, Tuple[int, ...]]:  # [U] -> kept [U'] int64, removed
    removed = lowest([scores], remove)[0]
    return (~removed).nonzero().squeeze(1), tuple(removed.nonzero().squeeze(1).tolist())


def _row_norms(weight: Tensor, bias) -> Tensor:  # [N, K], [N] | None -> [N]
    squares = weight.detach().to(torch.float32).pow(2).sum(dim=1)
    return (squares if bias is None else squares + bias.detach().to(torch.float32).pow(2)).sqrt()


def _prune_ffns(model: nn.Module, ratio: float, selected: set, shrinks: _Shrinks) -> List[str]:
    ffns = [f for f in feed_forwards(model) if id(f.first) in selected and id(f.second) in selected]
    if not ffns:
        raise ValueError("target 'ffn' needs feed-forward pairs of nn.Linear layers (linear1 / linear2, or linear "
                         "layers of an nn.Sequential with only elementwise modules between them); the model has none")
    removals = [_removal(ratio, f.first.out_features, "FFN neurons", f.path) for f in ffns]
    widths = set()
    for ffn, remove in zip(ffns, removals):
        width = ffn.first.out_features
        scores = _row_norms(ffn.first.weight, ffn.first.bias) * ffn.second.weight.detach().to(torch.float32).norm(
            dim=0)  # [width]: ||w_in|| * ||w_out|| of each hidden neuron
        kept, removed = _split(scores, remove)
        pattern = f"FFN neurons {kept.numel()}/{width}"
        shrinks.rows(ffn.first_path, ffn.first, kept, removed, pattern)
        shrinks.columns(ffn.second_path, ffn.second, kept, removed, pattern)
        widths.add((width, kept.numel()))
    return _update_config(model, "d_ff", widths)


def _head_scores(attention: nn.Module) -> Tensor:  # [H]: L2 norm of each head's q/k/v rows and out_proj columns
    squares = sum(_row_norms(getattr(attention, name).weight, getattr(attention, name).bias).pow(2)
                  for name in PROJECTIONS[:3])  # [H * d]
    squares = squares + attention.out_proj.weight.detach().to(torch.float32).pow(2).sum(dim=0)
    return squares.reshape(attention.num_heads, attention.head_dim).sum(dim=1).sqrt()


def _rows_of(heads, head_dim: int) -> Tensor:  # [h] -> [h * d] int64
    heads = torch.as_tensor(heads, dtype=torch.int64).reshape(-1)
    return (heads[:, None] * head_dim + torch.arange(head_dim)).reshape(-1)


def _prune_heads(model: nn.Module, ratio: float, selected: set, shrinks: _Shrinks) -> List[str]:
    found = [(path, m) for path, m in attentions(model)
             if all(id(getattr(m, name)) in selected for name in PROJECTIONS)]
    if not found:
        raise ValueError("target 'heads' needs attention modules with nn.Linear q_proj / k_proj / v_proj / out_proj "
                         "and int num_heads and head_dim; the model has none")
    for path, attention in found:
        width = attention.num_heads * attention.head_dim
        if attention.q_proj.out_features != width or attention.out_proj.in_features != width:
            raise ValueError(f"{path}: num_heads x head_dim must be the projections' width, got "
                             f"{attention.num_heads} x {attention.head_dim} for q_proj of shape "
                             f"{tuple(attention.q_proj.weight.shape)}")
    removals = [_removal(ratio, m.num_heads, "attention heads", path) for path, m in found]
    counts = set()
    for (path, attention), remove in zip(found, removals):
        heads, head_dim = attention.num_heads, attention.head_dim
        kept, removed = _split(_head_scores(attention), remove)
        rows, removed_rows = _rows_of(kept, head_dim), tuple(_rows_of(removed, head_dim).tolist())
        pattern = f"heads {kept.numel()}/{heads}"
        for name in PROJECTIONS:
            shrink = shrinks.columns if name == "out_proj" else shrinks.rows
            shrink(f"{path}.{name}", getattr(attention, name), rows, removed_rows, pattern)
        attention.num_heads = kept.numel()
        counts.add((heads, kept.numel()))
    notes = _update_config(model, "num_heads", counts, head_dim=found[0][1].head_dim)
    notes.append("the APT attention's transform averages the scores over the heads (APT_SPEC.md §2.2 T2), so a "
                 "removed head also changes the kept heads' outputs, unlike a removed FFN neuron")
    return notes


def _update_config(model: nn.Module, field: str, changes: set, **also) -> List[str]:
    """Give the model a copy of its config with ``<field>`` (and ``also``) set to the new width, when every layer went
    from the config's value to the same new one; the note says what was done."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, field):
        return []
    if len(changes) != 1 or next(iter(changes))[0] != getattr(config, field):
        return [f"config.{field} left at {getattr(config, field)}: the layers went (before, after) "
                f"{sorted(changes)}, which one {field} cannot describe"]
    old, new = next(iter(changes))
    config = copy.deepcopy(config)  # the model's own: a config object may be shared with other models
    model.config = config
    setattr(config, field, new)
    extra = [name for name in also if hasattr(config, name)]
    for name in extra:
        setattr(config, name, also[name])
    return [f"config.{field}: {old} -> {new}, the same in every layer (the config holds one {field})"
            + "".join(f"; config.{name} = {also[name]}" for name in extra)]


@pruning_method(StructuredPruneConfig)
def structured(model, config: StructuredPruneConfig, calibration, layers):
    masked = list(masked_layers(model))
    if masked:
        raise ValueError(f"model must carry no pruning masks for structured pruning, got masks on "
                         f"{', '.join(masked[:3])}{' ...' if len(masked) > 3 else ''}; prune structurally first, or "
                         f"call apt_fast.pruning.remove_masks(model)")
    selected = {id(layer.module) for layer in layers.linears}
    shrinks = _Shrinks()
    notes = (_prune_ffns if config.target == "ffn" else _prune_heads)(model, config.ratio, selected, shrinks)
    add_gradient_hooks = getattr(model, "_add_gradient_hooks", None)  # APTModel: its DBC-DAC hooks on new Parameters
    if callable(add_gradient_hooks):
        add_gradient_hooks()
    what = "an FFN layer" if config.target == "ffn" else "an attention projection"
    pruned = shrinks.modules()
    skipped = list(layers.skipped)
    skipped += [(layer.path, f"not {what} (target {config.target!r})") for layer in layers.linears
                if id(layer.module) not in pruned]
    skipped += [(layer.path, f"weight tied to the input embedding {layer.tied_to}: structured pruning leaves it")
                for layer in layers.tied]
    return PruneReport(repr(config), tuple(shrinks.entries()), tuple(skipped), tuple(notes))
