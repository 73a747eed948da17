"""Downstream utility (``--metrics utility``): does synthetic data help a diagnostic classifier?

- ``protocol.py``: the train-on-synthetic protocol (TRTR, TSTR, TRTR+S, class fidelity over
  seeds; :func:`~medsyn.evaluators.metrics.utility.protocol.evaluate_utility`), on the
  classifiers of :mod:`medsyn.evaluators.networks.classifier`;
- ``family.py``: the protocol as a metric family of :func:`medsyn.evaluators.evaluate`.

docs/utility.md explains the arms and how to read them.
"""
