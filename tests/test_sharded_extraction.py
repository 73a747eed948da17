"""Feature extraction split across torchrun ranks (evaluators/features/sharding.py): two gloo
processes on CPU give the single process's results.json, every metric value to the last bit;
shards are whole batches; misconfigurations are one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from medsyn.errors import ConfigError
from medsyn.evaluators.features.sharding import ShardGroup, join_torchrun
from medsyn.evaluators.scoring.evaluate import _same_inputs_on_every_rank

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(cache: Path) -> dict:
    # torchrun gives each rank one thread; the single process gets the same, so that the
    # metric phase (not only the features) runs the same arithmetic
    return {**os.environ, "PYTHONPATH": str(REPO), "MEDSYN_CACHE_DIR": str(cache),
            "OMP_NUM_THREADS": "1", "MEDSYN_PROGRESS": "off", "MPLBACKEND": "Agg"}


def _torchrun(n: int, *args, env: dict, timeout: int = 240):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("n, batch, world", [(10, 4, 2), (3, 4, 2), (64, 16, 3), (5, 1, 4),
                                             (7, 64, 1)])
def test_shards_are_whole_batches_in_rank_order_covering_every_image(n, batch, world):
    ranges = [ShardGroup(r, world, "gloo").shard(n, batch) for r in range(world)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    for (_, stop), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert stop == start
    for start, stop in ranges:
        assert start % batch == 0 and (stop == n or stop % batch == 0)
    sizes = [(stop - start + batch - 1) // batch for start, stop in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_extraction_split_over_two_gloo_ranks_equals_one_process(tmp_path):
    """Uneven shards, an idle rank, logits in float64, the cache read back under the group."""
    out = tmp_path / "out"
    out.mkdir()
    proc = _torchrun(2, REPO / "tests" / "sharding_worker.py", out, env=_env(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    for found in ranks:
        assert found["world_size"] == 2
        for case in found["cases"]:
            assert case["features_equal"] and case["logits_equal"], case
            assert case["logits_dtype"] == "float64"
        assert found["cache"] == {"first_from_cache": False, "second_from_cache": True,
                                  "equal": True}
    # each image was extracted by exactly one rank; one batch of 3 images: rank 0 stays idle
    for a, b in zip(ranks[0]["cases"], ranks[1]["cases"], strict=True):
        assert a["extracted_here"] + b["extracted_here"] == a["n"]
    assert [c["extracted_here"] for c in ranks[0]["cases"]] == [4, 0, 5, 1]


def _cache_entries(cache: Path) -> dict[str, dict]:
    """``{entry name: metadata}``; shard entries have ``rows``."""
    folder = cache / "features"
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")} \
        if folder.is_dir() else {}


def test_each_rank_caches_its_shard_and_a_rerun_reuses_the_finished_ones(tmp_path,
                                                                          monkeypatch):
    """Rank 1 fails after rank 0 stored its shard: the rerun extracts rank 1's shard only;
    with the gathered entry gone, a third run extracts nothing. Features are those of one
    process to the last bit, and the gathered set keeps the single-process key."""
    from sharding_worker import MomentsWithLogits, TinySet

    from medsyn.evaluators.features import dataset_features

    cache, env = tmp_path / "cache", _env(tmp_path / "cache")
    worker = REPO / "tests" / "sharding_worker.py"

    def run(*mode):
        out = tmp_path / "-".join(mode)
        out.mkdir()
        proc = _torchrun(2, worker, out, "shard-cache", *mode, env=env)
        return proc, out

    failed, _ = run("fail-rank-1")
    assert failed.returncode != 0 and "rank 1 fails on purpose" in failed.stderr
    entries = _cache_entries(cache)
    assert [meta["rows"] for meta in entries.values()] == [[0, 4]]    # rank 0's shard only

    again, out = run("rerun")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["extracted_here"] for r in ranks] == [0, 6]
    assert all(r["features_equal"] and r["logits_equal"] for r in ranks)
    assert not any(r["from_cache"] for r in ranks)           # rank 1 extracted
    entries = _cache_entries(cache)
    assert sorted(meta.get("rows", [0, 10]) for meta in entries.values()) == \
        [[0, 4], [0, 10], [4, 10]]
    gathered = next(name for name, meta in entries.items() if "rows" not in meta)

    # the gathered entry is the one a single process reads: its key did not change
    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(cache))
    images = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    ext = MomentsWithLogits()
    assert dataset_features(TinySet(images), ext, 4).from_cache
    assert getattr(ext, "seen", 0) == 0

    for suffix in (".json", ".npz"):                   # a run that died before the gather
        (cache / "features" / (gathered + suffix)).unlink()
    third, out = run("shards-only")
    assert third.returncode == 0, third.stdout[-2000:] + third.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["extracted_here"] for r in ranks] == [0, 0]
    assert all(r["from_cache"] and r["features_equal"] and r["logits_equal"] for r in ranks)
    assert gathered in _cache_entries(cache)           # written again under the same key


def test_two_process_evaluate_writes_the_single_process_results(tmp_path, data_root):
    """`torchrun --nproc_per_node 2 -m medsyn evaluate` (gloo): every metric value and interval
    of results.json equals one process's, the cache entries are the same files, and rank 1
    prints and writes nothing."""
    from medsyn.data import load_dataset

    test = load_dataset("pneumoniamnist", split="test", root=data_root)
    fake = tmp_path / "fake"
    fake.mkdir()
    for i in range(64):
        Image.fromarray(test.images[i, 0].numpy()).save(fake / f"{i:02d}.png")
    # two spaces; the privacy audit reads the validation split (its default baseline)
    args = ["--fake", fake, "--real", "pneumoniamnist", "--n-real", "64", "--extractor",
            "pixels,wavelet", "--metrics", "fid,kid,prdc,real_floor,memorization,privacy",
            "--bootstrap", "10",
            "--batch-size", "16", "--device", "cpu", "--data-root", data_root]
    one = subprocess.run([sys.executable, "-m", "medsyn", "evaluate", *map(str, args), "--out",
                          str(tmp_path / "one")], env=_env(tmp_path / "cache1"),
                         capture_output=True, text=True, timeout=240)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _torchrun(2, "-m", "medsyn", "evaluate", *args, "--out", tmp_path / "two",
                    env=_env(tmp_path / "cache2"))
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "results.json").read_text())
    b = json.loads((tmp_path / "two" / "results.json").read_text())
    assert set(a["metrics"]) >= {"fid", "kid", "precision", "real_floor", "memorization",
                                 "privacy", "spaces"}
    assert b["provenance"]["timings"]["val_features_s"] >= 0    # extracted in shards too
    assert a["metrics"] == b["metrics"]
    assert a["warnings"] == b["warnings"] and a["figures"] == b["figures"]
    assert (tmp_path / "one" / "metrics.csv").read_text() == \
        (tmp_path / "two" / "metrics.csv").read_text()
    assert two.stdout.count("results:") == 1          # rank 0's summary only
    # the gathered sets are the single process's entries, byte for byte; each rank's shard
    # has an entry of its own besides
    one_entries, two_entries = _cache_entries(tmp_path / "cache1"), \
        _cache_entries(tmp_path / "cache2")
    assert one_entries and not any("rows" in meta for meta in one_entries.values())
    assert {n for n, meta in two_entries.items() if "rows" not in meta} == set(one_entries)
    assert {n for n, meta in two_entries.items() if "rows" in meta}
    for name in one_entries:
        assert (tmp_path / "cache1" / "features" / f"{name}.npz").read_bytes() == \
            (tmp_path / "cache2" / "features" / f"{name}.npz").read_bytes()


def test_nccl_on_cpu_ranks_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MEDSYN_DIST_BACKEND", "nccl")
    with pytest.raises(ConfigError, match="nccl needs GPUs but this rank runs on cpu"):
        join_torchrun("cpu")
    monkeypatch.setenv("MEDSYN_DIST_BACKEND", "mpi")
    with pytest.raises(ConfigError, match="choose gloo"):
        join_torchrun("cpu")


def test_more_ranks_than_fake_images_is_a_one_line_error():
    images = torch.zeros((2, 1, 8, 8), dtype=torch.uint8)
    with pytest.raises(ConfigError, match="started 3 processes for 2 fake images"):
        _same_inputs_on_every_rank(ShardGroup(0, 3, "gloo"), images, None,
                                   (SimpleNamespace(fingerprint="x"),))


_EXTRACTION_PROBE = """
import os, runpy, sys
import medsyn.evaluators.features.extraction as extraction
extract_batches = extraction._extract_batches
def probe(extractor, images, batch_size, desc):
    with open(os.environ["EXTRACTION_LOG"] + os.environ.get("RANK", ""), "a") as log:
        log.write(desc + "\\n")
    return extract_batches(extractor, images, batch_size, desc)
