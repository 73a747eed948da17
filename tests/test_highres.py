"""The high-resolution family (issue 31): PGGAN's layers and fade-in, MEGAN's tiles, training
on real data (BreastMNIST at 32 px, tiny networks), exact resume across a growth phase, the
checkpoint API, and one-line errors."""

import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.data.transforms.edges import CannyParams, canny_edges
from medsyn.errors import ConfigError, DataError
from medsyn.generators import load_checkpoint, read_checkpoint
from medsyn.generators.engine import read_jsonl
from medsyn.generators.highres import pggan_training
from medsyn.generators.highres.config import GrowthSchedule, growth_plan, scale_plan
from medsyn.generators.highres.megan_nets import PatchGenerator
from medsyn.generators.highres.megan_sampling import TILE_CONTEXT, check_tile_context
from medsyn.generators.highres.patches import (
    assemble,
    tile_positions,
    whole_scale_statistics,
)
from medsyn.generators.highres.pggan_nets import (
    EqualisedConv2d,
    EqualisedLinear,
    PgganDiscriminator,
    PgganGenerator,
    minibatch_stddev,
    pixel_norm,
)
from medsyn.generators.highres.pggan_training import PgganCollapseDetector, train_pggan
from medsyn.generators.interface import Task
from medsyn.generators.stabilisers.collapse import class_spread

pytestmark = pytest.mark.usefixtures("one_thread")

PGGAN_TINY = dict(dataset="breastmnist", image_size=32, start_size=8, batch_size=32,
                  fade_images=64, stable_images=64, g_width=4, d_width=4, noise_dim=8,
                  device="cpu", quiet=True)       # 17 steps per epoch; growth 8 -> 32 in 10
MEGAN_TINY = dict(dataset="breastmnist", image_size=32, low_size=16, patch_size=16,
                  batch_size=32, g_width=4, d_width=4, device="cpu", quiet=True)


# -- layers


def test_equalised_lr_scale_is_he_constant_by_hand():
    torch.manual_seed(0)
    conv = EqualisedConv2d(3, 5, 3, padding=1)
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(3 * 3 * 3))
    x = torch.randn(2, 3, 6, 6)
    by_hand = F.conv2d(x, conv.weight * (2 ** 0.5 / 27 ** 0.5), conv.bias, padding=1)
    assert torch.allclose(conv(x), by_hand, atol=1e-6)
    lin = EqualisedLinear(10, 4, gain=1.0)
    assert lin.scale == pytest.approx(1 / math.sqrt(10))
    v = torch.randn(3, 10)
    assert torch.allclose(lin(v), v @ (lin.weight / 10 ** 0.5).T + lin.bias, atol=1e-6)
    # weights are N(0, 1) at rest: the scale is applied at run time, not stored
    big = EqualisedConv2d(64, 64, 3)
    assert abs(float(big.weight.detach().std()) - 1.0) < 0.02


def test_pixel_norm_and_minibatch_stddev_by_hand():
    x = torch.randn(4, 6, 3, 3)
    y = pixel_norm(x)
    assert torch.allclose(y.pow(2).mean(1), torch.ones(4, 3, 3), atol=1e-4)
    x = torch.randn(8, 3, 2, 2)
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 4, 2, 2)
    # group j of 4 images: i, i + 2, i + 4, i + 6 (the paper's reshape [G, -1, ...])
    for m in range(2):
        group = x[m::2]
        expected = group.std(0, unbiased=False).mean()
        assert torch.allclose(out[m::2, 3], expected.expand(4, 2, 2), atol=1e-4)


# -- fade-in


def _nets(seed=0):
    torch.manual_seed(seed)
    res = (4, 8, 16)
    return PgganGenerator(res, 1, 3, 8, 4), PgganDiscriminator(res, 1, 3, 4)


def test_generator_fade_in_at_the_phase_boundaries():
    g, _ = _nets()
    z, labels = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        old = F.interpolate(g(z, labels, level=1), scale_factor=2, mode="nearest")
        new = g.to_rgb[2](g.blocks[1](g.features(z, labels, 1)))
        assert torch.equal(g(z, labels, level=2, alpha=0.0), old)
        assert torch.equal(g(z, labels, level=2, alpha=1.0), new)
        mid = g(z, labels, level=2, alpha=0.25)
        assert torch.allclose(mid, 0.75 * old + 0.25 * new, atol=1e-6)
        assert not torch.allclose(mid, old) and not torch.allclose(mid, new)


