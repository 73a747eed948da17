"""Bit flips in a checkpoint's pickle header: every one must end as a CheckpointError (or load
exactly what was saved, when the flip is harmless), never as another exception.

    python bench/checkpoint_fuzz.py [--flips 1500] [--seed 1]

Trains a tiny cGAN for one step on a synthetic image folder (in a temporary folder), flips one
random bit of its ``data.pkl`` record per trial and loads the file with
``medsyn.generators.load_checkpoint``. Prints how each trial ended.
"""

from __future__ import annotations

import argparse
import collections
import struct
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import torch
    from PIL import Image

    from medsyn.errors import CheckpointError
    from medsyn.generators import load_checkpoint, train

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        rng = np.random.default_rng(0)
        for name in ("a", "b"):
            (root / name).mkdir(parents=True)
            for i in range(16):
                Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(
                    root / name / f"{i}.png")
        run = train("cgan", dataset=f"folder:{root}", out=str(Path(tmp) / "run"), epochs=1,
                    max_steps=1, image_size=28, batch_size=8, g_width=4, d_width=4,
                    noise_dim=8, device="cpu", quiet=True)
        blob = (run / "last.pt").read_bytes()
        with zipfile.ZipFile(run / "last.pt") as z:
            info = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
        name_len, extra_len = struct.unpack("<HH", blob[info.header_offset + 26:
                                                        info.header_offset + 30])
        start = info.header_offset + 30 + name_len + extra_len
        flips = np.random.default_rng(args.seed)
        outcomes: collections.Counter = collections.Counter()
        damaged_path = Path(tmp) / "flipped.pt"
        began = time.perf_counter()
        for _ in range(args.flips):
            damaged = bytearray(blob)
            damaged[start + int(flips.integers(info.file_size))] ^= 1 << int(flips.integers(8))
            damaged_path.write_bytes(bytes(damaged))
            try:
                load_checkpoint(damaged_path)
                outcomes["loaded (harmless flip, digest holds)"] += 1
            except CheckpointError:
                outcomes["CheckpointError"] += 1
            except Exception as exc:  # noqa: BLE001 - what this bench counts
                outcomes[f"{type(exc).__name__} (traceback)"] += 1
    print(f"{args.flips} flips in the {info.file_size}-byte pickle of a tiny cGAN checkpoint "
          f"({time.perf_counter() - began:.1f} s):")
    for outcome, count in outcomes.most_common():
        print(f"  {count:5d}  {outcome}")


if __name__ == "__main__":
    main()
