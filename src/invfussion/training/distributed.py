"""Distributed data-parallel helpers: one process per device, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m invfussion train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
without them everything runs as a single process. The global batch and every per-example random
stream are fixed by the configuration alone; each rank trains on its contiguous slice of the
global batch and DDP averages gradients, so the update equals the single-process one up to float
reduction order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Context:
    """Where this process sits: ``rank`` of ``world_size`` processes, computing on ``device``."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and sample grids."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init(device: str = "auto") -> Context:
    """Join the process group that ``torchrun`` describes in the environment (or run alone).

    ``device``: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:K"``. Under
    ``torchrun`` on CUDA each process takes GPU ``LOCAL_RANK`` and uses NCCL; on CPU, gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but CUDA is not available; pass --device cpu.")
        if dev.index is None:
            dev = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
    return Context(rank=rank, world_size=world_size, device=dev)


def shutdown(ctx: Context) -> None:
    """Leave the process group (a no-op for a single process)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def shard(global_batch: int, ctx: Context) -> slice:
    """This rank's contiguous slice of positions ``0..global_batch-1``."""
    if global_batch % ctx.world_size:
        raise ValueError(
            f"batch size {global_batch} does not split over {ctx.world_size} processes; "
            "pass a batch size divisible by the number of processes."
        )
    per_rank = global_batch // ctx.world_size
    return slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)


def wrap(net: nn.Module, ctx: Context) -> nn.Module:
    """DDP-wrap ``net`` when running distributed (``net`` itself otherwise).

    Unused parameters are tolerated: the log-variance head sits idle under the MMSE objective and
    the operator branch when a whole shard draws the zero operator.
    """
    if not ctx.distributed:
        return net
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=True)


def any_rank(flag: bool, ctx: Context) -> bool:
    """True on every rank if ``flag`` is true on any rank (a collective: call it on all ranks)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def mean_over_ranks(value: torch.Tensor, ctx: Context) -> torch.Tensor:
    """The average of ``value`` over ranks (a collective; ``value`` itself when alone)."""
    if not ctx.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / ctx.world_size


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()
