"""Run by tests/test_sharded_extraction.py under torchrun (gloo, CPU):

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/sharding_worker.py OUT
    ... tests/sharding_worker.py OUT shard-cache [fail-rank-1]

Every rank extracts feature sets split across the ranks (uneven shards, an idle rank, logits,
the real-feature cache) and compares them with what it extracts alone; it writes what it found
to OUT/rank<R>.json. ``shard-cache``: one real set through the cache, each rank counting the
images it extracted itself; with ``fail-rank-1`` rank 1 fails once rank 0 has stored its shard.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from medsyn.evaluators.features import FeatureExtractor, dataset_features, extract_features
from medsyn.evaluators.features.extraction import _cache_paths, shard_cache_key
from medsyn.evaluators.features.sharding import (
    ShardGroup,
    collective_extraction,
    join_torchrun,
    leave_torchrun,
    shard_group,
)


class MomentsWithLogits(FeatureExtractor):
    """Per-image moments as features and a 3-way softmax as logits; deterministic."""

    name, feature_dim, logits_unavailable = "moments-test", 4, None
    conventions = {"test": "moments"}

    def extract(self, images):
        self.seen = getattr(self, "seen", 0) + len(images)
        x = images.float().flatten(1) / 255
        feats = torch.stack([x.mean(1), x.std(1), x.amin(1), x.amax(1)], 1)
        return {"features": feats, "logits": torch.log_softmax(feats[:, :3] * 7, 1).double()}


class TinySet:
    def __init__(self, images):
        self.images, self.name, self.split = images, "tiny", "train"
        self.fingerprint = str(int(images.sum()))
        self.image_size, self.channels = tuple(images.shape[2:]), int(images.shape[1])

    def __len__(self):
        return len(self.images)


def main(out: Path) -> None:
    join_torchrun("cpu")
    group = shard_group()
    images = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    found = {"rank": group.rank, "world_size": group.world_size, "cases": []}
    for n, batch in ((10, 4), (3, 4), (10, 1), (2, 1)):
        alone = extract_features(MomentsWithLogits(), images[:n], batch)
        ext = MomentsWithLogits()
        with collective_extraction():
            shared = extract_features(ext, images[:n], batch)
        found["cases"].append({
            "n": n, "batch": batch, "extracted_here": getattr(ext, "seen", 0),
            "features_equal": bool(np.array_equal(alone.features, shared.features)),
            "logits_equal": bool(np.array_equal(alone.logits, shared.logits)),
            "logits_dtype": str(shared.logits.dtype)})
    ds = TinySet(images)
    with collective_extraction():
        first = dataset_features(ds, MomentsWithLogits(), 4)
        second = dataset_features(ds, MomentsWithLogits(), 4)
    found["cache"] = {"first_from_cache": first.from_cache,
                      "second_from_cache": second.from_cache,
                      "equal": bool(np.array_equal(first.features, second.features)
                                    and np.array_equal(first.logits, second.logits))}
    (out / f"rank{group.rank}.json").write_text(json.dumps(found))
    leave_torchrun()


class FailsOnceRankZeroStored(MomentsWithLogits):
    """Rank 1's extractor: waits until rank 0's shard is in the cache, then fails (a rank that
    dies after another one finished its shard)."""

    def __init__(self, stored: Path):
        self.stored = stored

    def extract(self, images):
        deadline = time.monotonic() + 60
        while not self.stored.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise RuntimeError("rank 1 fails on purpose")


def shard_cache(out: Path, fail_rank_1: bool) -> None:
    join_torchrun("cpu")
    group = shard_group()
    images = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    ds, batch = TinySet(images), 4
    ext = MomentsWithLogits()
    if fail_rank_1 and group.rank == 1:
        rank0_rows = ShardGroup(0, group.world_size, group.backend).shard(len(ds), batch)
        ext = FailsOnceRankZeroStored(_cache_paths(shard_cache_key(ds, ext, *rank0_rows,
                                                                   batch))[1])
    with collective_extraction():
        shared = dataset_features(ds, ext, batch)
    alone = extract_features(MomentsWithLogits(), images, batch)
    (out / f"rank{group.rank}.json").write_text(json.dumps({
        "extracted_here": getattr(ext, "seen", 0), "from_cache": shared.from_cache,
        "features_equal": bool(np.array_equal(alone.features, shared.features)),
        "logits_equal": bool(np.array_equal(alone.logits, shared.logits))}))
    leave_torchrun()


if __name__ == "__main__":
    if sys.argv[2:3] == ["shard-cache"]:
        shard_cache(Path(sys.argv[1]), sys.argv[3:4] == ["fail-rank-1"])
    else:
        main(Path(sys.argv[1]))
