"""Training throughput (images/s) of the utility protocol's classifier for each stem stride.

    python bench/classifier_throughput.py --size 28 --channels 1 --classes 2

Times optimizer steps of timm's resnet18 as medsyn builds it
(medsyn.evaluators.networks.classifier.build_classifier), in fp32 and under bf16 autocast, on
random uint8 batches: the median step time of --steps steps after --warmup warm-up steps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medsyn.evaluators.networks.classifier import (  # noqa: E402
    Recipe,
    _autocast,
    build_classifier,
    to_input,
)


def images_per_second(stride, precision, args) -> float:
    model = build_classifier(Recipe(stem_stride=stride), args.channels, args.classes, args.size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.batch, args.channels, args.size, args.size), generator=g,
                      dtype=torch.uint8)
    y = torch.randint(0, args.classes, (args.batch,), generator=g)
    model.train()
    times = []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        with _autocast(torch.device("cpu"), Recipe(precision=precision)):
            loss = torch.nn.functional.cross_entropy(model(to_input(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    return args.batch / statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--strides", default="4,2,1")
    ap.add_argument("--precisions", default="fp32,bf16")
    args = ap.parse_args(argv)
    print(f"resnet18, {args.size}px, {args.channels} channel(s), batch {args.batch}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")
    for stride in (int(s) for s in args.strides.split(",")):
        for precision in args.precisions.split(","):
            rate = images_per_second(stride, precision, args)
            print(f"stem stride {stride}, {precision}: {rate:8.1f} training images/s")


if __name__ == "__main__":
    main()
