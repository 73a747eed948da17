"""Seeded, shuffled mini-batches of in-memory tensors, partitioned across ranks, resumable
mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from medsyn.errors import ConfigError, DataError
from medsyn.generators.engine.distributed import DistInfo


class _Length:
    """The only thing DistributedSampler needs of a dataset."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


class BatchSource:
    """Seeded, shuffled mini-batches of in-memory tensors (images, labels, ...).

    The order of epoch ``e`` is ``torch.utils.data.DistributedSampler(seed=seed)`` with
    ``set_epoch(e)``: a pure function of (seed, epoch, rank, world size), so a run resumed in
    the middle of an epoch sees the same remaining batches (``skip``). Under torchrun each rank
    takes its share; ``batch_size`` is the global batch, each rank gets ``batch_size //
    world_size``. The last incomplete batch of an epoch is dropped (batch norm and the GAN losses
    assume full batches).

    ``on_device``: ``None`` holds the tensors on the training device when they take less than a
    quarter of its free memory (cxr3 at 112 px is 35 MB), else they stay in pinned host memory
    and each batch is copied asynchronously.
    """

    def __init__(self, tensors: Sequence[torch.Tensor], batch_size: int, *, device: torch.device,
                 seed: int, dist: DistInfo | None = None, shuffle: bool = True,
                 on_device: bool | None = None, what: str = "dataset"):
        from torch.utils.data import DistributedSampler

        dist = dist or DistInfo()
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("tensors must be a non-empty sequence of equally long tensors")
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}.")
        if batch_size % dist.world_size:
            raise ConfigError(
                f"--batch-size {batch_size} is not divisible by the {dist.world_size} processes "
                "of this torchrun job; each process takes an equal share.")
        self.n = len(tensors[0])
        self.batch_size = batch_size
        self.local_batch_size = batch_size // dist.world_size
        self.device = device
        self.sampler = DistributedSampler(_Length(self.n), num_replicas=dist.world_size,
                                          rank=dist.rank, shuffle=shuffle, seed=seed,
                                          drop_last=True)
        self.num_batches = len(self.sampler) // self.local_batch_size
        if self.num_batches == 0:
            raise DataError(
                f"{what} has {self.n} images, fewer than one batch of {batch_size}"
                + (f" ({self.local_batch_size} per process)" if dist.enabled else "")
                + "; lower --batch-size.")
        if on_device is None:
            on_device = device.type == "cpu" or _fits_on_device(tensors, device)
        self.on_device = bool(on_device)
        if self.on_device:
            self.tensors = [t.to(device) for t in tensors]
        else:
            pin = device.type == "cuda"
            self.tensors = [t.pin_memory() if pin else t for t in tensors]

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        """Batches of epoch ``epoch`` (0-based), leaving out the first ``skip`` ones."""
        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(self.sampler), dtype=torch.long)
        if self.on_device:
            order = order.to(self.device)
        b = self.local_batch_size
        for i in range(skip, self.num_batches):
            idx = order[i * b:(i + 1) * b]
            if self.on_device:
                yield tuple(t[idx] for t in self.tensors)
            else:
                yield tuple(t[idx].pin_memory().to(self.device, non_blocking=True)
                            if self.device.type == "cuda" else t[idx] for t in self.tensors)


def _fits_on_device(tensors: Sequence[torch.Tensor], device: torch.device) -> bool:
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return sum(t.numel() * t.element_size() for t in tensors) < free // 4
