"""The three image GANs: what distinguishes them, their default hyperparameters, and how their
networks are built.

| kind    | generator input          | discriminator input        | discriminator output     |
|---------|--------------------------|----------------------------|--------------------------|
| `acgan` | noise, label (embedding) | image                      | real/fake + class logits |
| `cgan`  | noise (+) one-hot label  | image (+) one-hot planes   | real/fake                |
| `dcgan` | noise                    | image                      | real/fake                |

The losses of each kind are in :mod:`medsyn.generators.gan.step`. Options of the recipe that
change the networks (spectral norm, the projection discriminator, the twin classifier) are part
of the architecture a checkpoint records; a checkpoint without them has them off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from medsyn.errors import ConfigError
from medsyn.generators.gan.nets import (
    AcganDiscriminator,
    AcganGenerator,
    DcganDiscriminator,
    DcganGenerator,
    init_weights,
    size_plan,
)
from medsyn.generators.stabilisers.spectral import spectrally_normalise


@dataclass(frozen=True)
class GanKind:
    """What distinguishes one GAN kind: conditioning, heads, and its default hyperparameters."""

    name: str
    description: str
    conditional: bool          # the generator takes a label
    label_input_to_d: bool     # the discriminator is fed the label (cGAN)
    aux_classifier: bool       # the discriminator has a class head (AC-GAN)
    arch_defaults: dict = field(default_factory=dict)
    train_defaults: dict = field(default_factory=dict)

    def arch(self, options: dict, num_classes: int, channels: int, image_size: int) -> dict:
        """The architecture hyperparameters stored in a checkpoint (enough to rebuild the nets)."""
        start, stages = size_plan(image_size)
        arch = {"kind": self.name, "image_size": image_size, "channels": channels,
                "num_classes": num_classes, "start_size": start, "stages": stages}
        for key, default in self.arch_defaults.items():
            value = options.get(key)
            arch[key] = default if value is None else value
        return arch

    def build(self, arch: dict) -> tuple[nn.Module, nn.Module]:
        """Fresh generator and discriminator, DCGAN-initialised, from an ``arch`` dict."""
        k, c, s = arch["num_classes"], arch["channels"], arch["image_size"]
        if self.name == "acgan":
            g = AcganGenerator(k, c, s, noise_dim=arch["noise_dim"], embed_dim=arch["embed_dim"],
                               width=arch["g_width"])
            d = AcganDiscriminator(k, c, s, width=arch["d_width"], dropout=arch["dropout"],
                                   twin_classifier=bool(arch.get("twin_classifier")))
        else:
            cond = k if self.conditional else 0
            g = DcganGenerator(c, s, noise_dim=arch["noise_dim"], num_classes=cond,
                               width=arch["g_width"])
            d = DcganDiscriminator(c, s, num_classes=cond, width=arch["d_width"],
                                   projection=arch.get("conditioning") == "projection")
        init_weights(g)
        init_weights(d)
        if arch.get("spectral_norm"):          # checkpoints from before recipes: absent = off
            spectrally_normalise(d)
        return g, d


GAN_KINDS: dict[str, GanKind] = {
    "acgan": GanKind(
        "acgan", "AC-GAN of CXR-ACGAN: label embedding + noise, class head on the discriminator",
        conditional=True, label_input_to_d=False, aux_classifier=True,
        arch_defaults={"noise_dim": 100, "embed_dim": 50, "g_width": 128, "d_width": 64,
                       "dropout": 0.5, "spectral_norm": False, "twin_classifier": False},
        train_defaults={"epochs": 388, "label_smoothing": 0.1}),
    "cgan": GanKind(
        "cgan", "conditional DCGAN: one-hot label joined to the noise and to the image",
        conditional=True, label_input_to_d=True, aux_classifier=False,
        arch_defaults={"noise_dim": 100, "g_width": 64, "d_width": 64, "spectral_norm": False,
                       "conditioning": "concat"},
        train_defaults={"epochs": 100, "label_smoothing": 0.0}),
    "dcgan": GanKind(
        "dcgan", "DCGAN: the cGAN networks without labels",
        conditional=False, label_input_to_d=False, aux_classifier=False,
        arch_defaults={"noise_dim": 100, "g_width": 64, "d_width": 64, "spectral_norm": False},
        train_defaults={"epochs": 100, "label_smoothing": 0.0}),
}


def gan_kind(name: str) -> GanKind:
    try:
        return GAN_KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown GAN kind {name!r}; choose one of "
                          f"{', '.join(GAN_KINDS)}.") from None
