"""How an evaluation runs, behind the public functions of :mod:`medsyn.evaluators.api`.

- ``evaluate.py``: images + real splits -> every chosen metric family in every feature space ->
  the results dict (and the results folder);
- ``spaces.py``: feature spaces built by name with the options each space declares in the
  feature registry (``features/registry.py``), shared across the checkpoints of one command;
- ``checkpoint.py``: a generator checkpoint -> its dataset's splits -> samples -> provenance ->
  ``evaluate`` (or the super-resolution evaluation of ``evaluators/sr/``);
- ``folder.py``: a folder or npz of fake images + a ``--real`` spec -> ``evaluate``.

``checkpoint.py`` and ``folder.py`` import torch only inside functions: the CLI imports them, and
``medsyn --help`` must stay light.
"""