def test_discriminator_fade_in_at_the_phase_boundaries():
    _, d = _nets()
    x, labels = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 2])
    with torch.no_grad():
        old = d(F.avg_pool2d(x, 2), labels, level=1)[0]
        assert torch.allclose(d(x, labels, level=2, alpha=0.0)[0], old, atol=1e-6)
        assert torch.equal(d(x, labels, level=2, alpha=1.0)[0], d(x, labels, level=2)[0])
        assert not torch.allclose(d(x, labels, level=2, alpha=0.5)[0], old)
        assert d(x, labels)[1] is None            # projection: no class head


def test_growth_schedule_positions():
    sched = GrowthSchedule((4, 8, 16), fade_images=100, stable_images=50)
    assert sched.at(0) == (0, 1.0) and sched.at(49) == (0, 1.0)
    assert sched.at(50) == (1, 0.0)
    assert sched.at(75) == (1, 0.25)
    assert sched.at(150) == (1, 1.0) and sched.at(199) == (1, 1.0)
    assert sched.at(200) == (2, 0.0)
    assert sched.at(10**9) == (2, 1.0)
    assert sched.total_images == 50 + 2 * 150
    assert growth_plan(4, 256) == (4, 8, 16, 32, 64, 128, 256)


# -- MEGAN tiles


def test_assembly_reproduces_a_known_image_when_the_generator_is_the_identity():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.uniform(-1, 1, (3, 2, 64, 64)).astype(np.float32))
    noise = torch.randn(3, 1, 64, 64)
    calls = []

    def identity(up, edges, z, labels):
        calls.append(len(up))
        return up

    out = assemble(identity, [image, torch.zeros_like(noise), noise], torch.tensor([0, 1, 2]),
                   patch=16, out_channels=2, tile_batch=5)
    assert torch.equal(out, image)
    assert sum(calls) == 3 * 16 and max(calls) == 5
    # each tile is written where it belongs: a generator that returns its condition's mean
    # gives a piecewise-constant image of the tile means
    out = assemble(lambda up, lb: up.mean((2, 3), keepdim=True).expand_as(up).clone(),
                   [image], None, patch=32, out_channels=2)
    for top, left in tile_positions(64, 32):
        block = image[:, :, top:top + 32, left:left + 32]
        assert torch.allclose(out[:, :, top:top + 32, left:left + 32],
                              block.mean((2, 3), keepdim=True).expand_as(block))


def test_tiles_see_their_neighbours_and_the_reflection_at_the_border():
    rng = np.random.default_rng(2)
    image = torch.from_numpy(rng.uniform(-1, 1, (2, 1, 48, 48)).astype(np.float32))
    m, seen = 6, {}

    def record(up, labels):
        for crop_ in up:
            seen[len(seen)] = crop_.clone()
        return up

    out = assemble(record, [image], None, patch=16, out_channels=1, tile_batch=4, margin=m)
    assert torch.equal(out, image)           # identity: the kept centres are the image
    jobs = [(i, t, left) for t, left in tile_positions(48, 16) for i in range(2)]
    crops = {job: seen[k] for k, job in enumerate(jobs)}
    # a middle tile's margin is the real neighbouring pixels
    assert torch.equal(crops[(1, 16, 16)], image[1, :, 16 - m:32 + m, 16 - m:32 + m])
    # at the image border the margin is the reflection (without repeating the edge pixel)
    corner = crops[(0, 0, 0)]
    assert corner.shape[-1] == 16 + 2 * m
    for j in range(m):
        assert torch.equal(corner[:, m - 1 - j, m:], image[0, :, j + 1, :16 + m])
        assert torch.equal(corner[:, m:, m - 1 - j], image[0, :, :16 + m, j + 1])
    far = crops[(1, 32, 32)]
    assert torch.equal(far[:, 16 + m + 2, m:16 + m], image[1, :, 47 - 3, 32:48])


