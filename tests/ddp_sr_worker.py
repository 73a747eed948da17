"""Run by test_sr_train.py under torchrun (2 CPU processes, gloo): train a tiny SRGAN through
both phases with DistributedDataParallel, then check on every rank that the weights are
identical everywhere.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_sr_worker.py OUT
"""

import gc
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from medsyn.generators.engine import unwrap
from medsyn.generators.sr import training as sr_training

captured = {}


class RecordingStep(sr_training.SRStep):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        captured["step"] = self


def flat(module):
    return torch.cat([p.detach().flatten() for p in unwrap(module).parameters()])


def main(out: str):
    sr_training.SRStep = RecordingStep
    dist.init_process_group("gloo")         # kept after training so the weights can be compared
    # 546 images, 32 per process and step: 8 MSE steps (epoch 1), then 2 adversarial steps
    sr_training.train_sr("srgan", out=out, dataset="breastmnist", hr_size=32, scale=4,
                         n_blocks=1, features=8, d_features=8, batch_size=64, patch_size=16,
                         epochs=2, pretrain_epochs=1, max_steps=10, device="cpu", quiet=True)
    step = captured["step"]
    result = {"world_size": dist.get_world_size()}
    for name, module in (("generator", step.g), ("discriminator", step.d)):
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
