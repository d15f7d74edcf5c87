"""Tests of the native CPU kernels that reach them through torch.ops.apt_fast (or apt_fast.functional, or a
patched model) first make sure those kernels are the ones registered. Without apt_fast._C, or with
APT_FAST_BACKEND=reference, every such call goes to the plain-PyTorch reference, and a "native kernel" test
would compare the reference with the reference and pass without testing anything.

require_native(*ops) at the start of a test, or `served_natively = native_kernels_fixture(*ops)` at module
level for a module whose every test is such a test: skips with the reason where the native kernels cannot or
must not serve (not built; APT_FAST_BACKEND=reference), and fails where they should serve but another
implementation is registered. Tests that call a kernel function directly (apt_fast.backends.cpu.<family>)
run the native code whatever the backend setting and only need the extension to be built.
"""

from __future__ import annotations

import pytest

from apt_fast import _native, backends

APT_ATTENTION_OPS = ("apt_head_mean_fwd", "apt_head_mean_bwd", "apt_stats_fwd", "apt_stats_bwd",
                     "apt_attention_fwd", "apt_attention_bwd")
FLASH_ATTENTION_OPS = ("flash_attention_fwd", "flash_attention_bwd")
DISTILL_LOSS_OPS = ("distill_loss_fwd",)
QUANTIZED_LINEAR_OPS = ("int8_linear", "fp8_linear", "quantized_linear_grad_input", "fp8_quantize")


def require_native(*ops: str) -> None:
    """Skip unless the native CPU kernels of `ops` can serve; assert that they are the ones registered."""
    names = ", ".join(ops)
    if not _native.is_available():
        pytest.skip(f"apt_fast._C is not built, so there is no native CPU kernel of {names} to test")
    if backends.selected_backend() == "reference":
        pytest.skip(f"APT_FAST_BACKEND=reference: {names} are served by the reference on the CPU, "
                    "not by the native kernels this test is about")
    table = backends.op_table()
    unknown = [op for op in ops if op not in table]
    assert not unknown, f"not apt_fast ops: {unknown}"
    served = {op: table[op]["cpu"] for op in ops}
    assert all(s == "native" for s in served.values()), (
        f"the native CPU kernels under test are not the ones registered: {served} "
        f"(APT_FAST_BACKEND={backends.selected_backend()})")


def native_kernels_fixture(*ops: str):
    """An autouse fixture running require_native(*ops) before each test of the module that assigns it to a
    module-level name."""

    @pytest.fixture(autouse=True)
    def _served_natively():
        require_native(*ops)

    return _served_natively
