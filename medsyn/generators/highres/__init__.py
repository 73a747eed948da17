"""The high-resolution family: ``pggan`` and ``megan`` (docs/highres.md).

    config.py          HighResTrainConfig, the growth plan and schedule, MEGAN's scale plan
                       (torch-free)
    pggan_nets.py      PGGAN's layers (equalised learning rate, pixel norm, minibatch stddev,
                       fade-in) and networks (every level built from the start)
    pggan_training.py  one PGGAN step at its growth position; train_pggan()
    megan_nets.py      MEGAN's U-Net, patch generator and patch discriminator
    patches.py         MEGAN's scales, patch crops, the assembly of tiles with context and
                       whole-scale instance-norm statistics (the seam rule)
    megan_training.py  one MEGAN step over every scale; train_megan()
    megan_sampling.py  MeganCheckpoint: the whole image, scale by scale, tile by tile
    runner.py          what both trainers share (networks, EMA, loop, checkpoints, grids)
    checkpoint.py      PgganCheckpoint and what both checkpoints share
    memory.py          peak memory of MEGAN against a whole-image generator
    commands.py        ``medsyn train pggan|megan``

Nothing here imports :mod:`medsyn.generators.gan` or :mod:`medsyn.generators.sr`, and they do
not import it (an import-linter contract checks it).
"""
