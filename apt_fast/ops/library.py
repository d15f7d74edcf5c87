"""The `apt_fast` torch.library namespace and the table of ops defined in it."""

from __future__ import annotations

import functools
from typing import Callable, Dict, Optional

import torch

LIBRARY = torch.library.Library("apt_fast", "DEF")

# op name -> its reference kernel; filled by define_op.
OPS: Dict[str, Callable] = {}

# op name -> its argument check (raises ValueError), run before every kernel registered through checked().
CHECKS: Dict[str, Callable] = {}


def checked(name: str, kernel: Callable) -> Callable:
    """The kernel, preceded by the op's argument check when it has one."""
    check = CHECKS.get(name)
    if check is None:
        return kernel

    @functools.wraps(kernel)
    def run(*args):
        check(*args)
        return kernel(*args)

    return run


def define_op(name: str, schema: str, reference: Callable, fake: Callable, check: Optional[Callable] = None) -> None:
    """Defines apt_fast::<name>: the reference as default kernel, `fake` for meta/fake tensors, and `check`
    (taking the op's arguments) run before the reference, the fake and every backend kernel."""
    if check is not None:
        CHECKS[name] = check
    LIBRARY.define(f"{name}{schema}")
    LIBRARY.impl(name, checked(name, reference), "CompositeExplicitAutograd")
    torch.library.register_fake(f"apt_fast::{name}", checked(name, fake), lib=LIBRARY)
    OPS[name] = reference