def _patch_net(seed=0):
    torch.manual_seed(seed)
    net = PatchGenerator(3, 2, width=4, blocks=1).eval()
    for layer in net.modules():          # non-trivial affine parameters
        if isinstance(layer, torch.nn.InstanceNorm2d):
            torch.nn.init.uniform_(layer.weight, 0.5, 1.5)
            torch.nn.init.uniform_(layer.bias, -0.5, 0.5)
    return net


@torch.no_grad()
def test_whole_scale_norm_statistics_gathered_tile_by_tile_equal_a_whole_scale_pass():
    net = _patch_net()
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.uniform(-1, 1, (3, 3, 64, 64)).astype(np.float32))

    def tile_fn(c, labels):
        return net(c)

    # margin 16 covers the receptive field up to the last norm: the tiles' centres see what
    # the whole (padded) scale sees, so their statistics are those of one whole-scale pass
    tiled = whole_scale_statistics(tile_fn, [x], None, patch=16, net=net, margin=16,
                                   tile_batch=7)
    whole = whole_scale_statistics(tile_fn, [x], None, patch=64, net=net, margin=16)
    assert len(tiled.fixed) == len(whole.fixed) == 5
    for layer, (mean, var) in whole.fixed.items():
        assert mean.shape == (3, layer.num_features)
        assert torch.allclose(tiled.fixed[layer][0], mean, atol=1e-5)
        assert torch.allclose(tiled.fixed[layer][1], var, atol=1e-5)
    a = assemble(tile_fn, [x], None, 16, 2, tile_batch=7, margin=16, norm_net=net)
    b = assemble(tile_fn, [x], None, 64, 2, margin=16, norm_net=net)
    assert torch.allclose(a, b, atol=1e-5)
    # independent check: one tile without margin is the network's own instance norm
    recorded = {}

    def record_stats(layer, inputs, output):
        recorded[layer] = (inputs[0].mean((2, 3)), inputs[0].var((2, 3), unbiased=False))
    hooks = [layer.register_forward_hook(record_stats)
             for layer in net.modules() if isinstance(layer, torch.nn.InstanceNorm2d)]
    plain = net(x)
    for h in hooks:
        h.remove()
    own = whole_scale_statistics(tile_fn, [x], None, patch=64, net=net, margin=0)
    for layer, (mean, var) in recorded.items():
        assert torch.allclose(own.fixed[layer][0], mean, atol=1e-5)
        assert torch.allclose(own.fixed[layer][1], var, atol=1e-5)
    assert torch.allclose(assemble(tile_fn, [x], None, 64, 2, norm_net=net), plain, atol=1e-5)
    # without whole-scale statistics the tiles are normalised on their own: a step appears
    assert not torch.allclose(assemble(tile_fn, [x], None, 16, 2, margin=16), b, atol=1e-3)
    # the hooks are gone after assembly: the network is the plain one again
    assert torch.equal(net(x), plain)


def test_tile_context_option_errors_are_one_line():
    scales = [64, 128, 256]
    assert check_tile_context(0, scales) == 0 and check_tile_context(TILE_CONTEXT, scales)
    for bad, words in [(-2, ">= 0"), (3, "even"), (128, "smaller than"), (2.0, ">= 0"),
                       (True, ">= 0")]:
        with pytest.raises(ConfigError, match=words) as err:
            check_tile_context(bad, scales)
        assert "\n" not in str(err.value)


def test_canny_edges_deterministic_and_explicit():
    rng = np.random.default_rng(1)
    img = np.zeros((2, 1, 32, 32), np.uint8)
    img[:, :, 8:24, 8:24] = 200
    img = np.clip(img + rng.integers(0, 10, img.shape), 0, 255).astype(np.uint8)
    e1, e2 = canny_edges(img), canny_edges(img)
    assert e1.dtype == np.uint8 and e1.shape == (2, 1, 32, 32)
    assert np.array_equal(e1, e2) and set(np.unique(e1)) <= {0, 255}
    # the square's outline is found: edge pixels near its border, none far inside
    assert e1[0, 0, 7:10, 10:22].any() and not e1[0, 0, 12:20, 12:20].any()
    assert not np.array_equal(canny_edges(img, CannyParams(sigma=3.0)), e1)
    with pytest.raises(DataError, match="uint8"):
        canny_edges(img.astype(np.float32))


