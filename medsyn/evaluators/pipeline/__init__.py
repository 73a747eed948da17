"""From a checkpoint or a folder of images to results, behind
:func:`medsyn.evaluators.evaluate_checkpoint` and :func:`medsyn.evaluators.evaluate_folder`.

- ``checkpoint.py``: a generator checkpoint -> the real splits of its dataset -> its samples
  -> provenance -> :func:`medsyn.evaluators.scoring.evaluate.evaluate`; a super-resolution
  checkpoint goes to :mod:`medsyn.evaluators.sr` (decided by the checkpoint's Task);
- ``folder.py``: a folder or npz of fake images + a ``DATASET[:SPLIT]`` or folder reference
  -> the same.

Both import torch only inside functions: the CLI imports them, and ``medsyn --help`` must stay
light.
"""
