"""The image-to-image translation family: ``pix2pix`` (Isola et al. 2017, paired) and
``cyclegan`` (Zhu et al. 2017, unpaired); docs/translation.md.

    config.py      TranslationTrainConfig: the options a translation run adds (torch-free)
    data.py        pairs built from any dataset (edges, lowres, noise), folders of A/ B/ pairs,
                   unpaired domains DATASET[:SPLIT][:CLASS]
    networks.py    U-Net, ResNet generator, PatchGAN, translate_uint8()
    losses.py      LSGAN, L1, cycle and identity losses, the image pool
    step.py        one training step of pix2pix and of CycleGAN
    training.py    train_translation(): data -> run folder
    checkpoint.py  TranslationCheckpoint (what a checkpoint loads as): translate()
    apply.py       ``medsyn translate``: translate image files
    commands.py    ``medsyn train pix2pix|cyclegan``, ``medsyn translate``

Nothing here imports :mod:`medsyn.generators.gan` or :mod:`medsyn.generators.sr`, and neither
imports this package (an import-linter contract checks it).
"""
