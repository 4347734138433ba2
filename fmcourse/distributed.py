"""Data-parallel training with PyTorch's own engine: ``torch.distributed`` and ``DistributedDataParallel``.

Launch any training script with ``torchrun``, which starts one process per device and tells each its
place through environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``)::

    torchrun --standalone --nproc_per_node 2 -m fmcourse.pretrain --pydoc --out runs/ddp
    torchrun --nnodes 2 --node_rank 0 --rdzv_endpoint host:29500 --nproc_per_node 8 -m fmcourse.pretrain ...

Each process holds a full copy of the model and computes the gradient of its own share of the batch;
``DistributedDataParallel`` averages the gradients over the processes (an all-reduce) during the
backward pass, so every copy takes the same optimizer step. With equal shares the average of the
per-process mean losses is the mean loss of the whole batch: ``N`` processes with ``B / N`` rows each
take exactly the step of one process with ``B`` rows (up to floating-point rounding). The back end is
NCCL on GPUs and gloo on CPUs; the code is the same.

Outside ``torchrun`` nothing here is needed: ``launched()`` is False, ``rank()`` is 0 and
``world_size()`` is 1, so a script written with these helpers runs unchanged on one process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """True inside a process started by ``torchrun`` (or another launcher that sets ``WORLD_SIZE``)."""
    return "WORLD_SIZE" in os.environ


def rank() -> int:
    """This process's number, 0 to ``world_size() - 1`` (0 outside a launcher)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    """The number of processes training together (1 outside a launcher)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    """True on the process that logs and writes files (rank 0)."""
    return rank() == 0


def init(device: torch.device | str | None = None) -> torch.device:
    """Join the process group that the launcher set up and return this process's device.

    On GPUs each process takes the GPU ``LOCAL_RANK`` and the NCCL back end; on CPUs the gloo back end.
    Calling it again returns the same device. Raises ``RuntimeError`` naming the missing environment
    variables when the process was not started by ``torchrun``.
    """
    if missing := [name for name in LAUNCHER_VARIABLES if name not in os.environ]:
        raise RuntimeError(f"not started by a launcher: the environment lacks {', '.join(missing)}. Start the "
                           f"script with `torchrun --standalone --nproc_per_node 2 <script or -m module> ...`")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"distributed training runs on cuda (NCCL) or cpu (gloo), not {device.type}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def close() -> None:
    """Leave the process group (nothing to do outside a launcher)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_batch_size(global_batch: int, world: int | None = None) -> int:
    """The rows each of ``world`` processes computes so that together they make ``global_batch``.

    Raises ``ValueError`` when ``world`` does not divide ``global_batch`` (unequal shares would
    weight the processes' gradients unequally)."""
    world = world_size() if world is None else world
    if not isinstance(world, int) or world < 1:
        raise ValueError(f"world size must be a positive int, got {world!r}")
    if global_batch % world:
        raise ValueError(f"the batch of {global_batch} rows cannot be split evenly over {world} processes: "
                         f"give a batch size that is a multiple of {world}")
    return global_batch // world


def shard(batches: Callable[[], object], rank_: int | None = None, world: int | None = None) -> Callable[[], object]:
    """A batch function that gives this process its rows of each global batch of ``batches``.

    Every process draws the same global batch (the same seed gives the same stream) and keeps the
    rows ``rank * b .. (rank + 1) * b`` of it, ``b = B / world``; a batch is a tensor or a tuple of
    tensors whose first dimension is the batch.
    """
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world

    def take(batch):
        if isinstance(batch, torch.Tensor):
            b = local_batch_size(batch.size(0), world)
            return batch[rank_ * b:(rank_ + 1) * b]
        return type(batch)(take(item) for item in batch)

    return lambda: take(batches())


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device``, wrapped in ``DistributedDataParallel`` (gradients averaged over processes)."""
    model.to(device)
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def silence_other_ranks() -> None:
    """Send the standard output of every process but rank 0 to nowhere, so a run logs once.
    Errors (standard error) still show from every process."""
    if not is_main():
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
