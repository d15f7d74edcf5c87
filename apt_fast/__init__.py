"""apt_fast: fast kernels, training and export for the APT (Autopoietic Transformer) model.

    import apt_fast
    loss = apt_fast.functional.distill_loss(student_logits, teacher_logits, temperature=4.0)
    report = apt_fast.prune(model, apt_fast.MagnitudePruneConfig(0.5))    # masks that hold through training
    report = apt_fast.sparsify(model)                                     # pruned Linears -> SparseLinear where faster
"""

__version__ = "0.1.0"

from . import (
    backends,  # registers the CPU and CUDA kernels (importing it defines the ops: apt_fast.ops)
    functional,
    ops,
)
from .models.transformers_hook import install as _register_with_transformers
from .modules import DistillationLoss, Fp8Linear, FusedAPTAttention, Int8Linear, SparseLinear
from .patching import PatchReport, patch, unpatch
from .pruning import (
    BlockPruneConfig,
    MagnitudePruneConfig,
    NMPruneConfig,
    PruneReport,
    StructuredPruneConfig,
    TaylorPruneConfig,
    WandaPruneConfig,
    prune,
)
from .quantization import Fp8WeightOnlyConfig, Int8DynamicConfig, Int8WeightOnlyConfig, QuantizeReport, quantize

_register_with_transformers()  # AutoConfig/AutoModel/AutoTokenizer learn model_type "apt" as transformers loads them

# The model side pulls in transformers (seconds to import), so it is loaded on first use.
_LAZY = {
    "load": "apt_fast.models.apt.loading",
    "save": "apt_fast.models.apt.loading",
    "CheckpointError": "apt_fast.models.apt.loading",
    "APTConfig": "apt_fast.models.apt",
    "APTModel": "apt_fast.models.apt",
    "sparsify": "apt_fast.sparsity.convert",
    "SparsifyReport": "apt_fast.sparsity.report",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'apt_fast' has no attribute {name!r}")


__all__ = ["__version__", "backends", "functional", "ops", "DistillationLoss", "FusedAPTAttention", "PatchReport",
           "patch", "unpatch", *_LAZY]
__all__ += ["Fp8Linear", "Fp8WeightOnlyConfig", "Int8DynamicConfig", "Int8Linear", "Int8WeightOnlyConfig",
            "QuantizeReport", "quantize"]
__all__ += ["BlockPruneConfig", "MagnitudePruneConfig", "NMPruneConfig", "PruneReport", "StructuredPruneConfig",
            "TaylorPruneConfig", "WandaPruneConfig", "prune", "SparseLinear"]
