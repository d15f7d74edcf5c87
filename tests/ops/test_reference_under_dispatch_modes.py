"""The reference kernels under Python dispatch modes (torch.compile's AOT runtime, opcheck), in a fresh
interpreter with APT_FAST_BACKEND=reference: in this process apt_fast._C serves the CPU and they are not
reached. The references that differentiate a recomputation (the *_bwd ops, distill_loss_fwd's gradient) must
find their graph there, which the modes' dispatch state hid from them, and give the gradients in the layout
of the ops' fake kernels."""

import os
import subprocess
import sys
from pathlib import Path

OPS_DIR = Path(__file__).resolve().parent

DIFFERENTIATING_REFERENCES = ["apt_attention_bwd", "apt_head_mean_bwd", "apt_stats_bwd", "distill_loss_fwd",
                              "flash_attention_bwd"]

PROBE = """
import sys

import torch

import apt_fast.functional as AF
from apt_fast import backends
from test_registered_ops import SAMPLES

assert backends.op_table()["distill_loss_fwd"]["cpu"] == "reference"
student, teacher = torch.randn(8, 64), torch.randn(8, 64)


def step(s):
    return AF.distill_loss(s * 1.5, teacher, temperature=2.0, reduction="batchmean")


compiled, eager = student.clone().requires_grad_(), student.clone().requires_grad_()
torch.compile(step, fullgraph=True, backend="aot_eager")(compiled).backward()
step(eager).backward()
torch.testing.assert_close(compiled.grad, eager.grad)
for name in sys.argv[1:]:
    for args in SAMPLES[name]():
        torch.library.opcheck(getattr(torch.ops.apt_fast, name).default, args,
                              test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))
"""


def test_differentiating_references_work_under_dispatch_modes():
    path = os.pathsep.join([str(OPS_DIR), str(OPS_DIR.parent)])  # the op tests' samples and their helpers
    env = {**os.environ, "APT_FAST_BACKEND": "reference", "PYTHONPATH": path}
    result = subprocess.run([sys.executable, "-c", PROBE, *DIFFERENTIATING_REFERENCES], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