# -- bad input


@pytest.mark.parametrize("start,size,match", [
    (4, 100, "not reachable from --start-size 4"), (8, 8, "not reachable"),
    (5, 64, "--start-size must be 4 or 8")])
def test_pggan_size_errors(start, size, match):
    with pytest.raises(ConfigError, match=match):
        growth_plan(start, size)


@pytest.mark.parametrize("low,size,patch,match", [
    (64, 64, 32, "too small"), (64, 192, 32, "doubled a whole number"),
    (64, 256, 48, "does not divide the 128 px scale"), (8, 64, 16, "--low-size must be"),
    (32, 64, 8, "--patch-size must be at least")])
def test_megan_size_errors(low, size, patch, match):
    with pytest.raises(ConfigError, match=match):
        scale_plan(low, size, patch)


def test_cli_bad_sizes_are_one_line(tmp_path):
    runner = CliRunner()
    for args in (["pggan", "--image-size", "100"],
                 ["megan", "--image-size", "256", "--patch-size", "48"],
                 ["megan", "--image-size", "64", "--low-size", "64"]):
        res = runner.invoke(app, ["train", *args, "--out", str(tmp_path / "x")])
        assert res.exit_code == 1, res.output
        lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("medsyn: error:"), res.output
        assert "Traceback" not in res.output


# -- training on real data


def _same_models(a, b):
    for name in a["models"]:
        sa, sb = a["models"][name], b["models"][name]
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{name}.{key} differs"


def _log(run_dir):
    return [{k: v for k, v in r.items() if k != "images_per_s"}
            for r in read_jsonl(run_dir / "log.jsonl")]


def test_pggan_trains_grows_and_resumes_bit_exact_across_a_growth_phase(tmp_path, data_root):
    full = train_pggan(out=str(tmp_path / "full"), max_steps=9, data_root=str(data_root),
                       **PGGAN_TINY)
    records = _log(full)
    assert [(r["resolution"], r["alpha"]) for r in records] == [
        (8, 1.0), (8, 1.0), (16, 0.0), (16, 0.5), (16, 1.0), (16, 1.0), (32, 0.0), (32, 0.5),
        (32, 1.0)]
    # stopped after step 4, in the middle of the 16 px fade-in, then resumed
    part = train_pggan(out=str(tmp_path / "part"), max_steps=4, data_root=str(data_root),
                       **PGGAN_TINY)
    payload = read_checkpoint(part / "last.pt")
    assert payload["growth"] == {"level": 1, "resolution": 16, "alpha": 0.5, "images_seen": 96}
    shutil.copy(part / "last.pt", tmp_path / "early.pt")
    resumed = train_pggan(resume=str(part / "last.pt"), max_steps=9, device="cpu", quiet=True)
    assert _log(resumed) == records
    _same_models(read_checkpoint(full / "last.pt"), read_checkpoint(resumed / "last.pt"))
    a = read_checkpoint(full / "last.pt")["optimizers"]["generator"]["state"]
    b = read_checkpoint(resumed / "last.pt")["optimizers"]["generator"]["state"]
    for i in a:
        for key in a[i]:
            assert torch.equal(torch.as_tensor(a[i][key]), torch.as_tensor(b[i][key]))

    gen = load_checkpoint(full / "last.pt")
    assert gen.kind == "pggan" and gen.task is Task.CONDITIONAL and gen.conditional
    images = gen.sample(5, seed=3)
    assert images.dtype == torch.uint8 and images.shape == (5, 1, 32, 32)
    assert torch.equal(images, gen.sample(5, seed=3))
    assert gen.discriminate(images, gen.sample_labels(5))["p_real"].shape == (5,)
    # a checkpoint from before the growth finished samples at the image size
    early = load_checkpoint(tmp_path / "early.pt")
    assert early.growth["resolution"] == 16 and early.sample(2, seed=0).shape == (2, 1, 32, 32)


