"""Cold vs warm load of a folder dataset: decoding every PNG vs the on-disk array cache.

    python bench/data_cache.py --dataset cxr3 --split train [--image-size 112]

Cold uses an empty cache folder (every PNG decoded, the cache written); warm loads the same split
again in the same process (checksums of the source files are still computed, then the arrays are
read from the cache). The operating system's page cache is warm in both, as it is in daily use.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cxr3")
    parser.add_argument("--split", default="train")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from medsyn.data import load_dataset

    cold, warm = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            os.environ["MEDSYN_CACHE_DIR"] = cache
            t0 = time.perf_counter()
            ds = load_dataset(args.dataset, args.split, image_size=args.image_size)
            cold.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ds2 = load_dataset(args.dataset, args.split, image_size=args.image_size)
            warm.append(time.perf_counter() - t0)
            assert ds.fingerprint == ds2.fingerprint
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"{args.dataset}/{args.split} n={len(ds)} size={ds.image_size} "
          f"cold {c:.2f} s  warm {w:.3f} s  speed-up {c / w:.1f}x  (median of {args.repeats})")


if __name__ == "__main__":
    main()
