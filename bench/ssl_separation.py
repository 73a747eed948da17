"""Does the ssl space separate degraded from real images? FD per SSL recipe.

    python bench/ssl_separation.py '{"quick": "quick"}'
    python bench/ssl_separation.py '{"A": {"name": "A", "epochs": 4, "batch_size": 128,
        "max_images": 1024, "stem_stride": 4, "lr": 0.003}}'

Trains (or reads from the cache) the SimCLR encoder of each recipe on PneumoniaMNIST's real
training split and prints the Fréchet distance, in its space, from 200 validation images to
200 test images, to the same images blurred / with noise, and to 200 test images of one class
(the degradations of tests/test_feature_spaces_real.py), with the encoder's final training
loss and positive-pair accuracy.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_feature_spaces_real import _degraded  # noqa: E402

from medsyn.data import load_dataset  # noqa: E402
from medsyn.evaluators import inputs  # noqa: E402
from medsyn.evaluators.features import extract_features, get_extractor  # noqa: E402
from medsyn.evaluators.metrics.stats import fid_value  # noqa: E402


def main(argv=None):
    recipes = json.loads((argv or sys.argv[1:])[0])
    train = load_dataset("pneumoniamnist", "train")
    val = inputs.stratified_subset(load_dataset("pneumoniamnist", "val"), 200, 0)
    real, degraded = _degraded(load_dataset("pneumoniamnist", "test"), 200)
    for label, recipe in recipes.items():
        t0 = time.perf_counter()
        ext = get_extractor("ssl", train=train, ssl_recipe=recipe, device="cpu")
        ref = extract_features(ext, val.images).features
        fd = {"real": fid_value(extract_features(ext, real).features, ref)}
        fd.update({k: fid_value(extract_features(ext, v).features, ref)
                   for k, v in degraded.items()})
        print(json.dumps({"recipe": label, "training": ext.conventions["training"]["final"],
                          "fd": {k: round(v, 4) for k, v in fd.items()},
                          "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
