"""Feature extraction split across the processes of a ``torchrun`` job.

    torchrun --nproc_per_node 4 -m medsyn evaluate --checkpoint runs/x/last.pt --out eval/x

Each process (rank) joins the job's process group (:func:`join_torchrun`: NCCL on GPUs, gloo
on CPU), runs the same evaluation up to its feature extraction, and extracts only its shard: a
contiguous run of whole batches, so every image is seen in the very batch one process would
have put it in (the same features to the last bit, whatever the world size). The shards are
gathered in the original order; rank 0 alone reads and writes the real-feature cache (under
the key one process would use) and, once the features are in, computes the metrics and writes
the results while the other ranks stop.

Extraction is collective only inside :func:`collective_extraction` (the evaluation's feature
phase): a feature set needed later, inside a metric family, is extracted by rank 0 alone, so a
rank can never wait for a collective call the others will not make.

Work made of many small independent items (the audit's power draws: build a small set, extract
it, score it) is split by item instead, with :func:`map_across_ranks`: each rank computes whole
items alone and the results are gathered in item order.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as torch_dist

from medsyn.device import resolve_device
from medsyn.errors import ConfigError
from medsyn.generators.engine.distributed import distributed_env
from medsyn.utils import progress

T = TypeVar("T")
R = TypeVar("R")

BACKENDS = ("gloo", "nccl")
ENV_BACKEND = "MEDSYN_DIST_BACKEND"
ENV_TIMEOUT = "MEDSYN_DIST_TIMEOUT_MIN"
# ranks other than 0 wait in the next collective call while rank 0 computes the metrics of the
# previous evaluation (the utility protocol trains classifiers for hours on a CPU): the default
# 10-30 min of torch.distributed would cut such a job off
DEFAULT_TIMEOUT_MIN = 24 * 60


@dataclass(frozen=True)
class ShardGroup:
    """This process's place among the ranks that share an extraction."""

    rank: int
    world_size: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def comm_device(self) -> torch.device:
        """Where tensors must be to cross the process group (NCCL moves only GPU tensors)."""
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def shard(self, n: int, batch_size: int) -> tuple[int, int]:
        """``[start, stop)`` of this rank's images: whole batches, contiguous, in rank order."""
        n_batches = -(-n // batch_size)
        first = self.rank * n_batches // self.world_size
        last = (self.rank + 1) * n_batches // self.world_size
        return min(first * batch_size, n), min(last * batch_size, n)

    def all_gather_objects(self, obj) -> list:
        out = [None] * self.world_size
        torch_dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj):
        box = [obj if self.is_main else None]
        torch_dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_rows(self, local: np.ndarray | None, width: int | None,
                    dtype: np.dtype | None) -> np.ndarray | None:
        """Every rank's rows ``[n_r, width]`` stacked in rank order, on every rank. A rank
        with no rows passes ``None`` (its width and dtype come from the others); all ``None``
        gives ``None``."""
        rows = 0 if local is None else int(local.shape[0])
        shapes = self.all_gather_objects((rows, width, None if dtype is None else
                                          np.dtype(dtype).str))
        known = [(w, d) for n, w, d in shapes if n > 0 and w is not None]
        if not known:
            return None
        width, dtype = known[0][0], np.dtype(known[0][1])
        if any(w != width or np.dtype(d) != dtype for w, d in known):
            raise ConfigError(f"ranks extracted features of different shapes or types "
                              f"({shapes}); every rank must run the same evaluation.")
        most = max(n for n, _, _ in shapes)
        padded = torch.zeros((most, width), dtype=torch.from_numpy(np.zeros(0, dtype)).dtype,
                             device=self.comm_device)
        if rows:
            padded[:rows] = torch.from_numpy(np.ascontiguousarray(local)).to(self.comm_device)
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        torch_dist.all_gather(parts, padded)
        return torch.cat([p[:n] for p, (n, _, _) in zip(parts, shapes, strict=True)]).cpu().numpy()

    def broadcast_array(self, array: np.ndarray | None) -> np.ndarray | None:
        """Rank 0's array (or ``None``) on every rank."""
        meta = self.broadcast_object(None if array is None else
                                     (tuple(array.shape), np.dtype(array.dtype).str))
        if meta is None:
            return None
        shape, dtype = meta
        if self.is_main:
            tensor = torch.from_numpy(np.ascontiguousarray(array)).to(self.comm_device)
        else:
            tensor = torch.empty(shape, dtype=torch.from_numpy(np.zeros(0, np.dtype(dtype))).dtype,
                                 device=self.comm_device)
        torch_dist.broadcast(tensor, src=0)
        return tensor.cpu().numpy()

    def broadcast_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's CPU tensor on every rank (same shape on every rank)."""
        return torch.from_numpy(self.broadcast_array(tensor.numpy()))

    def barrier(self) -> None:
        torch_dist.barrier()


_joined: ShardGroup | None = None
_collective = False


def shard_group() -> ShardGroup | None:
    """The ``torchrun`` group this process extracts with, or ``None`` in a single process.

    A process group initialised by the caller (the Python API under ``torchrun``) counts too.
    """
    global _joined
    if _joined is None and torch_dist.is_available() and torch_dist.is_initialized() \
            and torch_dist.get_world_size() > 1:
        _joined = ShardGroup(torch_dist.get_rank(), torch_dist.get_world_size(),
                             str(torch_dist.get_backend()))
    return _joined


def is_main_process() -> bool:
    group = shard_group()
    return group is None or group.is_main


