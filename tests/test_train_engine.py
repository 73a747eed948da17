"""The reusable training machinery (medsyn.generators.engine), without real networks."""

import dataclasses
import json
import math
import os
import random

import numpy as np
import pytest
import torch

from medsyn import model_range
from medsyn.device import resolve_device
from medsyn.errors import ConfigError, DataError
from medsyn.generators import engine
from medsyn.generators.engine import (
    BatchSource,
    DistInfo,
    JsonlLog,
    LoopState,
    TrainingDiverged,
    TrainingLoop,
)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="--device must be one of"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA GPU.*--device cpu"):
        resolve_device("cuda")


def test_precision():
    cpu = torch.device("cpu")
    assert engine.resolve_precision("auto", cpu).name == "fp32"
    with pytest.raises(ConfigError, match="--precision must be one of"):
        engine.resolve_precision("fp64", cpu)
    assert engine.resolve_precision("fp16", cpu).grad_scaler().is_enabled()
    assert not engine.resolve_precision("bf16", cpu).grad_scaler().is_enabled()
    with engine.resolve_precision("bf16", cpu).autocast():
        y = torch.nn.functional.linear(torch.randn(2, 3), torch.randn(4, 3))
    assert y.dtype == torch.bfloat16


def test_value_range_round_trip_is_exact():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    y = model_range.to_model_range(x)
    assert y.min() == -1 and y.max() == 1
    assert torch.equal(model_range.to_uint8(y), x)
    assert torch.equal(model_range.to_uint8(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255],
                                                                              dtype=torch.uint8))


def _source(n=10, batch=3, seed=0, dist=None, **kw):
    data = torch.arange(n)
    return BatchSource([data, data * 10], batch, device=torch.device("cpu"), seed=seed,
                       dist=dist, **kw)


def test_batches_are_seeded_full_and_resumable():
    src = _source()
    assert src.num_batches == 3                               # 10 // 3, last partial dropped
    epoch0 = [b[0].tolist() for b in src.epoch(0)]
    assert all(len(b) == 3 for b in epoch0) and len({i for b in epoch0 for i in b}) == 9
    assert [b[0].tolist() for b in _source().epoch(0)] == epoch0          # same seed
    assert [b[0].tolist() for b in src.epoch(1)] != epoch0                # new epoch
    assert [b[0].tolist() for b in _source(seed=1).epoch(0)] != epoch0    # other seed
    assert [b[0].tolist() for b in src.epoch(0, skip=2)] == epoch0[2:]    # resume mid-epoch
    assert all(torch.equal(b[1], b[0] * 10) for b in src.epoch(0))       # rows stay aligned


def test_batches_are_split_between_ranks():
    r0 = _source(n=12, batch=4, dist=DistInfo(rank=0, world_size=2))
    r1 = _source(n=12, batch=4, dist=DistInfo(rank=1, world_size=2))
    assert r0.local_batch_size == 2 and r0.num_batches == r1.num_batches == 3
    seen0 = {i for b in r0.epoch(0) for i in b[0].tolist()}
    seen1 = {i for b in r1.epoch(0) for i in b[0].tolist()}
    assert not seen0 & seen1 and len(seen0 | seen1) == 12
    with pytest.raises(ConfigError, match="not divisible by the 2 processes"):
        _source(n=12, batch=5, dist=DistInfo(rank=0, world_size=2))


def test_dataset_smaller_than_a_batch():
    with pytest.raises(DataError, match="fewer than one batch of 64; lower --batch-size"):
        _source(n=10, batch=64)


def test_checkpoints_are_atomic_and_pruned(tmp_path, monkeypatch):
    for epoch in range(1, 5):
        engine.save_checkpoint({"epoch": epoch, "w": torch.full((3,), float(epoch))}, tmp_path,
                               epoch, keep_last=2)
    assert [e for e, _ in engine.list_checkpoints(tmp_path)] == [3, 4]
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["epoch"] == 4
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    real_save = torch.save

    def crash_midway(obj, f, *a, **kw):
        real_save(obj, f, *a, **kw)
        f.truncate(20)
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        engine.save_checkpoint({"epoch": 5}, tmp_path, 5, keep_last=2)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before                # no torn file, no temporary left, nothing pruned


