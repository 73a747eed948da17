"""Speed of `medsyn.evaluators.evaluate` against torch-fidelity's own calculate_metrics.

Same images, same process, interleaved repeats:

  tf     torch_fidelity.calculate_metrics(fid=True, kid=True) on the two image sets
         (its defaults: DataLoader workers, no cache)
  cold   medsyn evaluate(metrics=fid,kid) with an empty feature cache (includes building the
         Inception network from its weights file, and 95 % bootstrap intervals with
         --bootstrap resamples)
  warm   the same with the real set's features cached (a second fake set / checkpoint)

plus the bootstrap alone on the extracted features. Fakes are cxr3 val images, reals cxr3 test
images (112 px), n of each. Prints one JSON line per repeat and the medians.

    python bench/eval_speed.py --n 150 --repeats 3

With ``--bootstrap-n N`` it only times the bootstrap (FID, KID, precision/recall/density/
coverage) on random 2048-d features of N fakes and N reals (the cost depends on the shapes
only), e.g. N = 2808, the size of cxr3's training split:

    python bench/eval_speed.py --bootstrap-n 2808 --repeats 3

With ``--chunks 8,16,32,64`` it only times the CPU Inception forward (preprocessing included)
on 192 cxr3 val images at each number of images per forward pass (``inception_fast.CHUNK``):

    python bench/eval_speed.py --chunks 8,16,32,64 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


class _Uint8Set(torch.utils.data.Dataset):
    """What torch-fidelity expects from a Dataset input: uint8 [3, H, W] tensors."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i].expand(3, -1, -1).contiguous()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=150, help="images per set")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bootstrap", type=int, default=50)
    ap.add_argument("--image-size", type=int, default=112)
    ap.add_argument("--json", type=Path, help="append one JSON line per repeat here")
    ap.add_argument("--bootstrap-n", type=int, help="only time the bootstrap at this n")
    ap.add_argument("--chunks", help="only time the CPU Inception forward at these chunk sizes")
    args = ap.parse_args()
    if args.bootstrap_n:
        return bootstrap_only(args)
    if args.chunks:
        return chunks_only(args)

    import torch_fidelity

    import medsyn.evaluators as ev
    from medsyn.data import ImageDataset, load_dataset
    from medsyn.evaluators.inputs import stratified_subset
    from medsyn.evaluators.metrics import stats

    weights = os.environ.get("MEDSYN_INCEPTION_WEIGHTS")
    val = stratified_subset(load_dataset("cxr3", "val", image_size=args.image_size), args.n, 0)
    test = stratified_subset(load_dataset("cxr3", "test", image_size=args.image_size), args.n, 0)
    fake, real = val.images, test.images
    n = len(fake)
    subset = min(1000, n)
    extractor = ev.get_extractor("inception", device="cpu")
    rows = []
    for rep in range(args.repeats):
        row = {"repeat": rep, "n": n, "bootstrap": args.bootstrap, "threads":
               torch.get_num_threads(), "cpus": os.cpu_count()}
        t0 = time.perf_counter()
        tf = torch_fidelity.calculate_metrics(
            input1=_Uint8Set(fake), input2=_Uint8Set(real), fid=True, kid=True,
            kid_subset_size=subset, cuda=False, cache=False, verbose=False, rng_seed=0,
            feature_extractor_weights_path=weights)
        row["tf_s"] = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as cache:
            os.environ["MEDSYN_CACHE_DIR"] = cache
            ref = ImageDataset("cxr3", "test", real, test.labels, list(test.class_names))
            # by name, as the CLI does: building the network (and checking its weights) is
            # inside the timed region, as calculate_metrics' own network load is above
            t0 = time.perf_counter()
            cold = ev.evaluate(fake, None, reference=ref, extractor="inception",
                               metrics=["fid", "kid"], n_bootstrap=args.bootstrap, seed=0)
            row["cold_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            warm = ev.evaluate(fake, None, reference=ref, extractor="inception",
                               metrics=["fid", "kid"], n_bootstrap=args.bootstrap, seed=0)
            row["warm_s"] = time.perf_counter() - t0
            assert warm["provenance"]["timings"]["real_features_cached"]
            feats_real = ev.dataset_features(ref, extractor).features
        row["medsyn_timings_cold"] = cold["provenance"]["timings"]
        row["fid_medsyn"] = cold["metrics"]["fid"]["value"]
        row["fid_tf"] = tf["frechet_inception_distance"]
        row["kid_medsyn"] = cold["metrics"]["kid"]["value"]
        row["kid_tf"] = tf["kernel_inception_distance_mean"]
        row["cold_over_tf"] = row["cold_s"] / row["tf_s"]
        row["cold_over_warm"] = row["cold_s"] / row["warm_s"]
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")
        rows.append(row)
    med = {k: statistics.median(r[k] for r in rows)
           for k in ("tf_s", "cold_s", "warm_s", "cold_over_tf", "cold_over_warm")}
    # the bootstrap alone, on the features already extracted (never re-extracted)
    feats_fake = ev.extract_features(extractor, fake).features
    boot = {"fid": [], "kid": []}
    with threadpool_limits(limits=1):
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            stats.fid_resamples(feats_fake, feats_real, args.bootstrap, np.random.default_rng(0))
            boot["fid"].append(time.perf_counter() - t0)
            x = torch.from_numpy(feats_fake).double()
            y = torch.from_numpy(feats_real).double()
            t0 = time.perf_counter()
            k = [stats.poly_kernel(a @ b.T, x.shape[1]) for a, b in ((x, x), (y, y), (x, y))]
            stats.kid_resamples(*k, args.bootstrap, np.random.default_rng(0))
            boot["kid"].append(time.perf_counter() - t0)
    med["fid_bootstrap_s"] = statistics.median(boot["fid"])
    med["kid_bootstrap_s"] = statistics.median(boot["kid"])
    print(json.dumps({"median": med, "n": n, "repeats": len(rows),
                      "bootstrap_resamples": args.bootstrap}))


