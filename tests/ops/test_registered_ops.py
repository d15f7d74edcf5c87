"""Every op defined in the apt_fast namespace, through one test: it has sample arguments, its fake (meta)
implementation gives the shapes and dtypes of the real outputs, the native CPU kernel is the one registered and
runs without NaN, and torch.library.opcheck passes (schema, fake tensor, AOT dispatch).

Each op family's samples live beside its tests, in tests/ops/<family>/<family>_samples.py as
SAMPLES = {op name: function yielding argument tuples}; an op without samples fails here.
"""

import importlib.util
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from apt_fast import _native, backends
from apt_fast.ops import OPS

OPS_DIR = Path(__file__).resolve().parent


def _load_samples():
    samples = {}
    for path in sorted(OPS_DIR.glob("*/*_samples.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        samples.update(module.SAMPLES)
    return samples


SAMPLES = _load_samples()
OP_NAMES = sorted(OPS)


def test_every_op_has_samples():
    missing = sorted(set(OPS) - set(SAMPLES))
    unknown = sorted(set(SAMPLES) - set(OPS))
    assert not missing, f"ops without samples in tests/ops/<family>/<family>_samples.py: {missing}"
    assert not unknown, f"samples for ops that are not defined: {unknown}"


def _outputs(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("op_name", OP_NAMES)
def test_fake_matches_the_cpu_kernel(op_name):
    op = getattr(torch.ops.apt_fast, op_name).default
    for args in SAMPLES[op_name]():
        real = _outputs(op(*args))
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
            fake = _outputs(op(*fake_args))
        assert [(tuple(t.shape), t.dtype) for t in fake] == [(tuple(t.shape), t.dtype) for t in real], op_name


@pytest.mark.skipif(not _native.is_available(), reason="apt_fast._C is not built")
@pytest.mark.parametrize("op_name", OP_NAMES)
def test_native_cpu_kernel_is_registered_and_runs(op_name):
    serving = backends.op_table()[op_name]["cpu"]
    if backends.selected_backend() == "reference":
        pytest.skip("APT_FAST_BACKEND=reference: the native CPU kernels are deliberately not registered")
    assert serving == "native", f"apt_fast::{op_name} is served by {serving} on the CPU"
    op = getattr(torch.ops.apt_fast, op_name).default
    for args in SAMPLES[op_name]():
        for out in _outputs(op(*args)):
            assert not (out.is_floating_point() and out.isnan().any()), f"apt_fast::{op_name} gave NaN"



@pytest.mark.parametrize("op_name", OP_NAMES)
def test_opcheck(op_name):
    op = getattr(torch.ops.apt_fast, op_name).default
    for args in SAMPLES[op_name]():
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))