def test_keep_last_zero_keeps_all(tmp_path):
    for epoch in range(1, 4):
        engine.save_checkpoint({"epoch": epoch}, tmp_path, epoch, keep_last=0)
    assert len(engine.list_checkpoints(tmp_path)) == 3


def test_rng_state_round_trip(tmp_path):
    engine.seed_everything(3)
    state = engine.capture_rng_state()
    torch.save(state, tmp_path / "rng.pt")
    first = (random.random(), np.random.rand(), torch.rand(3).tolist(), np.random.randn())
    engine.seed_everything(99)
    engine.restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (random.random(), np.random.rand(), torch.rand(3).tolist(), np.random.randn())
    assert again == first


def test_jsonl_log_rewrites_on_resume(tmp_path):
    path = tmp_path / "log.jsonl"
    log = JsonlLog(path)
    log.extend([{"step": 1, "loss": 0.5}, {"step": 2, "loss": float("nan")}])
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": None}]
    JsonlLog(path, records=[{"step": 1, "loss": 0.5}])      # resume from step 1
    assert engine.read_jsonl(path) == [{"step": 1, "loss": 0.5}]


def test_loop_state_round_trip():
    mid = LoopState(epoch=2, batch_in_epoch=5, step=25)
    assert mid.as_dict() == {"epoch": 3, "epoch_finished": False, "batch_in_epoch": 5,
                             "step": 25}
    assert LoopState.from_checkpoint(mid.as_dict()) == mid
    end = LoopState(epoch=3, batch_in_epoch=0, step=30)
    assert LoopState.from_checkpoint(end.as_dict()) == end


def _loop(tmp_path, step_fn, saved, **kw):
    src = _source(n=12, batch=3)              # 4 steps per epoch
    return TrainingLoop(batches=src, step_fn=step_fn, log=JsonlLog(tmp_path / "log.jsonl"),
                        save=lambda st: saved.append(st.as_dict()) or tmp_path / "x.pt",
                        quiet=True, **kw)


