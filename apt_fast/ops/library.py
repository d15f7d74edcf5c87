"""The `apt_fast` torch.library namespace and the table of ops defined in it."""

from __future__ import annotations

from typing import Callable, Dict

import torch

LIBRARY = torch.library.Library("apt_fast", "DEF")

# op name -> its reference kernel; filled by define_op.
OPS: Dict[str, Callable] = {}


def define_op(name: str, schema: str, reference: Callable, fake: Callable) -> None:
    """Defines apt_fast::<name>, with the reference as default kernel and `fake` for meta/fake tensors."""
    LIBRARY.define(f"{name}{schema}")
    LIBRARY.impl(name, reference, "CompositeExplicitAutograd")
    torch.library.register_fake(f"apt_fast::{name}", fake, lib=LIBRARY)
    OPS[name] = reference