def chunks_only(args):
    import medsyn.evaluators as ev
    from medsyn.data import load_dataset
    from medsyn.evaluators.features import inception_fast

    sizes = [int(c) for c in args.chunks.split(",")]
    images = load_dataset("cxr3", "val", image_size=args.image_size).images[:192]
    extractor = ev.get_extractor("inception", device="cpu")
    extractor.extract(images[:2])                      # first-call set-up outside the timing
    rates = {c: [] for c in sizes}
    for _ in range(args.repeats):
        for c in sizes:                                # interleaved: drift hits every size
            inception_fast.CHUNK = c
            t0 = time.perf_counter()
            extractor.extract(images)
            rates[c].append(len(images) / (time.perf_counter() - t0))
        print(json.dumps({c: round(r[-1], 2) for c, r in rates.items()}), flush=True)
    print(json.dumps({"images": len(images), "threads": torch.get_num_threads(),
                      "repeats": args.repeats,
                      "median_img_per_s": {c: statistics.median(r) for c, r in rates.items()}}))


def bootstrap_only(args):
    from medsyn.evaluators.metrics import stats

    n, d = args.bootstrap_n, 2048
    rng = np.random.default_rng(0)
    fake = rng.standard_normal((n, d)).astype(np.float32)
    real = (rng.standard_normal((n, d)) + 0.05).astype(np.float32)
    times = {"fid": [], "kid": [], "prdc": []}
    with threadpool_limits(limits=1):        # as evaluate() runs its metric phase
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            stats.fid_resamples(fake, real, args.bootstrap, np.random.default_rng(1))
            times["fid"].append(time.perf_counter() - t0)
            x, y = torch.from_numpy(fake).double(), torch.from_numpy(real).double()
            t0 = time.perf_counter()
            k = [stats.poly_kernel(a @ b.T, d) for a, b in ((x, x), (y, y), (x, y))]
            stats.kid_resamples(*k, args.bootstrap, np.random.default_rng(1))
            times["kid"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            stats.prdc(real, fake, 5, args.bootstrap, np.random.default_rng(1))
            times["prdc"].append(time.perf_counter() - t0)
            print(json.dumps({k: v[-1] for k, v in times.items()}), flush=True)
    print(json.dumps({"n": n, "dim": d, "resamples": args.bootstrap, "repeats": args.repeats,
                      "median_s": {k: statistics.median(v) for k, v in times.items()}}))


if __name__ == "__main__":
    main()
