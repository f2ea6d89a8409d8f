"""Training on several processes: the process group and DistributedDataParallel (the launcher is
:mod:`zoo_core.launcher`).

Two ways in, one engine. ``zoo train MODEL --nproc N`` starts N workers on this machine through the elastic
launcher API (the code torchrun runs); ``torchrun ... -m zoo_core train MODEL`` starts them from outside, on as many
machines as the rendezvous gathers. Either way each worker runs the plain ``zoo train``; the engine finds RANK,
WORLD_SIZE and LOCAL_RANK in its environment and calls :func:`join_from_env`.

What the engine does with a :class:`Group` of more than one process:

- ``batch_size`` stays the global batch: every process draws the same shuffled epoch and takes rows
  ``rank, rank + world_size, ...`` of each global batch (:meth:`Group.shard`), so every sample is seen once an epoch;
- each trained network is wrapped in DDP (:func:`wrap_networks`) whose gradient hook weighs each process's
  gradients so that they add up to one process's on the global batch, for mean and for sum losses alike
  (:attr:`zoo_core.recipe.Recipe.loss_reduction`);
- metric sums are all-reduced with the same weights, so metrics.jsonl reads as in a one-process run;
- only rank 0 writes files and draws the progress bar; checkpoints hold rank 0's weights (the same on every
  rank) plus each rank's random-generator state, so they load at any world size.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from zoo_core.errors import UsageError, ZooError

#: Set by the launcher so that every worker, and every restart of the group, names a fresh run directory alike.
RUN_STAMP_ENV = "ZOO_RUN_STAMP"
#: Steps between two checks that every rank agrees on stopping (Ctrl-C).
AGREE_EVERY = 16


@dataclass
class StepWeight:
    """How much this process's share of the current step counts: its gradients and metrics are multiplied by it
    before the sum over processes (0 for a stand-in item, see :meth:`Group.shard`)."""

    gradients: float = 1.0
    metrics: float = 1.0


@dataclass
class Group:
    """This process's place in the run: rank 0 of 1 unless torchrun (or ``zoo train --nproc``) started it."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    restarts: int = 0
    launch_id: str = ""  # the same for every attempt of one launch: a restart recognises its own run directory
    device: torch.device | None = None  # this process's device once joined (cuda:LOCAL_RANK on GPUs)
    weight: StepWeight = field(default_factory=StepWeight)
    _joined: bool = False

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def seed_parts(self) -> tuple[int, ...]:
        """Extra seed parts for this rank's step noise: none on rank 0, so a one-process run draws as before."""
        return (self.rank,) if self.rank else ()

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size < self.world_size:
            raise UsageError(f"batch_size {batch_size} is the global batch and cannot be split over "
                             f"{self.world_size} processes; pass --batch-size {self.world_size} or more")

    def shard(self, batch: Mapping[str, torch.Tensor], loss_reduction: str) -> tuple[dict[str, torch.Tensor], int]:
        """This rank's rows of a global batch, and the global batch's item count; sets :attr:`weight`.

        A rank whose share of a short last batch is empty computes on the batch's first item weighted zero,
        so that every rank still takes part in the step's collectives.
        """
        total = len(next(iter(batch.values())))
        if not self.active:
            return dict(batch), total
        rows = torch.arange(self.rank, max(total, self.rank), self.world_size)
        stand_in = len(rows) == 0
        if stand_in:
            rows = torch.zeros(1, dtype=torch.int64)
        share = 0.0 if stand_in else len(rows) / total
        self.weight.gradients = 0.0 if stand_in else (1.0 if loss_reduction == "sum" else share)
        self.weight.metrics = share  # training_step's metrics are means over the batch
        return {name: tensor.index_select(0, rows.to(tensor.device)) for name, tensor in batch.items()}, total

    def sum_metrics(self, sums: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weighted metric sums added over ranks (a copy: the caller's running sums stay this rank's)."""
        if not self.active or not sums:
            return dict(sums)
        names = sorted(sums)
        stacked = torch.stack([sums[name].detach() for name in names])
        torch.distributed.all_reduce(stacked)
        return dict(zip(names, stacked, strict=True))

    def gather_states(self, states: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Random-generator states of every rank, stacked as ``NAME_ranks`` next to rank 0's own ``NAME``."""
        if not self.active:
            return dict(states)
        everyone: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(everyone, {k: v.cpu() for k, v in states.items()})
        gathered = dict(everyone[0])
        for name in states:
            gathered[f"{name}_ranks"] = torch.stack([ranks[name] for ranks in everyone])
        return gathered

    def rank_state(self, tensors: Mapping[str, torch.Tensor], name: str) -> torch.Tensor | None:
        """This rank's saved ``extra/NAME`` state: its own row when the checkpoint came from the same world size,
        rank 0's on rank 0 otherwise, None for a rank the checkpoint had no row for (it reseeds)."""
        rows = tensors.get(f"extra/{name}_ranks")
        if rows is not None and len(rows) == self.world_size:
            return rows[self.rank].clone()  # set_state wants a tensor of its own, not a view at an offset
        if self.rank == 0 or (rows is None and not self.active):
            return tensors.get(f"extra/{name}")
        return None

    def agree(self, value: Any) -> Any:
        """Rank 0's value of a small picklable object, on every rank."""
        if not self.active:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def anyone(self, flag: bool, step: int | None = None) -> bool:
        """Whether any rank raised ``flag`` (Ctrl-C reaches the processes at different steps, and they must stop at
        the same one). Asked of the group every :data:`AGREE_EVERY` steps, not each, to spare a sync per step."""
        if not self.active:
            return flag
        if step is not None and step % AGREE_EVERY:
            return False
        raised = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch.distributed.all_reduce(raised, op=torch.distributed.ReduceOp.MAX)
        return bool(raised.item())

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def group_from_env() -> Group:
    """The Group torchrun's environment describes (one process when there is none)."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError as error:
        raise UsageError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({error})") from None
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise UsageError(f"RANK {rank} / WORLD_SIZE {world_size} / LOCAL_RANK {local_rank} do not describe a "
                         "process of a group")
    launch_id = f"{os.environ.get('TORCHELASTIC_RUN_ID', '')}/{os.environ.get(RUN_STAMP_ENV, '')}"
    return Group(rank=rank, world_size=world_size, local_rank=local_rank, restarts=restarts, launch_id=launch_id)


def join_from_env(device: torch.device) -> Group:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA with one GPU per local rank) and note
    this process's device in the group. Outside torchrun: a group of one, nothing joined."""
    group = group_from_env()
    if not group.active:
        return group
    if device.type == "cuda":
        if group.local_rank >= torch.cuda.device_count():
            raise UsageError(f"local rank {group.local_rank} has no GPU: this machine has "
                             f"{torch.cuda.device_count()}; start at most that many processes per machine")
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise UsageError(f"training on several processes needs --device cpu or cuda, not {device.type}")
    kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
    from torch.distributed.rendezvous import rendezvous

    store, _, _ = next(rendezvous("env://", group.rank, group.world_size))
    # The agent's store outlives a restart: without a key prefix per attempt, a restarted rank can read an address
    # the previous attempt's rank 0 published and time out connecting to a process that is gone.
    store = torch.distributed.PrefixStore(f"zoo/attempt_{group.restarts}", store)
    torch.distributed.init_process_group(backend, store=store, rank=group.rank, world_size=group.world_size,
                                         **kwargs)
    group._joined = True
    group.device = device
    return group


def lost_the_group(error: BaseException) -> str:
    """The reason, when ``error`` is a collective failing because another process died or hung; else ''."""
    text = str(error)
    if not isinstance(error, torch.distributed.DistError) and not any(
            mark in text for mark in ("gloo", "NCCL", "c10d", "Connection closed by peer", "Connection reset by peer")):
        return ""
    for mark in ("Connection closed by peer", "Connection reset by peer", "Timed out", "timed out"):
        if mark in text:
            return mark.lower()
    return text.strip().splitlines()[0][:160] if text.strip() else type(error).__name__


def leave(group: Group) -> None:
    if group._joined and torch.distributed.is_initialized():
        import gc

        gc.collect()  # DDP replicas sit in reference cycles: free them, and their hold on the group, first
        torch.distributed.destroy_process_group()
        group._joined = False


# -- DDP ----------------------------------------------------------------------------------------------------
class Replica(nn.parallel.DistributedDataParallel):
    """DDP that also answers for its module's attributes, so a recipe reading ``networks["D_A"].pool`` or calling a
    helper method needs no change. Gradients synchronise only through ``forward``: see PLUGINS.md."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)


def _weighted_all_reduce(weight: StepWeight, bucket):  # unannotated: DDP checks the hook's annotations
    """Sum over ranks of each rank's gradients times its weight (DDP's default divides by the world size)."""
    buffer = bucket.buffer()
    if weight.gradients != 1.0:
        buffer.mul_(weight.gradients)
    return torch.distributed.all_reduce(buffer, async_op=True).get_future().then(lambda done: done.value()[0])


def wrap_networks(networks: Mapping[str, nn.Module], device: torch.device, group: Group) -> dict[str, nn.Module]:
    """Each trainable network as a DDP replica (BatchNorm made SyncBatchNorm on CUDA); unchanged for one process.

    The returned mapping is what ``training_step`` gets; the plain modules (the same parameters) stay with the
    engine for validation, sample grids and checkpoints. Buffers start equal but are not broadcast each step: the
    CycleGAN's image pool is per process, and SyncBatchNorm keeps running statistics equal on CUDA.
    """
    if not group.active:
        return dict(networks)
    wrapped: dict[str, nn.Module] = {}
    for name, network in networks.items():
        if device.type == "cuda":
            converted = nn.SyncBatchNorm.convert_sync_batchnorm(network)
            if converted is not network:  # the network itself was a BatchNorm layer: children are converted in place
                raise ZooError(f"network {name} is a bare BatchNorm layer; wrap it in a module to train it with DDP")
        if not any(p.requires_grad for p in network.parameters()):
            wrapped[name] = network
            continue
        replica = Replica(network, device_ids=[device.index] if device.type == "cuda" else None,
                          forward_sync_buffers=False)
        replica.register_comm_hook(group.weight, _weighted_all_reduce)
        wrapped[name] = replica
    return wrapped


def inside_worker() -> bool:
    """Whether torchrun (or an outer ``zoo train --nproc``) started this process."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ
