"""The super-resolution family: ``srresnet``, ``srgan`` (Ledig et al. 2017;
docs/super_resolution.md).

    config.py      SRTrainConfig: the options an SR run adds to the shared ones, the phase /
                   learning-rate schedule (torch-free)
    data.py        LR/HR pairs from any dataset (MATLAB bicubic degradation)
    networks.py    SRResNet, the SRGAN discriminator, upscale_uint8()
    losses.py      adversarial losses, the VGG19 content loss
    step.py        one training step (MSE phase, adversarial phase)
    training.py    train_sr(): data -> run folder
    checkpoint.py  SRCheckpoint (what a checkpoint loads as)
    apply.py       ``medsyn sr``: upscale image files
    commands.py    ``medsyn train srresnet|srgan``, ``medsyn sr``

Nothing here imports :mod:`medsyn.generators.gan`, and nothing there imports this package
(an import-linter contract checks it).
"""
