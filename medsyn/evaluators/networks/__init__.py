"""Networks trained on the real data of the evaluated dataset, below the feature spaces that
use them (``features/classifier.py``, ``features/ssl.py``) and the utility protocol.

- ``recipes.py``: how a diagnostic classifier is trained (named recipes) and how a recipe is
  resolved from a name, an object or a dict (shared with the SSL recipes);
- ``classifier.py``: the timm classifier adapted to the image size, its training with epoch
  selection, its scores, and ``real_classifier`` (trained once per dataset, then cached);
- ``ssl.py``: the SimCLR encoder of the ``ssl`` space and ``real_ssl_encoder`` (cached);
- ``netcache.py``: the digest-verified on-disk cache of these networks
  (``$MEDSYN_CACHE_DIR/classifiers`` and ``$MEDSYN_CACHE_DIR/ssl``).

Nothing here imports the feature spaces, the metrics or the scoring.
"""