def test_pggan_with_an_auxiliary_class_head(tmp_path, data_root):
    run_dir = train_pggan(out=str(tmp_path / "aux"), max_steps=3, conditioning="aux",
                          data_root=str(data_root), **PGGAN_TINY)
    records = _log(run_dir)
    assert all(0 <= r["aux_acc_real"] <= 1 and 0 <= r["aux_acc_fake"] <= 1 for r in records)
    gen = load_checkpoint(run_dir / "last.pt")
    assert gen.arch["conditioning"] == "aux" and gen.discriminator.project is None
    images = gen.sample(4, seed=0)
    out = gen.discriminate(images, gen.sample_labels(4))
    assert out["class_logits"].shape == (4, 2) and out["p_real"].shape == (4,)
    with pytest.raises(ConfigError, match="--conditioning .* differs"):
        train_pggan(resume=str(run_dir / "last.pt"), conditioning="projection", max_steps=4)


def _spread_records(n, fake, real, alpha=1.0, per_class=True):
    keys = ("g_std_class", "real_std_class") if per_class else ("g_std", "real_std")
    return [{"step": i + 1, "alpha": alpha, keys[0]: fake, keys[1]: real} for i in range(n)]


def test_pggan_collapse_detector_reads_the_spread_against_the_real_images():
    aux = PgganCollapseDetector("aux")
    # the aux run of docs/highres.md (0.19 of the real spread) warns, naming the projection
    warning = aux(_spread_records(50, 0.06, 0.3175))
    assert warning and "0.19 times" in warning and "--conditioning projection" in warning
    assert "\n" not in warning
    # the projection run (0.68) and a short run's stable phases (0.39) do not
    assert PgganCollapseDetector("projection")(_spread_records(50, 0.2144, 0.3175)) is None
    assert aux(_spread_records(50, 0.39, 1.0)) is None
    # fewer stable steps than the window: no verdict yet; fade-in steps do not count
    assert aux(_spread_records(49, 0.06, 0.3175)) is None
    faded = _spread_records(50, 0.06, 0.3175) + _spread_records(10, 0.01, 0.3, alpha=0.5)
    assert aux(faded) is None
    assert aux(_spread_records(10, 0.01, 0.3, alpha=0.5) + _spread_records(50, 0.06, 0.3175))
    # one class: the whole batch's spread against the real batch's
    single = PgganCollapseDetector("projection")(_spread_records(50, 0.01, 0.3, per_class=False))
    assert single and "per class" not in single and "--fade-images" in single


def test_pggan_logs_the_class_spread_of_fakes_and_reals_and_warns_on_collapse(
        tmp_path, data_root, monkeypatch):
    monkeypatch.setattr(PgganCollapseDetector, "window", 4)
    healthy = train_pggan(out=str(tmp_path / "healthy"), max_steps=6, data_root=str(data_root),
                          **PGGAN_TINY)
    records = _log(healthy)
    assert all(r["g_std_class"] > 0 and r["real_std_class"] > 0 for r in records)
    # the reals' spread is that of the logged step's real batch: recompute the first by hand
    from medsyn.data import load_dataset
    from medsyn.generators.engine import BatchSource
    from medsyn.model_range import to_model_range
    ds = load_dataset("breastmnist", "train", image_size=32, root=str(data_root))
    x, y = next(BatchSource([ds.images, ds.labels], 32, device=torch.device("cpu"),
                            seed=0, what="t").epoch(0))
    x = F.adaptive_avg_pool2d(to_model_range(x), 8)
    expected = float(class_spread(x, y, 2, x.std(0).mean()))
    assert records[0]["real_std_class"] == pytest.approx(expected, rel=1e-5)

    build = pggan_training.build_pggan

    def noise_blind(arch):       # a generator that ignores its noise: one image per class
        g, d = build(arch)
        forward = g.forward
        g.forward = lambda z, labels, level, alpha: forward(torch.zeros_like(z), labels,
                                                            level, alpha)
        return g, d
    monkeypatch.setattr(pggan_training, "build_pggan", noise_blind)
    collapsed = train_pggan(out=str(tmp_path / "collapsed"), max_steps=6,
                            data_root=str(data_root), **PGGAN_TINY)
    warned = [r for r in _log(collapsed) if r.get("warning")]
    assert len(warned) == 1 and "within each class" in warned[0]["warning"]
    assert read_checkpoint(collapsed / "last.pt")["warnings"] == [warned[0]["warning"]]
    assert not any(r.get("warning") for r in records)


