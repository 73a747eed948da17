"""Scoring: a set of synthetic images against real splits, with every chosen metric family
in every feature space.

- ``evaluate.py``: :func:`~medsyn.evaluators.scoring.evaluate.evaluate` (images + real splits
  + :class:`~medsyn.evaluators.metrics.EvalOptions` -> the results dict and results folder);
- ``spaces.py``: feature spaces built by name with the settings each declares in the feature
  registry (``features/registry.py``), and :class:`FeatureSpaces`, which builds them once for
  the several inputs of one command.

Where the images come from (a checkpoint, a folder) is :mod:`medsyn.evaluators.pipeline`'s
concern; super-resolution checkpoints (:mod:`medsyn.evaluators.sr`) use this scoring too.
"""
