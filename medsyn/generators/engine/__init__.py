"""Reusable training machinery: every trainer of medsyn (the image GANs, SRResNet / SRGAN, the
families to come) is built from these pieces, so all of them share the same guarantees (see
docs/training.md). One module per concept:

- :mod:`.backends`: :func:`resolve_precision` / :class:`Precision`, :func:`configure_backends`,
  :func:`use_channels_last`, :func:`maybe_compile`, :func:`unwrap` -- where and how the networks
  run;
- :mod:`.distributed`: :func:`init_distributed`, :class:`DistInfo`, :func:`wrap_ddp`,
  :func:`shutdown_distributed` -- ``torchrun`` / DistributedDataParallel, rank 0 writes;
- :mod:`.batches`: :class:`BatchSource` -- shuffled, seeded batches of in-memory tensors (held on
  the device when they fit), partitioned across ranks by ``DistributedSampler``; resumable
  mid-epoch;
- :mod:`.rng`: :func:`capture_rng_state`, :func:`restore_rng_state`, :func:`seed_everything`;
- :mod:`.files`: :func:`save_checkpoint` (atomic ``epochNNN.pt`` + ``last.pt``, keep the last
  K), :func:`prune_checkpoints`, :class:`JsonlLog` (the per-step ``log.jsonl``);
- :mod:`.loop`: :class:`TrainingLoop` -- epochs, resume position, ``max_steps``, buffered
  per-step statistics, NaN guard, images/s, progress bar, periodic checkpoints and end-of-epoch
  hooks.

What a run folder holds across runs (never overwrite a run, resume checks, seeding) is
:mod:`medsyn.generators.engine.run`; the adversarial D/G update is
:mod:`medsyn.generators.engine.adversarial`.
"""

from medsyn.generators.engine.backends import (
    PRECISION_CHOICES,
    Precision,
    configure_backends,
    maybe_compile,
    resolve_precision,
    unwrap,
    use_channels_last,
)
from medsyn.generators.engine.batches import BatchSource
from medsyn.generators.engine.distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_mean_,
    barrier,
    distributed_env,
    init_distributed,
    shutdown_distributed,
    wrap_ddp,
)
from medsyn.generators.engine.files import (
    CHECKPOINT_PATTERN,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    LOG_FILE,
    JsonlLog,
    checkpoint_path,
    list_checkpoints,
    prune_checkpoints,
    read_jsonl,
    save_checkpoint,
)
from medsyn.generators.engine.loop import (
    DIVERGENCE_ADVICE,
    HEALTH_CHECK_HISTORY,
    LoopState,
    StepFn,
    TrainingDiverged,
    TrainingLoop,
)
from medsyn.generators.engine.rng import capture_rng_state, restore_rng_state, seed_everything

__all__ = [
    "CHECKPOINT_PATTERN", "CONFIG_FILE", "DIVERGENCE_ADVICE", "HEALTH_CHECK_HISTORY",
    "LAST_CHECKPOINT", "LOG_FILE", "PRECISION_CHOICES", "BatchSource", "DistInfo", "JsonlLog",
    "LoopState", "Precision", "StepFn", "TrainingDiverged", "TrainingLoop", "all_gather_objects",
    "all_reduce_mean_", "barrier", "capture_rng_state", "checkpoint_path", "configure_backends",
    "distributed_env", "init_distributed", "list_checkpoints", "maybe_compile",
    "prune_checkpoints", "read_jsonl", "resolve_precision", "restore_rng_state",
    "save_checkpoint", "seed_everything", "shutdown_distributed", "unwrap", "use_channels_last",
    "wrap_ddp",
]
