"""What makes an adversarial trainer stable on small datasets, one part per module, shared by
any GAN-like family (the image GANs' ``--recipe stable`` uses them all, see
:mod:`medsyn.generators.gan.recipes`; pix2pix and CycleGAN offer spectral norm, DiffAugment,
the EMA generator and a separate D learning rate as options, docs/translation.md):

- :mod:`.losses`: the hinge loss beside BCE (``--loss``);
- :mod:`.spectral`: spectral normalisation of the discriminator (``--spectral-norm``);
- :mod:`.augment`: :class:`DiffAugment` -- differentiable translation, cutout, brightness and
  contrast applied to everything the discriminator sees (``--augment``);
- :mod:`.ema`: :class:`GeneratorEMA` -- the moving average of the generator's weights that is
  saved, sampled and evaluated (``--ema-decay``);
- :mod:`.collapse`: :func:`class_spread`, the spread of a generator's images within a group,
  which the collapse warnings read.
"""
