"""What every loaded generator checkpoint is, and what it can do: its *task*.

Code downstream (evaluation, sampling, the report) asks a checkpoint for its :class:`Task`
instead of testing kind strings, so a new generator family only declares its task once, where
its kind is registered (:func:`medsyn.generators.checkpoint.register_kind`).

This module imports nothing heavy: the report reads tasks of run folders without torch.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Protocol, runtime_checkable


class Task(str, Enum):
    """What a generator maps from and to."""

    UNCONDITIONAL = "unconditional"        # noise -> image
    CONDITIONAL = "conditional"            # (noise, class) -> image
    SUPER_RESOLUTION = "super-resolution"  # low-resolution image -> high-resolution image
    TRANSLATION = "translation"            # image of domain A -> image of domain B

    @property
    def samples_from_noise(self) -> bool:
        """Can draw new images from noise (``sample``), rather than map given images."""
        return self in (Task.UNCONDITIONAL, Task.CONDITIONAL)

    @property
    def results_kind(self) -> str:
        """The ``kind`` of the results.json an evaluation of such a checkpoint writes."""
        return {Task.SUPER_RESOLUTION: "super-resolution",
                Task.TRANSLATION: "translation"}.get(self, "generation")


_TASKS: dict[str, Task] = {
    "acgan": Task.CONDITIONAL,
    "cgan": Task.CONDITIONAL,
    "dcgan": Task.UNCONDITIONAL,
    "srresnet": Task.SUPER_RESOLUTION,
    "srgan": Task.SUPER_RESOLUTION,
    # one class: unconditional; the loaded checkpoint's .task says which
    "pggan": Task.CONDITIONAL,
    "megan": Task.CONDITIONAL,
    "pix2pix": Task.TRANSLATION,
    "cyclegan": Task.TRANSLATION,
}


def register_task(kind: str, task: Task | str, *, replace: bool = False) -> None:
    """Declare the task of checkpoints of ``kind`` (called by ``register_kind``)."""
    task = Task(task)
    if kind in _TASKS and _TASKS[kind] != task and not replace:
        raise ValueError(f"checkpoint kind {kind!r} already has task {_TASKS[kind].value!r} "
                         "(pass replace=True)")
    _TASKS[kind] = task


def task_of_kind(kind: str | None) -> Task | None:
    """The task of a checkpoint kind, or None for a kind medsyn does not know."""
    return _TASKS.get(str(kind)) if kind is not None else None


def kinds_of_task(task: Task | str) -> tuple[str, ...]:
    task = Task(task)
    return tuple(sorted(k for k, t in _TASKS.items() if t == task))


@runtime_checkable
class GeneratorCheckpoint(Protocol):
    """What ``medsyn.generators.load_checkpoint`` returns, for every family.

    Families add their own operations by task: ``sample`` / ``sample_labels`` /
    ``discriminate`` for noise-to-image generators, ``upscale`` for super-resolution,
    ``translate`` for translation.
    """

    kind: str
    task: Task
    metadata: dict[str, Any]
    channels: int
