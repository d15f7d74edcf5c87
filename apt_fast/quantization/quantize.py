"""apt_fast.quantize(model, config): swap nn.Linear layers for Int8Linear / Fp8Linear in place and report what
changed, what did not and why. A tied input embedding / output projection (the APT model's) is left alone
unless include_embedding=True, which quantizes the projection and makes the embedding look its rows up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from torch import nn

from ..modules.quantized_linear import QuantizedEmbedding, QuantizedLinear
from ..patching.report import SwapReport
from ..patching.swap import named_children_with_parents
from .accuracy import layer_sqnr
from .configs import CONFIGS, config_to_dict

FilterFn = Callable[[nn.Module, str], bool]


@dataclass
class QuantizeReport(SwapReport):
    action = "apt_fast.quantize"
    scheme: str = ""
    bytes_before: int = 0  # weights of the swapped layers before (their dtype) ...
    bytes_after: int = 0   # ... and after (codes and scales)
    accuracy: Dict[str, Dict[str, float]] = field(default_factory=dict)  # path -> {activation kind: SQNR dB}

    def lines(self) -> List[str]:
        lines = super().lines()
        lines[0] += f" ({self.scheme})"
        if self.swapped:
            ratio = self.bytes_after / max(self.bytes_before, 1)
            lines.append(f"  weights of the swapped layers: {self.bytes_before / 2**20:.2f} MiB -> "
                         f"{self.bytes_after / 2**20:.2f} MiB ({ratio:.3f}x)")
        for path, sqnr in self.accuracy.items():
            lines.append(f"  SQNR        {path}: " + ", ".join(f"{k} {v:.1f} dB" for k, v in sqnr.items()))
        return lines


def _tied_embeddings(model: nn.Module) -> Dict[int, tuple]:
    """id(weight) -> (parent, attribute, path, embedding) for every nn.Embedding."""
    return {id(m.weight): (parent, name, path, m) for parent, name, path, m in named_children_with_parents(model)
            if isinstance(m, nn.Embedding) and parent is not None}


def quantize(model: nn.Module, config, filter_fn: Optional[FilterFn] = None, *, include_embedding: bool = False,
             report_accuracy: bool = False) -> QuantizeReport:
    """Quantize the nn.Linear layers of ``model`` in place (those ``filter_fn(module, path)`` selects, default all).

    config: apt_fast.Int8DynamicConfig, Int8WeightOnlyConfig or Fp8WeightOnlyConfig. Layers already quantized
    are left alone (quantizing twice changes nothing). report_accuracy adds each swapped layer's output SQNR on
    Gaussian and heavy-tailed activations. A model with a ``config`` (the APT model) records the scheme there as
    ``quantization_config``, so that apt_fast.save / apt_fast.load keep it quantized.
    """
    if not isinstance(config, CONFIGS):
        names = ", ".join(c.__name__ for c in CONFIGS)
        raise ValueError(f"config must be one of {names}, got {type(config).__name__}")
    _refuse_mixed_schemes(model, config)
    report = QuantizeReport(scheme=config.scheme)
    embeddings = _tied_embeddings(model)
    for parent, name, path, module in list(named_children_with_parents(model)):
        if parent is None:
            continue
        if isinstance(module, QuantizedLinear):
            report.left_alone.append((path, f"already {type(module).__name__} ({module.scheme})"))
            continue
        selected = filter_fn(module, path) if filter_fn is not None else isinstance(module, nn.Linear)
        if not selected:
            if isinstance(module, nn.Linear):
                report.left_alone.append((path, "not selected by filter_fn"))
            continue
        if not isinstance(module, nn.Linear):
            raise ValueError(f"filter_fn selected {path} ({type(module).__name__}), but only nn.Linear layers can be "
                             f"quantized: return True for nn.Linear modules only")
        tied = embeddings.get(id(module.weight))
        if tied is not None and not include_embedding:
            report.left_alone.append((path, f"tied to the input embedding {tied[2]}; include_embedding=True "
                                            "quantizes both"))
            continue
        group = config.group_for(module)
        if group is not None and module.in_features % group != 0:
            raise ValueError(f"group_size must divide in_features of {path} ({module.in_features}), got {group}")
        quantized = config.convert(module)
        quantized.train(module.training)
        if report_accuracy:
            report.accuracy[path] = layer_sqnr(module, quantized)
        setattr(parent, name, quantized)
        report.swapped.append((path, type(module).__name__, type(quantized).__name__))
        report.bytes_before += module.weight.numel() * module.weight.element_size()
        report.bytes_after += quantized.weight_bytes()
        if tied is not None:
            embedding_parent, embedding_name, embedding_path, embedding = tied
            setattr(embedding_parent, embedding_name, QuantizedEmbedding(quantized, embedding.padding_idx))
            report.swapped.append((embedding_path, "Embedding", "QuantizedEmbedding"))
    _record(model, config, report, include_embedding)
    return report


def _refuse_mixed_schemes(model: nn.Module, config) -> None:
    """A model records one scheme (its config's quantization_config): quantizing more of it must use the same."""
    recorded = getattr(getattr(model, "config", None), "quantization_config", None)
    if not recorded:
        return
    same = {k: v for k, v in recorded.items() if k not in ("modules", "include_embedding")}
    if config_to_dict(config) != same:
        settings = ", ".join(f"{k}={v}" for k, v in same.items() if k not in ("quant_method", "scheme"))
        raise ValueError(f"config must match the scheme the model is already quantized with, "
                         f"{same.get('scheme')} ({settings}), got {config!r}: one model holds one scheme")


def _record(model: nn.Module, config, report: QuantizeReport, include_embedding: bool) -> None:
    """The scheme and the quantized layers as the model config's quantization_config (when the model has one)."""
    model_config = getattr(model, "config", None)
    if model_config is None or not report.swapped:
        return
    previous = getattr(model_config, "quantization_config", None) or {}
    modules = sorted(set(previous.get("modules", [])) | {p for p, old, _ in report.swapped if old != "Embedding"})
    model_config.quantization_config = {**config_to_dict(config), "modules": modules,
                                        "include_embedding": include_embedding or previous.get("include_embedding",
                                                                                              False)}