def active_group() -> ShardGroup | None:
    """The group extraction is split across right now (inside :func:`collective_extraction`)."""
    return shard_group() if _collective else None


@contextmanager
def collective_extraction() -> Iterator[ShardGroup | None]:
    """Inside this block every rank extracts its shard of each feature set and receives all
    of it; outside, each process extracts alone. Every rank must make the same extraction
    calls in the same order inside it."""
    global _collective
    before = _collective
    _collective = shard_group() is not None
    try:
        yield shard_group()
    finally:
        _collective = before


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (training and caching a network fitted to the real data),
    then the other ranks (reading what rank 0 cached)."""
    group = shard_group()
    if group is None:
        yield
        return
    if not group.is_main:
        group.barrier()
    yield
    if group.is_main:
        group.barrier()


def built_by_main_first(build: Callable[[], T]) -> T:
    """``build()`` (a feature extractor) on rank 0 first, then on the other ranks, which read
    what rank 0 fitted or downloaded into the cache. Every rank then checks it holds the same
    network (name, dimension, weights sha256): a rank that fitted or found other weights (a
    cache not shared between nodes, another file at the same path) stops the run instead of
    extracting its shard in a different space."""
    with main_first():
        extractor = build()
    group = shard_group()
    if group is not None:
        mine = (extractor.name, extractor.feature_dim,
                getattr(extractor, "weights_sha256", None))
        every = group.all_gather_objects(mine)
        if any(other != every[0] for other in every):
            odd = [rank for rank, other in enumerate(every) if other != every[0]]
            theirs, ours = every[odd[0]], every[0]
            raise ConfigError(
                f"feature space {extractor.name}: torchrun rank(s) {odd} built another network "
                f"than rank 0 (name {theirs[0]!r}, dimension {theirs[1]}, weights sha256 "
                f"{str(theirs[2])[:12]}... vs {ours[0]!r}, {ours[1]}, {str(ours[2])[:12]}...); "
                "every rank must read the same weights, so give all ranks one shared "
                "MEDSYN_CACHE_DIR and the same weight files.")
    return extractor


def map_across_ranks(compute: Callable[[T], R], items: Sequence[T], desc: str = "items",
                     unit: str = "it") -> list[R]:
    """``[compute(item) for item in items]``, under ``torchrun`` with the items dealt across the
    ranks in turn (rank r computes items r, r + N, ...: neighbouring items, often of similar
    cost, go to different ranks) and every rank receiving all the results in item order.

    Each item is computed whole by one process, as one process would compute it, so the
    results are the single process's as long as ``compute`` depends on its item alone (no
    state carried from one item to the next). Every rank must call this with the same items,
    in the same order among its other collective calls. In a single process (or outside
    :func:`join_torchrun`'s group) it is the plain loop. ``desc`` / ``unit``: the progress
    bar of this process's items."""
    group = shard_group()
    if group is None:
        return [compute(item) for item in progress(items, desc=desc, unit=unit)]
    mine = [compute(item) for item in progress(items[group.rank::group.world_size],
                                               desc=f"{desc} [rank {group.rank}/"
                                                    f"{group.world_size}]", unit=unit)]
    dealt = group.all_gather_objects(mine)
    out: list = [None] * len(items)
    for rank, results in enumerate(dealt):
        out[rank::group.world_size] = results
    return out


def join_torchrun(device_spec: str | torch.device | None = "auto") -> torch.device:
    """This process's device; under ``torchrun`` (``WORLD_SIZE`` > 1) also join the process
    group (env://): NCCL on GPUs, gloo on CPU, or ``MEDSYN_DIST_BACKEND``."""
    global _joined
    info = distributed_env()
    if not info.enabled:
        return resolve_device(device_spec)
    device = resolve_device(device_spec, info.local_rank)
    backend = os.environ.get(ENV_BACKEND, "nccl" if device.type == "cuda" else "gloo").lower()
    if backend not in BACKENDS:
        raise ConfigError(f"{ENV_BACKEND}={backend!r}: choose gloo (CPU) or nccl (GPUs).")
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError(f"{ENV_BACKEND}=nccl needs GPUs but this rank runs on {device}; use "
                          "--device cuda, or gloo for CPU ranks (unset MEDSYN_DIST_BACKEND).")
    if device.type == "cuda":
        if device.index is None or device.index >= torch.cuda.device_count():
            raise ConfigError(f"torchrun rank {info.rank} (local rank {info.local_rank}) has no "
                              f"GPU of its own: {torch.cuda.device_count()} visible; start at "
                              "most that many processes per node (--nproc_per_node).")
        torch.cuda.set_device(device)
    try:
        minutes = float(os.environ.get(ENV_TIMEOUT, DEFAULT_TIMEOUT_MIN))
    except ValueError:
        raise ConfigError(f"{ENV_TIMEOUT} must be a number of minutes, got "
                          f"{os.environ[ENV_TIMEOUT]!r}.") from None
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend, timeout=_dt.timedelta(minutes=minutes))
    elif str(torch_dist.get_backend()) != backend:
        raise ConfigError(f"the process group runs {torch_dist.get_backend()} but {backend} "
                          f"was asked for ({ENV_BACKEND}); use one backend.")
    _joined = ShardGroup(info.rank, info.world_size, backend)
    return device


def leave_torchrun() -> None:
    """Leave the process group :func:`join_torchrun` joined (rank 0 last: it still writes)."""
    global _joined
    if _joined is not None and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
    _joined = None