extraction._extract_batches = probe
sys.argv = ["medsyn", *sys.argv[1:]]
runpy.run_module("medsyn", run_name="__main__")
"""


def test_two_process_audit_writes_the_single_process_audit(tmp_path, data_root):
    """`torchrun --nproc_per_node 2 -m medsyn audit` (gloo): the sets' features are split
    across the ranks (two spaces, pixel failures, k-means clusters, the reference sensitivity
    and preprocessing blocks), rank 0 alone writes, and audit.json has the single process's
    values."""
    args = ["audit", "--dataset", "pneumoniamnist", "--extractor", "pixels,wavelet",
            "--metrics", "fid,prdc", "--failures", "blur,noise,cluster_drop", "-n", "16",
            "--n-pool", "40", "--n-reference", "40", "--bootstrap", "5", "--batch-size", "8",
            "--reference-sensitivity", "--preprocessing", "--device", "cpu",
            "--data-root", data_root]
    one = subprocess.run([sys.executable, "-m", "medsyn", *map(str, args), "--out",
                          str(tmp_path / "one")], env=_env(tmp_path / "cache1"),
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    # `-m medsyn`, with every extraction of a batch run printed by the rank that ran it
    probe = tmp_path / "probe.py"
    probe.write_text(_EXTRACTION_PROBE)
    two = _torchrun(2, probe, *args, "--out", tmp_path / "two",
                    env={**_env(tmp_path / "cache2"),
                         "EXTRACTION_LOG": str(tmp_path / "extracted-by-rank")}, timeout=300)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    extracted = [(str(rank), desc) for rank in (0, 1) for desc in
                 (tmp_path / f"extracted-by-rank{rank}").read_text().splitlines()]
    for what in ("pneumoniamnist/train features", "pneumoniamnist/test features",
                 "blur level 4", "noise level 1", "preprocessing"):
        assert sorted(rank for rank, desc in extracted if desc.startswith(what)) == \
            ["0", "0", "1", "1"], \
            (what, extracted)                   # in shards, in each of the two spaces
    assert all("[rank " in desc for _, desc in extracted), extracted  # never by rank 0 alone
    a = json.loads((tmp_path / "one" / "audit.json").read_text())
    b = json.loads((tmp_path / "two" / "audit.json").read_text())
    for key in ("spaces", "failures", "settings", "dataset", "directions", "warnings",
                "reference_sensitivity", "preprocessing", "figures"):
        assert a[key] == b[key], key
    assert a["failures"]["blur"]["new_images"][1:] == [16] * 4     # extracted, not reused
    assert a["preprocessing"]["spaces"]
    assert two.stdout.count("audit: ") == 1                       # rank 0's card only
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == \
        sorted(p.name for p in (tmp_path / "two").iterdir())
    # the reference and the pool in both spaces: each rank stored its shard
    shards = [meta for meta in _cache_entries(tmp_path / "cache2").values() if "rows" in meta]
    assert len(shards) == 2 * 2 * 2


def test_two_process_audit_power_deals_the_draws_and_writes_the_single_process_power(
        tmp_path, data_root):
    """`torchrun --nproc_per_node 2 -m medsyn audit --power` (gloo): each rank builds, extracts
    and scores whole draws of its share, and the power block (every rate and null threshold)
    is the single process's."""
    args = ["audit", "--dataset", "pneumoniamnist", "--extractor", "pixels", "--metrics",
            "fid,prdc", "--failures", "blur,cluster_drop", "-n", "12", "--n-pool", "32",
            "--n-reference", "32", "--bootstrap", "5", "--batch-size", "4", "--power",
            "--power-sizes", "8,16", "--power-repeats", "5", "--device", "cpu",
            "--data-root", data_root]
    probe = tmp_path / "probe.py"
    probe.write_text(_EXTRACTION_PROBE)
    log = tmp_path / "extracted-by-rank"
    one = subprocess.run([sys.executable, probe, *map(str, args), "--out", tmp_path / "one"],
                         env={**_env(tmp_path / "cache1"), "EXTRACTION_LOG": str(log)},
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _torchrun(2, probe, *args, "--out", tmp_path / "two",
                    env={**_env(tmp_path / "cache2"), "EXTRACTION_LOG": str(log)}, timeout=300)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]

    def draws(rank):      # blurred draws of the power analysis: extracted whole, by one rank
        descs = Path(f"{log}{rank}").read_text().splitlines()
        return sorted(d for d in descs if d.startswith("blur level") and "[rank " not in d)

    single = draws("")                            # the single process: no rank
    assert len(single) == 4 + 4 * 2 * 5          # the card's 4 sets, then 4 levels x 2 sizes x 5
    assert draws(0) and draws(1)                  # both ranks took draws
    card_sets = [f"blur level {lv}" for lv in range(1, 5)]
    assert sorted(draws(0) + draws(1) + card_sets) == single
    a = json.loads((tmp_path / "one" / "audit.json").read_text())
    b = json.loads((tmp_path / "two" / "audit.json").read_text())
    assert a["power"]["settings"]["sizes"] == [8, 16]
    for key in ("power", "spaces", "failures", "settings", "warnings"):
        assert a[key] == b[key], key
    assert two.stdout.count("audit: ") == 1                       # rank 0's card only


