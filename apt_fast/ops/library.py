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


def define_op(name: str, schema: str, reference: Callable, fake: Callable, check: Callable) -> None:
    """Defines apt_fast::<name>: the reference as default kernel, `fake` for meta/fake tensors, and `check`
    (taking the op's arguments, raising ValueError) run once before the reference, the fake and every backend
    kernel registered through apt_fast.backends.registry.register_kernel."""
    CHECKS[name] = check
    LIBRARY.define(f"{name}{schema}")
    LIBRARY.impl(name, checked(name, reference), "CompositeExplicitAutograd")
    torch.library.register_fake(f"apt_fast::{name}", checked(name, fake), lib=LIBRARY)
    OPS[name] = reference