def test_loop_stops_on_nan_without_saving(tmp_path):
    saved = []

    def step_fn(batch, state):
        bad = state.step + 1 == 6
        return {"loss_d": torch.tensor(float("nan") if bad else 1.0),
                "loss_g": torch.tensor(2.0)}

    loop = _loop(tmp_path, step_fn, saved, epochs=3)
    with pytest.raises(TrainingDiverged, match=r"loss_d = nan at step 6 \(epoch 2\)") as err:
        loop.run(LoopState())
    assert err.value.step == 6
    assert saved == [{"epoch": 1, "epoch_finished": True, "batch_in_epoch": 0, "step": 4}]
    assert "x.pt, is untouched" in str(err.value)
    records = engine.read_jsonl(tmp_path / "log.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6] and records[-1]["loss_d"] is None


def test_loop_max_steps_and_checkpoint_every(tmp_path):
    saved = []

    def step_fn(batch, state):
        return {"loss_d": batch[0].float().mean(), "loss_g": torch.tensor(0.0)}

    state = _loop(tmp_path, step_fn, saved, epochs=5, max_steps=14,
                  checkpoint_every=2).run(LoopState())
    # epochs end at steps 4, 8, 12: saves at epoch 2 and at the max_steps stop (mid epoch 4)
    assert [s["step"] for s in saved] == [8, 14]
    assert saved[-1] == {"epoch": 4, "epoch_finished": False, "batch_in_epoch": 2, "step": 14}
    assert state == LoopState(epoch=3, batch_in_epoch=2, step=14)
    records = engine.read_jsonl(tmp_path / "log.jsonl")
    assert len(records) == 14 and all(math.isfinite(r["images_per_s"]) for r in records)
    assert {"step", "epoch", "loss_d", "loss_g", "images_per_s"} == set(records[0])
    with pytest.raises(ConfigError, match="nothing to train"):
        _loop(tmp_path, step_fn, [], epochs=3).run(LoopState(epoch=3, step=12))


def test_cpu_threads_follow_the_network_size_unless_given():
    from medsyn.device import SMALL_NET_MAX_SIZE
    from medsyn.device import training_threads as cpu_threads

    assert cpu_threads(0, 28) == 1
    assert cpu_threads(0, SMALL_NET_MAX_SIZE) == 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cpu_threads(0, 112) == cores
    assert cpu_threads(3, 28) == min(3, cores)
    assert cpu_threads(100_000, 28) == cores      # capped (issue 26: 100000 crashed torch)


def test_threads_option_is_validated_and_not_inherited_on_resume():
    from medsyn.generators.gan.config import NOT_INHERITED, resolve_config

    config, _ = resolve_config("dcgan", {"dataset": "pneumoniamnist", "image_size": 28,
                                         "threads": 2, "out": "runs/x"})
    assert config.threads == 2
    assert "threads" in NOT_INHERITED
    with pytest.raises(ConfigError, match="threads"):
        resolve_config("dcgan", {"dataset": "pneumoniamnist", "threads": -1, "out": "runs/x"})


def test_families_declare_only_their_own_options():
    from medsyn.generators.config import FIXED, RESET, SHARED_OPTIONS, BaseTrainConfig
    from medsyn.generators.gan import config as gan
    from medsyn.generators.sr import config as sr

    base = {f.name for f in dataclasses.fields(BaseTrainConfig)}
    assert len(base) == 22 and "kind" in base
    for config_cls in (gan.TrainConfig, sr.SRTrainConfig):
        assert issubclass(config_cls, BaseTrainConfig)
        names = [o.name for o in config_cls.OPTIONS]
        # every option is a field and every field but kind an option; config.json follows
        # the option order
        assert set(names) == {f.name for f in dataclasses.fields(config_cls)} - {"kind"}
        config = config_cls(kind="x", **config_cls.defaults())
        assert list(config.to_dict()) == ["kind", *names]
        # a shared option keeps its type, range and resume rule; only its help may differ
        for spec in config_cls.OPTIONS:
            if spec.name in SHARED_OPTIONS:
                assert dataclasses.replace(spec, help="") == \
                    dataclasses.replace(SHARED_OPTIONS[spec.name], help="")
    # the resume rules the GAN and SR trainers had as explicit lists before the shared base
    # (plus the training recipe and its parts, issue 27: they define the optimisation too)
    assert gan.FIXED_ON_RESUME == (
        "dataset", "split", "image_size", "batch_size", "lr", "beta1", "beta2", "seed",
        "noise_dim", "g_width", "d_width", "embed_dim", "dropout", "label_smoothing",
        "sample_columns", "recipe", "loss", "spectral_norm", "conditioning", "twin_classifier",
        "augment", "ema_decay", "fake_labels", "lr_d")
    assert sr.SR_FIXED_ON_RESUME == (
        "dataset", "split", "scale", "hr_size", "patch_size", "pretrain_epochs",
        "lr_decay_epoch", "batch_size", "lr", "beta1", "beta2", "seed", "init_from", "n_blocks",
        "features", "d_features", "content_loss", "adv_weight", "sample_count")
    assert set(gan.NOT_INHERITED) == {"resume", "max_steps", "out", "device", "threads",
                                      "quiet"}
    assert [o.name for o in sr.SR_OPTIONS if o.on_resume == RESET] == [
        "max_steps", "out", "device", "resume", "quiet"]
    assert {o.on_resume for o in SHARED_OPTIONS.values()} <= {FIXED, RESET, "inherit"}
