"""Data parallelism through torch.distributed, started by ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK).

No DistributedDataParallel wrapper: parameters are broadcast from rank 0 once, and before each
optimizer step (after all its accumulated backward passes) the gradients are averaged with one
all_reduce over a flat buffer. This keeps the model callable through ``encode`` / ``decode`` (the
objectives do) and makes a step's arithmetic that of one process with the same global batch. Backend:
gloo on CPU, nccl on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclass(frozen=True)
class Runtime:
    """Where this process runs: its rank, the number of processes and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, values: Tensor) -> Tensor:  # [K] -> [K], summed over processes
        if self.distributed:
            values = values.clone()
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast_parameters(self, model: nn.Module) -> None:
        """Make every process start from rank 0's weights."""
        if self.distributed:
            for tensor in [*model.parameters(), *model.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def average_gradients(self, params: list[nn.Parameter]) -> None:
        """Average ``.grad`` over processes (one all_reduce); parameters without a gradient are skipped."""
        if not self.distributed:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = _flatten_dense_tensors(grads)  # [sum numel]
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        for grad, reduced in zip(grads, _unflatten_dense_tensors(flat, grads)):
            grad.copy_(reduced)


def _default_device(local_rank: int) -> torch.device:
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def init_runtime(device: str | None = None) -> Runtime:
    """This process's runtime; joins the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = torch.device(device) if device else _default_device(local_rank)
    if world_size > 1 and not dist.is_initialized():
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Runtime(rank, world_size, chosen)


def shutdown_runtime(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()