def test_items_mapped_across_ranks_come_back_in_order_each_computed_once(monkeypatch):
    from medsyn.evaluators.features import sharding

    computed: dict = {}

    class DealingGroup:
        """Rank ``rank`` of 3; the other ranks' results are those they computed before."""

        world_size = 3

        def __init__(self, rank, others):
            self.rank, self.others = rank, others

        def all_gather_objects(self, mine):
            self.others[self.rank] = mine
            return [self.others.get(r, [None] * len(items[r::3])) for r in range(3)]

    items = list(range(10))
    gathered: dict = {}

    def square(item):
        computed.setdefault(rank, []).append(item)
        return item * item

    for rank in (2, 1, 0):
        monkeypatch.setattr(sharding, "shard_group", lambda r=rank: DealingGroup(r, gathered))
        out = sharding.map_across_ranks(square, items)
    assert out == [i * i for i in items]
    assert computed == {0: [0, 3, 6, 9], 1: [1, 4, 7], 2: [2, 5, 8]}
    monkeypatch.setattr(sharding, "shard_group", lambda: None)
    assert sharding.map_across_ranks(square, items) == out


def test_a_single_process_never_joins_a_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert join_torchrun("cpu") == torch.device("cpu")
    from medsyn.evaluators.features.sharding import shard_group

    assert shard_group() is None