def test_megan_trains_samples_and_resumes_bit_exact(tmp_path, data_root):
    from medsyn.generators.highres.megan_training import train_megan

    full = train_megan(out=str(tmp_path / "full"), max_steps=4, epochs=1,
                       data_root=str(data_root), **MEGAN_TINY)
    part = train_megan(out=str(tmp_path / "part"), max_steps=2, epochs=1,
                       data_root=str(data_root), **MEGAN_TINY)
    resumed = train_megan(resume=str(part / "last.pt"), max_steps=4, device="cpu", quiet=True)
    assert _log(resumed) == _log(full)
    assert {"loss_d_0", "loss_g_1", "l1_1"} <= set(_log(full)[0])
    _same_models(read_checkpoint(full / "last.pt"), read_checkpoint(resumed / "last.pt"))

    gen = load_checkpoint(full / "last.pt")
    assert gen.kind == "megan" and gen.task is Task.CONDITIONAL
    assert gen.scales == [16, 32] and gen.edge_bank["edges"].shape[1:] == (1, 16, 16)
    images = gen.sample(4, seed=1)
    assert images.dtype == torch.uint8 and images.shape == (4, 1, 32, 32)
    assert torch.equal(images, gen.sample(4, seed=1))
    assert not torch.equal(images, gen.sample(4, seed=2))
    assert "edge_bank" not in gen.metadata


# -- seam statistics and peak memory


def test_seam_statistics_against_a_hand_count():
    from medsyn.evaluators.metrics.highres import seam_comparison, seam_statistics

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 1, 8, 8)).astype(np.uint8)
    border, interior = [], []
    for img in images[:, 0].astype(float):
        for r in range(8):
            for c in range(7):
                # the pair across the border (3, 4) and the pairs beside it, (2, 3) and (4, 5)
                kind = border if c == 3 else interior if c in (2, 4) else []
                kind.append((img[r, c + 1] - img[r, c]) ** 2)
                kind.append((img[c + 1, r] - img[c, r]) ** 2)
    stats = seam_statistics(images, 4)
    assert stats["border_energy"] == pytest.approx(np.mean(border))
    assert stats["interior_energy"] == pytest.approx(np.mean(interior))
    # tiles with offsets of their own: seams only on the tile borders
    smooth = np.tile(np.linspace(0, 60, 16), (16, 1))[None, None]
    tiled = smooth + np.kron(np.array([[0, 50], [50, 0]]), np.ones((8, 8)))[None, None]
    res = seam_comparison(tiled.astype(np.uint8), smooth.astype(np.uint8), 8)
    assert res["real"]["ratio"] < 2 < res["fake"]["ratio"] and res["ratio_excess"] > 2
    with pytest.raises(ValueError, match="divide"):
        seam_statistics(images, 3)


def test_seam_ratio_of_real_radiographs_is_near_one(data_root):
    """Real images have no tiles, so their border pairs are ordinary pairs. cxr3's gradient
    energy is highest at the image's own edges; against all interior pairs its ratio on a
    64 px grid was 0.49, against the neighbouring pairs it is near 1."""
    from medsyn.data import load_dataset
    from medsyn.evaluators.metrics.highres import seam_statistics

    ds = load_dataset("cxr3", split="test", root=data_root)
    images = ds.images[::6]
    for patch in (32, 64, 128):
        assert seam_statistics(images, patch)["ratio"] == pytest.approx(1.0, abs=0.12), patch


