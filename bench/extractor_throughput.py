"""Feature-extraction throughput (images/s) of every feature space, on real images.

    python bench/extractor_throughput.py --dataset pneumoniamnist --n 512
    python bench/extractor_throughput.py --dataset cxr3 --size 64 --n 512 --spaces wavelet,radiomics

Extracts --n images of the dataset's test split with each space (after building it: the
fitted spaces are fitted / trained on the training split first, or read from the cache; that
cost is reported separately as setup_s) and prints, per space, the median wall time of
--repeats passes, images/s, seconds per 1,000 images and the process CPU seconds per 1,000
images (a figure less sensitive to other jobs on the machine). The 'ssl' space uses
--ssl-recipe (default quick); 'inception' needs MEDSYN_INCEPTION_WEIGHTS (or a download).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medsyn.data import load_dataset  # noqa: E402
from medsyn.evaluators import inputs  # noqa: E402
from medsyn.evaluators.features import (  # noqa: E402
    extract_features,
    get_extractor,
    is_fitted,
    parse_extractor_names,
)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="pneumoniamnist")
    ap.add_argument("--size", type=int, default=None, help="image size (default: stored)")
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--spaces", default="wavelet,radiomics,ssl,inception")
    ap.add_argument("--ssl-recipe", default="quick")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    train = load_dataset(args.dataset, "train", image_size=args.size)
    test = inputs.stratified_subset(load_dataset(args.dataset, "test", image_size=args.size),
                                    args.n, 0)
    rows = []
    for name in parse_extractor_names(args.spaces):
        t0 = time.perf_counter()
        opts = {"train": train, "ssl_recipe": args.ssl_recipe} if is_fitted(name) else {}
        ext = get_extractor(name, device=args.device, **opts)
        setup = time.perf_counter() - t0
        walls, cpus = [], []
        for _ in range(args.repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            extract_features(ext, test.images, args.batch_size, desc=name)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        rows.append({"space": name, "extractor": ext.name, "dim": ext.feature_dim,
                     "n": len(test), "size": list(test.image_size), "setup_s": round(setup, 2),
                     "images_per_s": round(len(test) / wall, 1),
                     "s_per_1000": round(1000 * wall / len(test), 2),
                     "cpu_s_per_1000": round(1000 * cpu / len(test), 2),
                     "threads": torch.get_num_threads()})
        print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main()
