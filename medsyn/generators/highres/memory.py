"""Peak memory of MEGAN's tile-by-tile generation and patch training against a whole-image
generator of the same output size.

    from medsyn.generators.highres.memory import (compare_generation_memory,
                                                  compare_training_memory)
    compare_generation_memory(arch, device="cuda", n=4)
    compare_training_memory(arch, device="cuda", n=16)

**What is measured.** Generating ``n`` images with fresh (untrained) networks of ``arch``
(memory does not depend on the weights), in inference mode (``torch.no_grad``):

- ``megan``: :func:`~medsyn.generators.highres.megan_sampling.generate_megan` as sampling runs
  it: the low-resolution U-Net, then each scale tile by tile, ``tile_batch`` tiles at a time,
  with the default context margin and the whole-scale statistics gathered tile by tile;
- ``whole_image``: the same networks with the tile as large as the scale (each patch
  generator applied to its whole scale at once): the whole-image generator MEGAN replaces.

and, for training (:func:`compare_training_memory`), one step (forward and backward of G and
D, adversarial + L1 loss) of the highest scale's patch GAN on ``n`` patches against the same
networks on ``n`` whole images.

**How.** On a GPU: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus
the memory allocated before (the networks' weights), i.e. the peak of the activations and
images on the GPU. On the CPU (Linux only): the peak resident set size of the process
(``VmHWM`` of ``/proc/self/status``, reset to the current size by writing ``5`` to
``/proc/self/clear_refs`` before the run) minus that reset value, floored at 0. The CPU figure
counts everything the process touches (Canny's NumPy arrays included) and allocator reuse can
lower it, so each CPU measurement runs in a fresh process (one-time allocations such as
thread pools are charged to both alike).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable
from pathlib import Path

import torch

from medsyn.errors import MedsynError

CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise MedsynError(f"{STATUS} has no {field} line; CPU peak memory needs Linux.")
    return int(match.group(1))


def peak_memory(fn: Callable[[], object], device: torch.device | str) -> dict:
    """Run ``fn()`` and return ``{"peak_bytes", "method"}``: the peak memory it added on
    ``device`` (see the module docstring for the method of each device)."""
    device = torch.device(device)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return {"peak_bytes": int(torch.cuda.max_memory_allocated(device) - before),
                "method": "torch.cuda.max_memory_allocated - memory_allocated before"}
    if not CLEAR_REFS.exists():
        raise MedsynError("CPU peak memory is read from /proc/self (Linux); this system has "
                          "none. Measure on a GPU (--device cuda) instead.")
    try:
        CLEAR_REFS.write_text("5")
    except OSError as exc:
        raise MedsynError(f"cannot reset the peak resident size ({CLEAR_REFS}: {exc}); "
                          "measure on a GPU instead.") from None
    before = _status_kib("VmHWM")      # the resident size at the reset
    fn()
    peak = max(_status_kib("VmHWM"), _status_kib("VmRSS"))
    # the kernel updates VmHWM lazily: pages reclaimed under memory pressure lower the resident
    # size without raising it first, so a run that allocates almost nothing can read a few pages
    # below its start (-64 KiB seen on the loaded test machine); that is a peak of 0
    return {"peak_bytes": int(max(0, peak - before) * 1024),
            "method": "peak RSS (VmHWM after clear_refs=5) - VmHWM at the reset, floored at 0"}


def _generation_peak(arch: dict, device: str, n: int, tile_batch: int, seed: int,
                     patch: int | None, tile_context: int) -> dict:
    """Peak memory of one generation of ``n`` images with tiles of ``patch`` (None: the
    architecture's patch size) and a context margin of ``tile_context`` pixels."""
    from medsyn.generators.highres.megan_nets import build_megan
    from medsyn.generators.highres.megan_sampling import generate_megan

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    nets = build_megan(arch)
    gens = [nets[f"generator_{s}"].to(device).eval() for s in range(len(arch["scales"]))]
    low = arch["scales"][0]
    edges = (torch.rand(n, 1, low, low, generator=torch.Generator().manual_seed(seed))
             > 0.9).to(torch.uint8) * 255
    labels = torch.zeros(n, dtype=torch.long) if arch["num_classes"] > 1 else None

    def go():
        rng = torch.Generator().manual_seed(seed)
        return generate_megan(gens, arch, edges, labels, rng, torch.device(device),
                              tile_batch, patch, tile_context=tile_context)
    return peak_memory(go, device)


def _training_peak(arch: dict, device: str, n: int, seed: int, size: int) -> dict:
    """Peak memory of one training step (forward and backward of G and D, adversarial + L1
    loss) of the highest scale's networks on ``n`` inputs of ``size`` pixels."""
    from medsyn.generators.highres.megan_nets import build_megan

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    top = len(arch["scales"]) - 1
    nets = build_megan(arch)
    g = nets[f"generator_{top}"].to(device)
    d = nets[f"discriminator_{top}"].to(device)
    c, k = arch["channels"], arch["num_classes"]
    cond = torch.randn(n, c + 1 + (k if k > 1 else 0), size, size, device=device)
    noise = torch.randn(n, 1, size, size, device=device)
    real = torch.rand(n, c, size, size, device=device) * 2 - 1

    def step():
        fake = g(torch.cat([cond[:, :c + 1], noise, cond[:, c + 1:]], dim=1))
        loss = d(torch.cat([cond, fake], dim=1)).mean() + (fake - real).abs().mean()
        loss.backward()
    return peak_memory(step, device)


def _in_fresh_processes(fn, jobs: list[tuple], device: str) -> list[dict]:
    if device.startswith("cuda"):
        return [fn(*job) for job in jobs]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        return [pool.apply(fn, job) for job in jobs]


def compare_training_memory(arch: dict, device: torch.device | str = "cpu", n: int = 16,
                            seed: int = 0) -> dict:
    """Peak memory of one training step of the highest scale's patch GAN on ``n`` patches
    (MEGAN) against the same networks on ``n`` whole images (the whole-image GAN)."""
    device = str(torch.device(device))
    megan, whole = _in_fresh_processes(_training_peak, [
        (arch, device, n, seed, arch["patch_size"]), (arch, device, n, seed, arch["image_size"])],
        device)
    return {"image_size": arch["image_size"], "patch_size": arch["patch_size"], "n": n,
            "device": device, "method": megan["method"],
            "megan_peak_bytes": megan["peak_bytes"], "whole_image_peak_bytes": whole["peak_bytes"],
            "ratio": whole["peak_bytes"] / max(megan["peak_bytes"], 1)}


def compare_generation_memory(arch: dict, device: torch.device | str = "cpu", n: int = 1,
                              tile_batch: int = 16, seed: int = 0,
                              tile_context: int | None = None) -> dict:
    """Peak memory of generating ``n`` images the MEGAN way (tiles with a context margin of
    ``tile_context`` pixels, default sampling's; 0: plain tiles) and as whole images (no tiles,
    so no margin). On the CPU each measurement runs in a fresh process (``multiprocessing``
    spawn), so neither inherits memory the other freed; on a GPU both run here (the
    allocator's peak is exact)."""
    from medsyn.generators.highres.megan_sampling import TILE_CONTEXT

    device = str(torch.device(device))
    tile_context = TILE_CONTEXT if tile_context is None else tile_context
    jobs = [(arch, device, n, tile_batch, seed, None, tile_context),
            (arch, device, n, tile_batch, seed, arch["image_size"], 0)]
    megan, whole = _in_fresh_processes(_generation_peak, jobs, device)
    return {"image_size": arch["image_size"], "scales": list(arch["scales"]),
            "patch_size": arch["patch_size"], "n": n, "tile_batch": tile_batch,
            "tile_context": tile_context, "device": device, "method": megan["method"],
            "megan_peak_bytes": megan["peak_bytes"], "whole_image_peak_bytes": whole["peak_bytes"],
            "ratio": whole["peak_bytes"] / max(megan["peak_bytes"], 1)}
