"""What makes an adversarial trainer stable on small datasets, one part per module, shared by
any GAN-like family (the image GANs' ``--recipe stable`` uses all three; see
:mod:`medsyn.generators.gan.recipes`):

- :mod:`.losses`: the hinge loss beside BCE (``--loss``);
- :mod:`.augment`: :class:`DiffAugment` -- differentiable translation, cutout, brightness and
  contrast applied to everything the discriminator sees (``--augment``);
- :mod:`.ema`: :class:`GeneratorEMA` -- the moving average of the generator's weights that is
  saved, sampled and evaluated (``--ema-decay``).
"""
