"""Run by test_translation_train.py under torchrun (2 CPU processes, gloo): train a tiny
pix2pix with DistributedDataParallel, then check on every rank that the weights are identical
everywhere.

    python -m torch.distributed.run --standalone --nproc_per_node 2 \
        tests/ddp_translation_worker.py OUT [OPTION=JSON ...]

e.g. ``spectral_norm=true ema_decay=0.9`` to train with the stabilisers.
"""

import gc
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from medsyn.generators.engine import unwrap
from medsyn.generators.translation import step as translation_step
from medsyn.generators.translation import training

captured = {}


class RecordingStep(translation_step.Pix2PixStep):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        captured["step"] = self


def flat(module):
    return torch.cat([p.detach().flatten() for p in unwrap(module).parameters()])


def main(out: str, *extra: str):
    options = {k: json.loads(v) for k, v in (arg.split("=", 1) for arg in extra)}
    translation_step.Pix2PixStep = RecordingStep     # training imports it when it starts
    dist.init_process_group("gloo")         # kept after training so the weights can be compared
    training.train_translation("pix2pix", out=out, dataset="breastmnist", image_size=32,
                               condition="edges", features=8, d_features=8, batch_size=16,
                               epochs=1, max_steps=4, device="cpu", quiet=True,
                               **options)
    step = captured["step"]
    result = {"world_size": dist.get_world_size()}
    modules = [("generator", step.g), ("discriminator", step.update.d)]
    if step.ema is not None:
        modules.append(("generator_ema", step.ema.module))
    for name, module in modules:
        mine = flat(module)
        everyone = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(everyone, mine)
        result[f"{name}_identical"] = all(torch.equal(everyone[0], w) for w in everyone)
    if dist.get_rank() == 0:
        (Path(out) / "ddp_check.json").write_text(json.dumps(result))
    # free the DDP modules (and their gloo work) before the group goes away
    del step, module
    captured.clear()
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
