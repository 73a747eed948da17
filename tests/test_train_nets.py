"""Networks of the image GANs: the size rule, output shapes, the CXR-ACGAN layout at 112 px."""

import pytest
import torch
from torch import nn

from medsyn.errors import ConfigError
from medsyn.generators.gan.kinds import GAN_KINDS
from medsyn.generators.gan.nets import (
    AcganDiscriminator,
    AcganGenerator,
    DcganDiscriminator,
    DcganGenerator,
    init_weights,
    size_plan,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("size, plan", [(28, (7, 2)), (32, (4, 3)), (64, (4, 4)),
                                        (112, (7, 4)), (128, (8, 4)), (48, (6, 3)), (16, (4, 2))])
def test_size_plan(size, plan):
    assert size_plan(size) == plan
    start, stages = plan
    assert start * 2 ** stages == size


@pytest.mark.parametrize("size", [30, 12, 7, 0, -28, 28.0, True])
def test_unsupported_sizes_are_refused_with_the_rule(size):
    with pytest.raises(ConfigError, match="image size"):
        size_plan(size)


@pytest.mark.parametrize("kind", sorted(GAN_KINDS))
@pytest.mark.parametrize("size", [28, 32, 64, 112, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_kind_size_and_channel_count(kind, size, channels):
    spec = GAN_KINDS[kind]
    options = {"g_width": 4, "d_width": 4, "noise_dim": 8, "embed_dim": 3}
    arch = spec.arch(options, num_classes=3, channels=channels, image_size=size)
    g, d = spec.build(arch)
    z = torch.randn(2, 8)
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        x = g(z, labels if spec.conditional else None)
        assert x.shape == (2, channels, size, size)
        assert x.min() >= -1 and x.max() <= 1            # tanh output
        src, cls = d(x, labels if spec.label_input_to_d else None)
    assert src.shape == (2,)
    assert (cls is not None) == spec.aux_classifier
    if cls is not None:
        assert cls.shape == (2, 3)


def test_acgan_defaults_are_the_cxr_acgan_layout_at_112px():
    arch = GAN_KINDS["acgan"].arch({}, num_classes=3, channels=1, image_size=112)
    assert (arch["noise_dim"], arch["embed_dim"], arch["g_width"], arch["d_width"],
            arch["dropout"]) == (100, 50, 128, 64, 0.5)
    g, d = GAN_KINDS["acgan"].build(arch)
    assert g.noise_dense.in_features == 100 and g.noise_dense.out_features == 7 * 7 * 1024
    assert g.label_dense.out_features == 7 * 7 * 1
    convs = [m for m in g.blocks if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1025, 512, (5, 5), (2, 2)), (512, 256, (5, 5), (2, 2)), (256, 128, (5, 5), (2, 2)),
        (128, 1, (5, 5), (2, 2))]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.blocks) == 3
    assert isinstance(g.blocks[-1], nn.Tanh)
    # discriminator: four conv / BN / LeakyReLU(0.2) / dropout(0.5) blocks down to 7x7x512
    kinds = [type(m) for m in d.features]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU, nn.Dropout] * 4
    assert all(m.negative_slope == 0.2 for m in d.features if isinstance(m, nn.LeakyReLU))
    assert all(m.p == 0.5 for m in d.features if isinstance(m, nn.Dropout))
    with torch.no_grad():
        feats = d.features(torch.zeros(1, 1, 112, 112))
    assert feats.shape == (1, 512, 7, 7)
    assert d.source.in_features == d.classifier.in_features == 7 * 7 * 512
    assert d.source.out_features == 1 and d.classifier.out_features == 3


def test_dcgan_layout_at_112px():
    g = DcganGenerator(channels=1, image_size=112, noise_dim=100, num_classes=3, width=64)
    convs = [m for m in g.net if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (103, 512), (512, 256), (256, 128), (128, 64), (64, 1)]
    assert convs[0].kernel_size == (7, 7)
    d = DcganDiscriminator(channels=1, image_size=112, num_classes=3, width=64)
    convs = [m for m in d.net if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (4, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    assert not isinstance(d.net[1], nn.BatchNorm2d)       # no batch norm on the input layer


def test_cgan_discriminator_sees_the_label():
    torch.manual_seed(0)
    d = DcganDiscriminator(channels=1, image_size=28, num_classes=2, width=4).eval()
    init_weights(d)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        a, _ = d(x, torch.tensor([0, 0]))
        b, _ = d(x, torch.tensor([1, 1]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="needs labels"):
        d(x)


def test_dcgan_initialisation():
    torch.manual_seed(0)
    g = AcganGenerator(3, 1, 112)
    d = AcganDiscriminator(3, 1, 112)
    init_weights(g)
    init_weights(d)
    w = g.blocks[0].weight
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3
    bn = g.blocks[1]
    assert abs(bn.weight.mean().item() - 1) < 0.01 and abs(bn.weight.std().item() - 0.02) < 0.01
    assert torch.count_nonzero(bn.bias) == 0 and torch.count_nonzero(d.source.bias) == 0
