"""apt_fast: fast kernels, training and export for the APT (Autopoietic Transformer) model.

    import apt_fast
    loss = apt_fast.functional.distill_loss(student_logits, teacher_logits, temperature=4.0)
"""

__version__ = "0.1.0"

from . import ops  # noqa: E402,F401  (defines the torch.library namespace apt_fast)
from . import backends  # noqa: E402,F401  (registers the CPU and CUDA kernels)
from . import functional  # noqa: E402,F401
from .modules import DistillationLoss  # noqa: E402,F401

__all__ = ["__version__", "backends", "functional", "ops", "DistillationLoss"]
