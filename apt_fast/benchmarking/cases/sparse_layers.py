"""Cases shared by the sparse matmul families (bitmap_linear, nm_linear, block_linear): layers of K = N = 4096 with
N(0, 1/K) weights, pruned by a family's mask and packed in its format, and the three kinds of case every family
states:

* ``forward_case``: the packed weights' ``linear`` against a dense baseline on the same masked weights, the
  weights of several layers cycled at decode shapes so that neither side's weights are cache-resident;
* ``backward_case``: the family's backward op (grad_x and the masked grad of the values in one call) against the
  forward op of the same layer: the backward must cost <= 1.2x the forward;
* ``never_slower_case``: pruned nn.Linear layers converted by apt_fast.sparsify (the measuring dispatcher, its
  route per row count), each applied to the same x, against the same dense layers: <= 1.0x their time.

Each case checks its outputs first: against dense F.linear on the masked weight (fp32 within 1e-5 relative;
bf16 within 2 bf16 ulps of the largest output, the rounding of both outputs to bf16; int8 by SQNR >= 30 dB, or
against apt_fast's dense W8A8 on the same masked weight within 1e-5 relative, its quantization being the same).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...sparsity.formats import SparseWeight, pack
from ..harness import BenchCase
from ..peaks import Work
from ..targets import Targets
from .common import assert_close, check_all

K = N = 4096
WORKING_SET_BYTES = 128 * 2**20  # weights cycled at decode: the packed set at least this
DENSE_WORKING_SET_BYTES = 256 * 2**20  # and the dense set (twice: 128 MiB was seen partly cache-resident here)
MAX_LAYERS = 64
FP32_RTOL = 1e-5
BF16_RTOL = 2 * 2.0 ** -8  # two bf16 ulps: both outputs are rounded to bf16 after fp32 sums in different orders
INT8_MIN_SQNR_DB = 30.0  # W8A8: per-channel weights and per-row activations, as the dense W8A8 GEMM's check
THREADS = 2

MaskFn = Callable[[Tensor, int], Tensor]  # (weight [N, K], layer index) -> keep-mask [N, K] bool


def dtype_label(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "").replace("float32", "fp32").replace("bfloat16", "bf16")


# --- masks ---------------------------------------------------------------------------------------------------

def random_mask(sparsity: float) -> MaskFn:
    """Unstructured: each weight kept with probability 1 - sparsity (what magnitude pruning leaves on Gaussian
    weights: no pattern)."""
    return lambda weight, index: torch.rand(weight.shape, generator=torch.Generator().manual_seed(100 + index)) \
        >= sparsity


def nm_mask(n: int, m: int) -> MaskFn:
    """The n largest |w| of every m consecutive inputs."""
    def mask(weight: Tensor, index: int) -> Tensor:
        groups = weight.abs().reshape(weight.shape[0], -1, m)  # [N, K / m, m]
        keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, groups.topk(n, -1).indices, True)
        return keep.reshape(weight.shape)

    return mask


def block_mask(sparsity: float, block: Sequence[int]) -> MaskFn:
    """Whole (bn, bk) blocks kept with probability 1 - sparsity."""
    bn, bk = block

    def mask(weight: Tensor, index: int) -> Tensor:
        blocks = torch.rand(weight.shape[0] // bn, weight.shape[1] // bk,
                            generator=torch.Generator().manual_seed(100 + index)) >= sparsity
        return blocks.repeat_interleave(bn, 0).repeat_interleave(bk, 1)

    return mask


# --- layers --------------------------------------------------------------------------------------------------

@dataclass
class Layers:
    """Pruned layers, called in turn: ``dense`` [N, K] masked weights (fp32, zeros where pruned) and ``sparse``, the
    same packed. At decode shapes a few distinct weights are cycled (256 MiB in the baseline's dtype) and the
    packed side holds as many copies of them as make >= 128 MiB of packed bytes, call i reading copy i (distinct
    memory) and dense weight i % len(dense): neither side's weights are cache-resident, and the outputs agree call by
    call. ``sparsity`` is the measured fraction pruned."""

    dense: List[Tensor]
    sparse: List[SparseWeight]
    sparsity: float

    @property
    def calls(self) -> int:
        return len(self.sparse)

    def dense_at(self, call: int) -> Tensor:
        return self.dense[call % len(self.dense)]

    def sparse_bytes(self) -> int:
        return sum(w.nbytes() for w in self.sparse)

    def describe(self) -> str:
        weight = self.sparse[0]
        options = {k: v for k, v in weight.options().items() if k not in ("format", "dtype")}
        extra = "".join(f" {k}={tuple(v) if isinstance(v, list) else v}" for k, v in options.items())
        return (f"{weight.format_name}{extra} {dtype_label(weight.values.dtype)} values, "
                f"{100 * self.sparsity:.0f}% sparse")

    def describe_cycle(self) -> str:
        if self.calls == 1:
            return ""
        return (f", {self.calls} layers cycled ({len(self.dense)} distinct weights dense, "
                f"{self.sparse_bytes() / 2**20:.0f} MiB packed)")


def _weight(index: int) -> Tensor:
    return torch.randn(N, K, generator=torch.Generator().manual_seed(index)) * K ** -0.5  # [N, K]


def _clone(weight: SparseWeight) -> SparseWeight:
    return type(weight)(**{f.name: getattr(weight, f.name).clone() if isinstance(getattr(weight, f.name), Tensor)
                           else getattr(weight, f.name) for f in fields(weight)})


def build_layers(mask_fn: MaskFn, format: str, dtype: torch.dtype, cycled: bool, baseline_bytes: int = 4,
                 **options) -> Layers:
    """One layer, or (``cycled``) the distinct weights and packed copies of Layers' docstring: as many distinct
    weights as make 256 MiB at the baseline's ``baseline_bytes`` per weight, packed copies up to 64."""
    distinct = math.ceil(DENSE_WORKING_SET_BYTES / (N * K * baseline_bytes)) if cycled else 1
    dense, sparse, kept = [], [], 0
    for index in range(distinct):
        weight = _weight(index)
        mask = mask_fn(weight, index)  # [N, K] bool
        packed = pack(weight, mask, format, dtype, **options)
        dense.append(packed.to_dense())  # [N, K] fp32 (int8 dequantized)
        sparse.append(packed)
        kept += int(mask.sum())
    if cycled:
        calls, packed = distinct, sum(w.nbytes() for w in sparse)
        while calls < MAX_LAYERS and packed < WORKING_SET_BYTES:
            sparse.append(_clone(sparse[calls % distinct]))
            packed += sparse[-1].nbytes()
            calls += 1
    return Layers(dense, sparse, 1.0 - kept / (len(dense) * N * K))


def x_rows(rows: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(rows, K, generator=torch.Generator().manual_seed(1)).to(dtype)  # [M, K]


# --- checks --------------------------------------------------------------------------------------------------

def sqnr_db(reference: Tensor, approximation: Tensor) -> float:
    noise = (reference.double() - approximation.double()).pow(2).sum().item()
    return math.inf if noise == 0 else 10 * math.log10(reference.double().pow(2).sum().item() / noise)


def rtol_of(dtype: torch.dtype) -> float:
    return BF16_RTOL if dtype == torch.bfloat16 else FP32_RTOL


def check_close(rtol: float):
    def check(baseline: List[Tensor], candidate: List[Tensor]) -> dict:
        check_all(rtol, baseline, candidate)
        return {"checked": f"against the baseline within {rtol:.1e} relative"}

    return check


def check_sqnr(minimum_db: float):
    def check(baseline: List[Tensor], candidate: List[Tensor]) -> dict:
        worst = min(sqnr_db(b.float(), c.float()) for b, c in zip(baseline, candidate))
        if worst < minimum_db:
            raise AssertionError(f"output SQNR {worst:.1f} dB against the baseline < {minimum_db} dB")
        return {"sqnr_db_vs_baseline": worst}

    return check


# --- forward ---------------------------------------------------------------------------------------------------

def sparse_forward(inputs) -> List[Tensor]:
    x = inputs["x"]
    with torch.no_grad():
        return [w.linear(x, w.values, None) for w in inputs["layers"].sparse]


def dense_forward(inputs) -> List[Tensor]:
    """torch F.linear on the masked weights in the baseline's dtype (inputs["dense"]), one call per packed layer."""
    x, dense = inputs["x"], inputs["dense"]
    with torch.no_grad():
        return [F.linear(x, dense[call % len(dense)]) for call in range(inputs["layers"].calls)]


def forward_case(name: str, family: str, layers_fn: Callable[[bool], Layers], rows: int, x_dtype: torch.dtype,
                 targets: Targets, baseline: Optional[Callable] = None, baseline_name: str = "",
                 baseline_inputs: Optional[Callable[[Layers, Tensor], Dict]] = None,
                 check: Optional[Callable] = None, quick: bool = True, repeats: Optional[int] = None) -> BenchCase:
    """``layers_fn(quick)`` -> the layers (cycled at decode shapes); x [rows, K] in ``x_dtype``. The default
    baseline is torch F.linear on the masked weights in x's dtype; ``baseline_inputs(layers, x)`` adds what another
    baseline needs to the inputs."""
    def make_inputs(quick_run: bool):
        layers = layers_fn(quick_run)
        x = x_rows(rows, x_dtype)
        inputs = {"layers": layers, "x": x, "dense": [w.to(x_dtype) for w in layers.dense]}
        if baseline_inputs is not None:
            inputs.update(baseline_inputs(layers, x))
        return inputs

    def shape(inputs) -> str:
        layers = inputs["layers"]
        return f"M={rows} K=N={K} {layers.describe()}, x {dtype_label(x_dtype)}{layers.describe_cycle()}"

    def work(inputs) -> Work:
        layers = inputs["layers"]
        if rows == 1:
            return Work(layers.sparse_bytes(), "memory")
        kind = {torch.int8: "int8", torch.bfloat16: "bf16"}.get(layers.sparse[0].values.dtype, "fp32")
        return Work(2.0 * rows * N * K * (1 - layers.sparsity) * layers.calls, kind)

    return BenchCase(
        name=name, family=family, shape=shape, make_inputs=make_inputs, prepare=lambda inputs: inputs,
        baseline=baseline or dense_forward, candidate=sparse_forward,
        check=check or check_close(rtol_of(x_dtype)),
        baseline_name=baseline_name or f"torch {dtype_label(x_dtype)} F.linear on the masked weight",
        targets=targets, work=work, quick=quick, repeats=repeats)


# --- backward --------------------------------------------------------------------------------------------------

BackwardOp = Callable[[Tensor, Tensor, SparseWeight], tuple]  # (grad_y, x, weight) -> (grad_x, grad_values)


def backward_case(family: str, layers_fn: Callable[[bool], Layers], rows: int, backward_op: BackwardOp,
                  max_time_ratio: float = 1.2, quick: bool = True) -> BenchCase:
    """The backward op (grad_x and the values' grad) against the forward op on one layer, x [rows, K] fp32. The
    check compares both with dense autograd on the masked weight, and records dense backward / forward (torch's
    own two GEMMs against its one) for context."""
    expected: Dict[str, object] = {}  # filled by make_inputs for the check, which sees only the outputs

    def make_inputs(quick_run: bool):
        layers = layers_fn(quick_run)
        x = x_rows(rows)  # [M, K]
        grad_y = torch.randn(rows, N, generator=torch.Generator().manual_seed(2))  # [M, N]
        dense = layers.dense[0].clone().requires_grad_(True)  # [N, K]
        x_leaf = x.clone().requires_grad_(True)
        y = F.linear(x_leaf, dense)  # [M, N]
        y.backward(grad_y)
        weight = layers.sparse[0]
        expected.update(weight=weight, y=y.detach(), grad_x=x_leaf.grad, grad_kept=dense.grad[weight.mask()],
                        dense_ratio=_dense_backward_over_forward(x, grad_y, layers.dense[0]))
        return {"layers": layers, "x": x, "grad_y": grad_y}

    def candidate(inputs):
        return list(backward_op(inputs["grad_y"], inputs["x"], inputs["layers"].sparse[0]))

    def check(baseline: List[Tensor], candidate_out: List[Tensor]) -> dict:
        assert_close("forward output", expected["y"], baseline[0], FP32_RTOL)
        grad_x, grad_values = candidate_out
        assert_close("grad_x", expected["grad_x"], grad_x, FP32_RTOL)
        assert_close("grad_values", expected["grad_kept"], _kept_in_mask_order(expected["weight"], grad_values),
                     FP32_RTOL)
        return {"dense_backward_over_forward": expected["dense_ratio"]}

    def shape(inputs) -> str:
        return f"M={rows} K=N={K} {inputs['layers'].describe()}, x fp32: grad_x + masked grad_values in one call"

    return BenchCase(
        name=f"{family}_backward[M={rows}, vs forward]", family=family, shape=shape, make_inputs=make_inputs,
        prepare=lambda inputs: inputs, baseline=sparse_forward_one, candidate=candidate, check=check,
        baseline_name="the same layer's forward", targets=Targets(max_time_ratio=max_time_ratio),
        work=lambda inputs: Work(4.0 * rows * N * K * (1 - inputs["layers"].sparsity), "fp32"), quick=quick)


def sparse_forward_one(inputs) -> List[Tensor]:
    weight = inputs["layers"].sparse[0]
    with torch.no_grad():
        return [weight.linear(inputs["x"], weight.values, None)]


def _kept_in_mask_order(weight: SparseWeight, grad_values: Tensor) -> Tensor:
    """The values' gradient as the mask's kept entries in row-major order (entries a format stores beyond the mask,
    e.g. zeros inside a kept block or an N:M group, dropped)."""
    dense = weight.to_dense(grad_values.float())  # [N, K]: scatters each stored value's gradient to its place
    return dense[weight.mask()]


def _dense_backward_over_forward(x: Tensor, grad_y: Tensor, weight: Tensor, repeats: int = 5) -> float:
    """torch's dense grad_x = grad_y . W and dW = grad_y^T . x against its forward x . W^T (median of each)."""
    import statistics
    import time

    def median(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    forward = median(lambda: F.linear(x, weight))
    backward = median(lambda: (grad_y @ weight, grad_y.t() @ x))
    return backward / forward


# --- never slower ----------------------------------------------------------------------------------------------

def never_slower_case(family: str, label: str, mask_fn: MaskFn, rows: int, layer_count: int,
                      dense_dtype: torch.dtype = torch.float32, quick: bool = True, **sparsify_options) -> BenchCase:
    """``layer_count`` pruned nn.Linear(4096, 4096) in ``dense_dtype`` (decode reads each once: 4 fp32 layers are
    256 MiB), converted by apt_fast.sparsify with its measuring dispatcher (min_speedup 1.05; a layer it keeps dense
    stays nn.Linear, a converted one routes each row count to the faster path), each applied to x [rows, K]
    against the same dense layers: the sparse ones must never be slower (<= 1.0x)."""
    def make_inputs(quick_run: bool):
        from ...sparsity.convert import sparsify

        dense_layers = []
        for index in range(layer_count):
            weight = _weight(index)
            layer = nn.Linear(K, N, bias=False, dtype=dense_dtype)
            with torch.no_grad():
                layer.weight.copy_(weight * mask_fn(weight, index))
            dense_layers.append(layer.requires_grad_(False))
        model = nn.ModuleList([_copy_linear(layer) for layer in dense_layers])
        report = sparsify(model, **sparsify_options)
        return {"dense": nn.ModuleList(dense_layers), "model": model, "x": x_rows(rows, dense_dtype),
                "report": report}

    def run(model_key: str):
        def call(inputs) -> List[Tensor]:
            with torch.no_grad():
                return [layer(inputs["x"]) for layer in inputs[model_key]]

        return call

    def shape(inputs) -> str:
        decisions = inputs["report"].layers
        kinds = sorted({d.kind or "dense" for d in decisions})
        routes = sorted({d.route or f"stayed nn.Linear ({d.dense_reason})" for d in decisions})
        sparsity = sum(d.sparsity for d in decisions) / max(len(decisions), 1)
        return (f"M={rows} K=N={K}, {layer_count} layers {100 * sparsity:.0f}% sparse ({label}), "
                f"{dtype_label(dense_dtype)}; sparsify: {', '.join(kinds)}; {'; '.join(routes)}")

    int8 = sparsify_options.get("dtype") == torch.int8
    return BenchCase(
        name=f"{family}_never_slower[{label}, M={rows}]", family=family, shape=shape, make_inputs=make_inputs,
        prepare=lambda inputs: inputs, baseline=run("dense"), candidate=run("model"),
        check=check_sqnr(INT8_MIN_SQNR_DB) if int8 else check_close(rtol_of(dense_dtype)),
        baseline_name=f"the dense layers (torch {dtype_label(dense_dtype)} F.linear)",
        targets=Targets(max_time_ratio=1.0), quick=quick)


def _copy_linear(layer: nn.Linear) -> nn.Linear:
    copy = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, dtype=layer.weight.dtype)
    copy.load_state_dict(layer.state_dict())
    return copy.requires_grad_(False)
