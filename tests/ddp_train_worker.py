"""Run by test_train_run.py under torchrun (2 CPU processes, gloo): train a tiny AC-GAN with
DistributedDataParallel and an EMA generator, then check on every rank that the weights (the
EMA's included) are identical everywhere.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_train_worker.py OUT
"""

import gc
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from medsyn.generators.engine import unwrap
from medsyn.generators.gan import step as gan_step
from medsyn.generators.gan import training

captured = {}


class RecordingStep(gan_step.GanStep):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        captured["step"] = self


def flat(module):
    return torch.cat([p.detach().flatten() for p in unwrap(module).parameters()])


def main(out: str):
    training.GanStep = RecordingStep
    dist.init_process_group("gloo")         # kept after train() so the weights can be compared
    training.train("acgan", out=out, dataset="breastmnist", image_size=28, batch_size=32,
                   g_width=8, d_width=8, noise_dim=16, epochs=1, max_steps=6, device="cpu",
                   ema_decay=0.9, quiet=True)
    step = captured["step"]
    result = {"world_size": dist.get_world_size()}
    for name, module in (("generator", step.g), ("discriminator", step.d),
                         ("generator_ema", step.ema.module)):
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
    main(sys.argv[1])
