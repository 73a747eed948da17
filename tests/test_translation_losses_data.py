"""Translation losses against hand computations, the image pool, conditions and pairing
(deterministic under a seed), folders of A/ B/ pairs and their one-line errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from medsyn.errors import ConfigError, DataError
from medsyn.generators.translation.data import (
    canny_edges,
    load_condition_pairs,
    load_domain,
    load_folder_pairs,
    lowres_inputs,
    make_condition,
    noisy_inputs,
    parse_domain,
)
from medsyn.generators.translation.losses import (
    ImagePool,
    cycle_loss,
    identity_loss,
    l1_loss,
    lsgan_loss,
)
from medsyn.generators.translation.networks import (
    PatchDiscriminator,
    ResnetGenerator,
    UNetGenerator,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------ losses


def test_lsgan_loss_by_hand():
    pred = torch.tensor([[0.5, 1.5], [2.0, -1.0]])
    # target 1: (0.25 + 0.25 + 1 + 4) / 4
    assert lsgan_loss(pred, 1.0).item() == pytest.approx(5.5 / 4)
    # target 0: (0.25 + 2.25 + 4 + 1) / 4
    assert lsgan_loss(pred, 0.0).item() == pytest.approx(7.5 / 4)


def test_l1_cycle_and_identity_by_hand():
    a = torch.tensor([0.0, 1.0, -1.0, 0.5])
    rec_a = torch.tensor([0.5, 1.0, -0.5, 0.5])       # |diff| = .5 0 .5 0 -> mean .25
    b = torch.tensor([1.0, 1.0])
    rec_b = torch.tensor([0.0, 1.0])                   # mean 0.5
    assert l1_loss(rec_a, a).item() == pytest.approx(0.25)
    assert cycle_loss(rec_a, a, rec_b, b, 10.0).item() == pytest.approx(10 * (0.25 + 0.5))
    # identity: weight = cycle 10 x identity 0.5 = 5
    assert identity_loss(rec_b, b, rec_a, a, 5.0).item() == pytest.approx(5 * (0.5 + 0.25))


def test_pix2pix_discriminator_loss_by_hand():
    from medsyn.generators.engine.adversarial import bce_with_logits

    logits = torch.tensor([0.0, 2.0])
    # real target: mean(-log sigmoid(l)) = mean(log(1 + exp(-l))), halved as in pix2pix
    real = 0.5 * (np.log(2.0) + np.log(1.0 + np.exp(-2.0))) / 2
    # fake target: mean(-log(1 - sigmoid(l))) = mean(log(1 + exp(l)))
    fake = 0.5 * (np.log(2.0) + np.log(1.0 + np.exp(2.0))) / 2
    assert (0.5 * bce_with_logits(logits, 1.0)).item() == pytest.approx(real)
    assert (0.5 * bce_with_logits(logits, 0.0)).item() == pytest.approx(fake)


def test_image_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(2)
    gen = torch.Generator().manual_seed(0)
    first = torch.arange(2.0).reshape(2, 1, 1, 1)
    assert torch.equal(pool.query(first, gen), first)            # filling: returned as is
    assert torch.equal(pool.state(), first)
    many = torch.full((400, 1, 1, 1), 7.0)
    out = pool.query(many, gen)
    from_history = int((out != 7.0).sum())
    assert 0 < from_history <= 2            # only the two stored images can come back once
    # every swap stores a 7: after 400 draws both slots hold 7 with overwhelming probability
    assert torch.equal(pool.state(), torch.full((2, 1, 1, 1), 7.0))
    # replay: the same generator seed makes the same decisions
    again = ImagePool(2)
    gen2 = torch.Generator().manual_seed(0)
    again.query(first, gen2)
    assert torch.equal(again.query(many, gen2), out)
    assert torch.equal(ImagePool(0).query(many, gen), many)


def test_networks_shapes():
    x = torch.zeros(2, 1, 32, 32)
    assert UNetGenerator(1, 3, features=4, depth=5)(x).shape == (2, 3, 32, 32)
    assert ResnetGenerator(1, 1, features=4, n_blocks=1)(x).shape == (2, 1, 32, 32)
    assert PatchDiscriminator(2, features=4, n_layers=3)(torch.zeros(2, 2, 32, 32)).shape == \
        (2, 1, 2, 2)
    # depth 8 at 256 px has three dropout blocks, as the reference's unet_256
    unet = UNetGenerator(1, 1, features=2, depth=8)
    assert sum(isinstance(m, torch.nn.Dropout) for m in unet.modules()) == 3


# ------------------------------------------------------------------ conditions


def _images(seed=0, n=3, size=32, channels=1):
    return torch.from_numpy(np.random.default_rng(seed).integers(
        0, 256, (n, channels, size, size), dtype=np.uint8))


def test_canny_edges_equal_scikit_image():
    from skimage.feature import canny

    images = _images()
    edges = canny_edges(images, sigma=1.5)
    assert edges.dtype == torch.uint8 and set(edges.unique().tolist()) <= {0, 255}
    for i in range(3):
        expected = canny(images[i, 0].numpy() / 255.0, sigma=1.5)
        assert np.array_equal(edges[i, 0].numpy() == 255, expected)


def test_lowres_is_matlab_bicubic_down_and_up():
    from medsyn.data.transforms.matlab_resize import imresize

    images = _images(size=32)
    out = lowres_inputs(images, 4)
    expected = imresize(imresize(images[1, 0].numpy(), 0.25), 4.0)
    assert np.array_equal(out[1, 0].numpy(), expected)
    with pytest.raises(ConfigError, match="does not divide"):
        lowres_inputs(_images(size=30), 4)


def test_noise_is_deterministic_under_a_seed():
    images = _images()
    a, b = noisy_inputs(images, 25, seed=3), noisy_inputs(images, 25, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, noisy_inputs(images, 25, seed=4))
    diff = a.float() - images.float()
    # clipped Gaussian of std 25: the unclipped pixels' spread is close to 25
    inside = (a > 0) & (a < 255)
    assert 20 < diff[inside].std().item() < 30
    with pytest.raises(ConfigError, match="unknown condition"):
        make_condition(images, "blur")


def test_condition_pairs_from_real_data_are_deterministic(data_root):
    first = load_condition_pairs("pneumoniamnist", "test", condition="noise", seed=1)
    again = load_condition_pairs("pneumoniamnist", "test", condition="noise", seed=1)
    assert torch.equal(first.inputs, again.inputs) and torch.equal(first.targets, again.targets)
    assert first.inputs.shape == first.targets.shape == (624, 1, 28, 28)
    assert first.condition["condition"] == "noise" and first.dataset["name"] == "pneumoniamnist"
    edges = load_condition_pairs("pneumoniamnist", "test", condition="edges", image_size=32)
    assert edges.inputs.shape == (624, 1, 32, 32)
    assert torch.equal(edges.inputs, canny_edges(edges.targets, 2.0))


def test_domains_parse_and_select_a_class(data_root):
    assert parse_domain("cxr3") == ("cxr3", "train", None)
    assert parse_domain("cxr3:test:Viral Pneumonia") == ("cxr3", "test", "Viral Pneumonia")
    assert parse_domain("cxr3::Normal") == ("cxr3", "train", "Normal")
    assert parse_domain("folder:/x/y:all") == ("folder:/x/y", "all", None)
    with pytest.raises(ConfigError, match="too many"):
        parse_domain("cxr3:a:b:c")
    domain = load_domain("pneumoniamnist:test:normal")
    assert len(domain) == 234 and domain.info["selection"] == "pneumoniamnist/test/normal"
    assert len(load_domain("pneumoniamnist:train:normal", split="test")) == 234
    with pytest.raises(DataError, match="no class 'covid'"):
        load_domain("pneumoniamnist:test:covid")


# ------------------------------------------------------------------ folders of pairs


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _pair_folder(root, names=("a", "b", "c"), size=16):
    rng = np.random.default_rng(0)
    for name in names:
        _save(root / "A" / f"{name}.png", rng.integers(0, 256, (size, size), dtype=np.uint8))
        _save(root / "B" / f"{name}.png", rng.integers(0, 256, (size, size), dtype=np.uint8))
    return root


def test_folder_pairs_match_by_name(tmp_path):
    folder = _pair_folder(tmp_path / "pairs")
    pairs = load_folder_pairs(folder)
    assert pairs.names == ["a", "b", "c"] and pairs.dataset["split"] == "all"
    b = np.asarray(Image.open(folder / "B" / "b.png"))
    assert np.array_equal(pairs.targets[1, 0].numpy(), b)
    assert pairs.dataset["fingerprint"] == load_folder_pairs(folder).dataset["fingerprint"]
    split_folder = _pair_folder(tmp_path / "splits" / "train")
    assert load_folder_pairs(tmp_path / "splits", "train").dataset["split"] == "train"
    assert len(load_folder_pairs(split_folder.parent, "train", image_size=32).targets[0, 0]) == 32


def test_unmatched_and_mismatched_pairs_are_one_line_errors(tmp_path):
    folder = _pair_folder(tmp_path / "unmatched")
    (folder / "B" / "c.png").rename(folder / "B" / "d.png")
    with pytest.raises(DataError, match=r"unmatched pairs.*1 only in .*A: c;.*only in .*B: d"):
        load_folder_pairs(folder)
    folder = _pair_folder(tmp_path / "sizes")
    _save(folder / "B" / "b.png", np.zeros((20, 16), np.uint8))
    with pytest.raises(DataError, match=r"b.png is 16x16 px but .*b.png is 20x16"):
        load_folder_pairs(folder)
    with pytest.raises(DataError, match="neither"):
        load_folder_pairs(tmp_path)


def test_cli_reports_a_bad_pair_folder_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from medsyn.cli import app

    folder = _pair_folder(tmp_path / "pairs")
    (folder / "A" / "a.png").unlink()
    result = CliRunner().invoke(app, ["train", "pix2pix", "--paired-folder", str(folder),
                                      "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medsyn: error: unmatched pairs")
    assert "Traceback" not in result.output
