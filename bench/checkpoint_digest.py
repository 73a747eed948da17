"""Cost of the checkpoint digest: ``payload_digest`` over the tensors of a default 112 px AC-GAN
checkpoint (generator + discriminator weights and both Adam moments, about 290 MB).

    python bench/checkpoint_digest.py [--repeats 3]

The digest is computed once when a checkpoint is saved and once each time it is read.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from medsyn.generators.checkpoint import payload_digest
    from medsyn.generators.gan.kinds import GAN_KINDS

    spec = GAN_KINDS["acgan"]
    gen, disc = spec.build(spec.arch({}, 3, 1, 112))
    weights = {"generator": gen.state_dict(), "discriminator": disc.state_dict()}

    def moment():
        return {k: {n: torch.randn_like(t) if t.is_floating_point() else t.clone()
                    for n, t in v.items()} for k, v in weights.items()}

    payload = {"models": weights, "exp_avg": moment(), "exp_avg_sq": moment()}
    size = sum(t.numel() * t.element_size() for part in payload.values()
               for sd in part.values() for t in sd.values())
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        payload_digest(payload)
        times.append(time.perf_counter() - t0)
    print(f"{size / 1e6:.0f} MB of tensors: payload_digest median {statistics.median(times):.2f} s "
          f"over {args.repeats} (min {min(times):.2f} s)")


if __name__ == "__main__":
    main()