def test_peak_memory_sees_a_known_allocation():
    from medsyn.generators.highres.memory import peak_memory

    size = 200 * 2**20
    res = peak_memory(lambda: torch.ones(size // 4, dtype=torch.float32).sum(), "cpu")
    assert 0.9 * size < res["peak_bytes"] < 1.3 * size
    assert "VmHWM" in res["method"]


def test_scale_fid_sees_fine_noise_only_at_fine_scales(data_root):
    import medsyn.evaluators as ev
    from medsyn.data import load_dataset, resize_uint8
    from medsyn.evaluators.features import extract_features
    from medsyn.evaluators.metrics import stats

    # features: the mean positive and negative Laplacian response and the mean grey level
    conv = torch.nn.Conv2d(1, 3, 3, bias=False)
    lap = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])
    with torch.no_grad():
        conv.weight.copy_(torch.stack([lap, -lap, torch.full((3, 3), 1 / 9)])[:, None])
    net = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))
    extractor = ev.TorchModuleExtractor("tiny-scales", net, feature_dim=3, weights_sha256="t")
    real = load_dataset("breastmnist", "test", image_size=64, root=data_root).subset(range(60))
    # pixel-level texture (a +-40 checkerboard) where it does not clip
    checker = torch.tensor([[40, -40], [-40, 40]]).repeat(32, 32)
    inside = (real.images >= 40) & (real.images <= 215)
    fake = torch.where(inside, real.images.int() + checker, real.images.int()).to(torch.uint8)
    res = ev.evaluate(fake, None, reference=real, extractor=extractor,
                      metrics=["fid", "scale_fid"], n_bootstrap=0, fid_scales=(16, 64))
    m = res["metrics"]
    assert m["fid_16px"]["value"] < m["fid"]["value"] / 10
    assert m["fid_64px"]["value"] is None and "not below" in m["fid_64px"]["unavailable"]
    by_hand = stats.fid_value(extract_features(extractor, resize_uint8(fake, 16)).features,
                              extract_features(extractor, resize_uint8(real.images, 16)).features)
    assert m["fid_16px"]["value"] == pytest.approx(by_hand, rel=1e-6)


def test_cli_samples_and_evaluates_high_res_checkpoints(tmp_path, data_root):
    from medsyn.generators.highres.megan_training import train_megan

    runs = {"pggan": train_pggan(out=str(tmp_path / "p"), max_steps=3, data_root=str(data_root),
                                 **PGGAN_TINY),
            "megan": train_megan(out=str(tmp_path / "m"), max_steps=2, epochs=1,
                                 data_root=str(data_root), **MEGAN_TINY)}
    runner = CliRunner()
    for kind, run_dir in runs.items():
        out = tmp_path / f"samples-{kind}"
        res = runner.invoke(app, ["sample", "--checkpoint", str(run_dir / "last.pt"), "--n", "6",
                                  "--out", str(out), "--device", "cpu"])
        assert res.exit_code == 0, res.output
        assert len(list(out.glob("*/*.png"))) == 6 and (out / "labels.csv").exists()
    res = runner.invoke(app, [
        "evaluate", "--checkpoint", str(runs["megan"] / "last.pt"), "--metrics", "seams,fid",
        "--seam-patch", "16", "--extractor", "pixels", "--n-samples", "20", "--n-real", "20",
        "--bootstrap", "5", "--device", "cpu", "--out", str(tmp_path / "ev"),
        "--data-root", str(data_root)])
    assert res.exit_code == 0, res.output
    import json

    metrics = json.loads((tmp_path / "ev" / "results.json").read_text())["metrics"]
    seams = metrics["seams"]
    assert seams["patch"] == 16 and seams["value"] == pytest.approx(
        seams["fake_ratio"] / seams["real_ratio"])
    assert metrics["fid"]["value"] > 0


def test_memory_measurements_run_the_megan_and_whole_image_paths():
    from medsyn.generators.highres import memory

    arch = dict(image_size=32, channels=1, num_classes=2, scales=[16, 32], patch_size=16,
                g_width=4, d_width=4)
    for patch, context in ((None, 0), (None, 4), (32, 0)):
        res = memory._generation_peak(arch, "cpu", 2, 4, 0, patch, context)
        assert res["peak_bytes"] >= 0 and "VmHWM" in res["method"]
    for size in (16, 32):
        assert memory._training_peak(arch, "cpu", 2, 0, size)["peak_bytes"] >= 0
