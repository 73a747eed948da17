"""Spectral normalisation of a discriminator (Miyato et al. 2018), shared by the image GANs
(``--spectral-norm``) and the translation PatchGANs."""

from __future__ import annotations

from torch import nn


def spectrally_normalise(discriminator: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every convolution, dense layer and
    embedding of ``discriminator``, in place, and its batch norm layers removed.

    Each weight is divided by an estimate of its largest singular value (one power iteration
    per forward pass in training mode, ``torch.nn.utils.parametrizations.spectral_norm``), which
    bounds the discriminator's Lipschitz constant. Batch norm goes, as in SN-GAN's
    discriminators: it would undo the bound, and on separate real and generated batches it lets
    the discriminator tell them apart by batch statistics. Call it after the initialisation.
    """
    from torch.nn.utils.parametrizations import spectral_norm

    for name, child in list(discriminator.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            setattr(discriminator, name, nn.Identity())
        elif isinstance(child, (nn.Conv2d, nn.Linear, nn.Embedding)):
            spectral_norm(child)
        else:
            spectrally_normalise(child)
    return discriminator
