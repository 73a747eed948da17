"""Does the synthetic set copy its training images? (docs/privacy.md)

- ``memorization.py``: the ``memorization`` family, synthetic images closer to a training
  image than held-out real images are;
- ``family.py``: the opt-in ``privacy`` family, DCR, C_T data-copying and membership inference
  in the feature space and raw pixels, with a verdict and the hook for further tests
  (:func:`~medsyn.evaluators.metrics.privacy.family.register_privacy_test`);
- ``stats.py``: their mathematics on distances and features (no datasets, no I/O);
- ``baseline.py``: which real images the audit compares with (the validation split by
  default, the test split, or a reserved part of the training split);
- ``exchangeability.py``: the check that those images are drawn like the training images
  (permutation tests, no datasets, no I/O).
"""