def test_a_fitted_space_without_the_cache_is_refused_under_torchrun(monkeypatch):
    from medsyn.evaluators.scoring import spaces

    monkeypatch.setattr(spaces, "shard_group", lambda: ShardGroup(0, 2, "gloo"))
    fitted = spaces.FeatureSpaces(["radiomics"], torch.device("cpu"), {"use_cache": False})
    with pytest.raises(ConfigError, match="drop --no-cache"):
        fitted.get(SimpleNamespace(fingerprint="x"), None)


def test_ranks_that_built_a_space_with_other_weights_stop_the_run(monkeypatch):
    """A rank whose fitted (or downloaded) network differs from rank 0's, e.g. a cache not
    shared between nodes, is a one-line error naming the ranks, not a mixed feature space."""
    from medsyn.evaluators.features import sharding

    class FakeGroup:
        is_main = True

        def __init__(self, others):
            self.others = others

        def barrier(self):
            pass

        def all_gather_objects(self, obj):
            return [obj, *self.others]

    built = SimpleNamespace(name="simclr-resnet18-cxr3", feature_dim=512, weights_sha256="a" * 64)
    same = (built.name, 512, "a" * 64)
    monkeypatch.setattr(sharding, "shard_group", lambda: FakeGroup([same, same]))
    assert sharding.built_by_main_first(lambda: built) is built
    monkeypatch.setattr(sharding, "shard_group",
                        lambda: FakeGroup([same, (built.name, 512, "b" * 64)]))
    with pytest.raises(ConfigError) as err:
        sharding.built_by_main_first(lambda: built)
    msg = str(err.value)
    assert "\n" not in msg and "rank(s) [2]" in msg and "bbbbbbbbbbbb" in msg
    assert "MEDSYN_CACHE_DIR" in msg
