"""Where networks run: the one device resolver and the one thread policy of medsyn.

Every stage (training, sampling, feature extraction, the classifiers trained on real data)
asks this module, so ``--device`` means the same thing everywhere and the thread counts follow
one rule.
"""

from __future__ import annotations

import logging
import os

import torch

from medsyn.errors import ConfigError

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda")

# torch's thread count as the process started. The metric phase of an evaluation runs with one
# thread (see evaluators/scoring/evaluate.py); networks run inside it (a reference extracted
# lazily, a classifier trained on demand) get this count back.
_STARTUP_THREADS = torch.get_num_threads()

# Up to this image size the GANs are small enough that intra-op threads cost more than they
# give on CPU: bench/train_throughput.py measured the 28 px AC-GAN at 677 img/s with one thread,
# and at 36-52 img/s with the default two on a loaded 2-core machine (OpenMP oversubscription).
SMALL_NET_MAX_SIZE = 32


def resolve_device(spec: str | torch.device | None = "auto",
                   local_rank: int | None = None) -> torch.device:
    """``auto`` (or ``None``): the GPU when PyTorch sees one, else the CPU.

    ``cuda`` / ``cuda:N`` fail clearly without a GPU. Under ``torchrun`` (``local_rank`` given)
    ``auto`` and ``cuda`` mean ``cuda:<local_rank>``.
    """
    if isinstance(spec, torch.device):
        text = str(spec)
    else:
        text = "auto" if spec is None else str(spec).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {spec} was asked for but PyTorch sees no CUDA GPU (torch "
                f"{torch.__version__}, built for CUDA {torch.version.cuda}). Use --device cpu, or "
                "--device auto to pick the GPU only when there is one.")
        if text == "cuda":
            return torch.device("cuda", local_rank if local_rank is not None else
                                torch.cuda.current_device())
        index_text = text.split(":", 1)[1]
        if not index_text.isdigit():
            raise ConfigError(f"--device {spec}: the GPU index must be a number (cuda:0).")
        index = int(index_text)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {spec}: only {torch.cuda.device_count()} GPU(s) visible.")
        return torch.device("cuda", index)
    if text == "mps" and getattr(torch.backends, "mps", None) is not None \
            and torch.backends.mps.is_available():
        return torch.device("mps")
    raise ConfigError(f"--device must be one of {', '.join(DEVICE_CHOICES)} (or cuda:N), "
                      f"got {spec!r}.")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def training_threads(requested: int, image_size: int) -> int:
    """Intra-op threads for CPU training: ``requested`` when > 0 (at most the cores this process
    may use: more gain nothing, and torch crashed with a segmentation fault at
    ``--threads 100000``), else 1 for networks of images up to :data:`SMALL_NET_MAX_SIZE` px and
    every core above."""
    if requested and requested > 0:
        cores = available_cores()
        if requested > cores:
            log.warning("--threads %d is more than the %d CPU core(s) this process may use; "
                        "using %d", requested, cores, cores)
            return cores
        return int(requested)
    if image_size <= SMALL_NET_MAX_SIZE:
        return 1
    return available_cores()


def extraction_threads() -> int:
    """Threads for network work (extraction, classifier training) inside the metric phase."""
    return _STARTUP_THREADS
