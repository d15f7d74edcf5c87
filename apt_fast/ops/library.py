"""The `apt_fast` torch.library namespace, the ops defined in it and their argument checks."""

from __future__ import annotations

import functools
from typing import Callable, Dict

import torch

LIBRARY = torch.library.Library("apt_fast", "DEF")

# op name -> its reference kernel; filled by define_op.
OPS: Dict[str, Callable] = {}

# op name -> its argument check (raises ValueError naming the argument); filled by define_op.
CHECKS: Dict[str, Callable] = {}


def checked(name: str, kernel: Callable) -> Callable:
    """The kernel, preceded by the op's argument check."""
    check = CHECKS[name]

    @functools.wraps(kernel)
    def run(*args):
        check(*args)
        return kernel(*args)

    return run


# Excluded from the thread's dispatch keys while a Python dispatch mode runs a kernel; restored for references.
_AUTOGRAD_KEYS = (torch._C.DispatchKey.AutogradFunctionality, torch._C.DispatchKey.AutogradOther,
                  torch._C.DispatchKey.AutogradNestedTensor, torch._C.DispatchKey.ADInplaceOrView)


def with_autograd_dispatch(reference: Callable) -> Callable:
    """The reference run with autograd's dispatch keys, as in eager mode. A Python dispatch mode (torch.compile's
    AOT runtime, opcheck, FakeTensor cross-checks) calls a kernel with them excluded, and a reference that
    differentiates a recomputation (the *_bwd ops, distill_loss_fwd's gradient) then builds no graph: "element
    0 of tensors does not require grad". Grad mode stays as the reference sets it; inference mode, which
    excludes them by the caller's choice, is left as it is."""

    @functools.wraps(reference)
    def run(*args):
        if torch.is_inference_mode_enabled():
            return reference(*args)
        exclude = torch._C._dispatch_tls_local_exclude_set()
        for key in _AUTOGRAD_KEYS:
            exclude = exclude.remove(key)
        with torch._C._ForceDispatchKeyGuard(torch._C._dispatch_tls_local_include_set(), exclude):
            return reference(*args)

    return run


def define_op(name: str, schema: str, reference: Callable, fake: Callable, check: Callable) -> None:
    """Defines apt_fast::<name>: the reference as default kernel (see with_autograd_dispatch), `fake` for
    meta/fake tensors, and `check` (taking the op's arguments, raising ValueError) run once before the
    reference, the fake and every backend kernel registered through apt_fast.backends.registry.register_kernel."""
    CHECKS[name] = check
    LIBRARY.define(f"{name}{schema}")
    LIBRARY.impl(name, checked(name, with_autograd_dispatch(reference)), "CompositeExplicitAutograd")
    torch.library.register_fake(f"apt_fast::{name}", checked(name, fake), lib=LIBRARY)
    OPS[name] = reference
