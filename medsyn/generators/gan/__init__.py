"""The image GAN family: ``acgan``, ``cgan``, ``dcgan`` (docs/training.md).

    config.py      TrainConfig: the options a GAN run adds to the shared ones (torch-free)
    kinds.py       what distinguishes the kinds, their defaults, how their networks are built
    nets.py        generator and discriminator networks, the size rule
    recipes.py     named training recipes (stable, cxr-acgan) -> option values (torch-free)
    step.py        one training step (D then G) and the collapse detector
    training.py    train(): data -> run folder
    checkpoint.py  GanCheckpoint (what a checkpoint loads as), generate() from noise
    commands.py    ``medsyn train acgan|cgan|dcgan``

Nothing here imports :mod:`medsyn.generators.sr`, and nothing there imports this package
(an import-linter contract checks it).
"""
