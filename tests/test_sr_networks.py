"""SRResNet / SRGAN discriminator shapes and parameter counts, losses, content loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medsyn.errors import CheckpointError, ConfigError
from medsyn.generators.sr import losses, networks


def conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def paper_srresnet_params(channels, scale, blocks=16, f=64):
    """Ledig et al. Fig. 4 (generator), counted by hand: PReLU has one slope, BN two vectors."""
    head = conv(channels, f, 9) + 1
    block = 2 * (conv(f, f, 3) + 2 * f) + 1
    body_tail = conv(f, f, 3) + 2 * f
    up = (conv(f, 4 * f, 3) + 1) * int(math.log2(scale))
    tail = conv(f, channels, 9)
    return head + blocks * block + body_tail + up + tail


def paper_discriminator_params(channels):
    """Ledig et al. Fig. 4 (discriminator) for its 96x96 inputs: 6x6x512 into dense 1024."""
    total = conv(channels, 64, 3)
    widths = [64, 64, 128, 128, 256, 256, 512, 512]
    for cin, cout in zip(widths[:-1], widths[1:], strict=True):
        total += conv(cin, cout, 3) + 2 * cout
    return total + (512 * 6 * 6 * 1024 + 1024) + (1024 + 1)


@pytest.mark.parametrize("channels, scale", [(3, 4), (1, 4), (3, 2), (3, 8)])
def test_srresnet_parameter_count_matches_the_paper(channels, scale):
    net = networks.SRResNet(channels, scale)
    assert networks.count_parameters(net) == paper_srresnet_params(channels, scale)


def test_srresnet_4x_rgb_is_the_familiar_1_5m():
    assert networks.count_parameters(networks.SRResNet(3, 4)) == 1_549_462


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_srresnet_shapes(scale):
    torch.manual_seed(0)
    net = networks.SRResNet(1, scale, n_blocks=2, features=8)
    out = net(torch.randn(2, 1, 6, 10))
    assert out.shape == (2, 1, 6 * scale, 10 * scale)
    pixel_shuffles = [m for m in net.modules() if isinstance(m, torch.nn.PixelShuffle)]
    assert len(pixel_shuffles) == int(math.log2(scale))
    assert sum(isinstance(m, networks.ResidualBlock) for m in net.modules()) == 2
    assert net.arch() == {"name": "srresnet", "channels": 1, "scale": scale, "n_blocks": 2,
                          "features": 8}


def test_srresnet_rejects_bad_configuration():
    with pytest.raises(ConfigError, match="scale"):
        networks.SRResNet(3, 3)
    with pytest.raises(ConfigError, match="channels"):
        networks.SRResNet(2, 4)


def test_discriminator_parameter_count_and_layers_match_the_paper():
    d = networks.SRDiscriminator(3)
    assert networks.count_parameters(d) == paper_discriminator_params(3)
    convs = [m for m in d.features_net if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.stride[0], c.kernel_size[0]) for c in convs] == [
        (64, 1, 3), (64, 2, 3), (128, 1, 3), (128, 2, 3), (256, 1, 3), (256, 2, 3),
        (512, 1, 3), (512, 2, 3)]
    slopes = {m.negative_slope for m in d.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}
    dense = [m for m in d.classifier if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in dense] == [(512 * 36, 1024), (1024, 1)]


def test_discriminator_shapes_and_pool_is_identity_at_96px():
    torch.manual_seed(0)
    d = networks.SRDiscriminator(1, features=8, dense=16).eval()
    seen = {}
    d.features_net.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    assert d(torch.randn(3, 1, 96, 96)).shape == (3,)
    assert seen["shape"][-2:] == (6, 6)  # the paper's 6x6 map: adaptive pool does nothing
    assert d(torch.randn(2, 1, 256, 256)).shape == (2,)
    assert d(torch.randn(2, 1, 28, 28)).shape == (2,)
    with pytest.raises(ConfigError, match="16x16"):
        d(torch.randn(1, 1, 12, 12))


def test_adversarial_losses_are_weighted_bce_with_logits():
    fake = torch.tensor([0.3, -1.2, 2.0])
    real = torch.tensor([1.5, 0.1, -0.4])
    expected_g = -torch.log(torch.sigmoid(fake)).mean() * 1e-3
    assert losses.generator_adversarial_loss(fake).item() == pytest.approx(expected_g.item())
    expected_d = (-torch.log(torch.sigmoid(real)).mean()
                  - torch.log(1 - torch.sigmoid(fake)).mean())
    assert losses.discriminator_loss(real, fake).item() == pytest.approx(expected_d.item(),
                                                                         rel=1e-6)
    assert losses.ADVERSARIAL_WEIGHT == 1e-3


# ----------------------------------------------------------------------------- content loss


def test_vgg19_features_layout_equals_torchvision():
    import torchvision

    with torch.device("meta"):
        reference = torchvision.models.vgg19().features
    ours = losses.build_vgg19_features("relu5_4")
    ref_shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    our_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert our_shapes.items() <= ref_shapes.items()
    assert len(ours) == 36 and losses.vgg19_layer_names()[35] == "relu5_4"
    assert type(reference[35]) is type(ours[35]) is torch.nn.ReLU


def test_content_loss_without_weights_is_pixel_mse(monkeypatch):
    monkeypatch.delenv("MEDSYN_VGG19_WEIGHTS", raising=False)
    loss = losses.ContentLoss()
    assert loss.kind == "pixel" and "pixel MSE" in loss.description
    assert "MEDSYN_VGG19_WEIGHTS" in loss.description
    a, b = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    assert loss(a, b).item() == pytest.approx(F.mse_loss(a, b).item())
    assert loss.info() == {"kind": "pixel", "description": loss.description}
    with pytest.raises(ConfigError, match="MEDSYN_VGG19_WEIGHTS"):
        losses.ContentLoss("vgg19")


@pytest.fixture
def small_vgg_weights(tmp_path):
    """A torchvision-format VGG19 state_dict truncated to relu2_2 (random weights)."""
    torch.manual_seed(0)
    net = losses.build_vgg19_features("relu2_2")
    state = {f"features.{k}": v for k, v in net.state_dict().items()}
    state["classifier.0.bias"] = torch.zeros(4)  # ignored, as in a full state_dict
    path = tmp_path / "vgg19_small.pth"
    torch.save(state, path)
    return path, net


def test_content_loss_with_vgg19_weights_from_env(small_vgg_weights, monkeypatch):
    path, net = small_vgg_weights
    monkeypatch.setenv("MEDSYN_VGG19_WEIGHTS", str(path))
    loss = losses.ContentLoss(layer="relu2_2")
    assert loss.kind == "vgg19" and "VGG19 relu2_2" in loss.description
    assert path.name in loss.description
    info = loss.info()
    assert info["weights"] == str(path) and len(info["weights_sha256"]) == 64
    assert not any(p.requires_grad for p in loss.vgg.parameters())
    torch.manual_seed(1)
    sr = (torch.rand(2, 1, 16, 16) * 2 - 1).requires_grad_()
    hr = torch.rand(2, 1, 16, 16) * 2 - 1
    value = loss(sr, hr)
    mean = torch.tensor(losses.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(losses.IMAGENET_STD).view(1, 3, 1, 1)

    def feats(x):
        return net(((x.repeat(1, 3, 1, 1) + 1) / 2 - mean) / std) / 12.75

    assert value.item() == pytest.approx(F.mse_loss(feats(sr), feats(hr)).item(), rel=1e-5)
    value.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    loss.train()
    assert not loss.vgg.training
    # An explicit option wins over the environment; "pixel" ignores both.
    assert losses.ContentLoss("pixel").kind == "pixel"


def test_bad_vgg19_weights_give_clear_errors(tmp_path, small_vgg_weights):
    path, _ = small_vgg_weights
    with pytest.raises(CheckpointError, match="file not found"):
        losses.ContentLoss(vgg19_weights=tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot be read"):
        losses.ContentLoss(vgg19_weights=garbage)
    with pytest.raises(CheckpointError, match="missing .* features.10.weight"):
        losses.ContentLoss(vgg19_weights=path, layer="relu3_1")
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3),
                "features.0.bias": torch.zeros(64)}, wrong)
    with pytest.raises(CheckpointError, match=r"shape \(64, 1, 3, 3\)"):
        losses.ContentLoss(vgg19_weights=wrong, layer="relu1_1")
    not_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_dict)
    with pytest.raises(CheckpointError, match="not a state_dict"):
        losses.ContentLoss(vgg19_weights=not_dict)
    with pytest.raises(ConfigError, match="unknown VGG19 layer"):
        losses.ContentLoss(vgg19_weights=path, layer="relu9_9")


def test_bare_features_state_dict_also_loads(tmp_path):
    net = losses.build_vgg19_features("relu1_2")
    path = tmp_path / "features.pth"
    torch.save(net.state_dict(), path)
    loaded = losses.load_vgg19_features(path, "relu1_2")
    assert torch.equal(loaded[0].weight, net[0].weight)


# ----------------------------------------------------------------------------- inference


def test_upscale_uint8_converts_and_restores_mode():
    torch.manual_seed(0)
    net = networks.SRResNet(1, 2, n_blocks=1, features=4).train()
    lr = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    out = networks.upscale_uint8(net, lr, batch_size=2)
    assert out.dtype == torch.uint8 and out.shape == (3, 1, 16, 16)
    assert net.training
    net.eval()
    with torch.no_grad():
        y = net(lr.float() / 127.5 - 1)
    assert torch.equal(out, ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
    with pytest.raises(ConfigError, match="uint8"):
        networks.upscale_uint8(net, lr.float())
