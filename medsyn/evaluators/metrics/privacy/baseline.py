"""Which real images the privacy audit compares the synthetic set with (docs/privacy.md).

The baseline must be drawn like the generator's training images, and unseen by it: otherwise a
generator that copies nothing but fits its training distribution looks "closer to train than
new patients" whenever the held-out images come from elsewhere. ``privacy_baseline``:

- ``auto`` (default): the validation split when the evaluation has one (MedMNIST's and cxr3's
  val splits are drawn from the training pool; a manifest without split folders splits
  patients at random), else the held-out (test) set;
- ``val``: the validation split;
- ``test``: the held-out set given as ``heldout`` (the CLI's test split), even when shifted;
  the validation split, when there is one, then serves as the control;
- ``reserve`` / ``reserve:FRACTION``: a seeded random part of the training split (whole
  patients when known, 10 % unless FRACTION), which the audit then leaves out of the training
  set. Only meaningful when the generator was trained without it
  (:func:`medsyn.data.subsets.reserved_rows` gives the rows).

Real images that are pixel-identical to a synthetic image are left out of the baseline and the
control: a set cannot serve as "unseen" for images it contains.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from medsyn.data.subsets import reserved_rows
from medsyn.errors import ConfigError
from medsyn.evaluators.metrics.context import parse_privacy_baseline as parse_baseline


def image_digests(images: torch.Tensor) -> list[bytes]:
    """One digest per uint8 image of its exact pixels (for pixel-identical matches)."""
    arr = images.cpu().numpy()
    return [hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).digest()
            for a in arr]


def identical_to(images: torch.Tensor, others: torch.Tensor) -> np.ndarray:
    """Boolean mask of ``images`` that are pixel-identical to one of ``others``."""
    if images.shape[1:] != others.shape[1:]:
        return np.zeros(len(images), bool)
    seen = set(image_digests(others))
    return np.array([d in seen for d in image_digests(images)], dtype=bool)


@dataclass
class RealSet:
    """Rows of one of the evaluation's real datasets (``source``: ``"train"``, ``"val"`` or
    ``"heldout"``) used as training, baseline or control images."""

    source: str
    rows: np.ndarray
    label: str                  # "pneumoniamnist/val"
    role: str                   # "the validation split", ...
    n_identical_to_synthetic: int = 0

    def describe(self) -> dict:
        return {"set": self.label, "role": self.role, "source": self.source,
                "n": int(len(self.rows)),
                "n_excluded_identical_to_synthetic": int(self.n_identical_to_synthetic)}


@dataclass
class PrivacySets:
    train: RealSet
    baseline: RealSet
    control: RealSet | None
    choice: str
    why: str
    warnings: list = field(default_factory=list)

    def describe(self) -> dict:
        return {**self.baseline.describe(), "choice": self.choice, "why": self.why,
                "training_set": self.train.describe()}


def _label(ds) -> str:
    return f"{ds.name}/{ds.split}"


def _unseen(source: str, ds, rows: np.ndarray, role: str, fake_images, warnings) -> RealSet:
    """A baseline or control set without the images that also appear in the synthetic set."""
    same = identical_to(ds.images[torch.as_tensor(rows)], fake_images) if len(rows) else \
        np.zeros(0, bool)
    if same.any():
        warnings.append(f"privacy: {int(same.sum())} of the {len(rows)} images of "
                        f"{_label(ds)} are pixel-identical to synthetic images; they were left "
                        "out of that real set (it cannot serve as unseen for images it holds)")
    return RealSet(source, rows[~same], _label(ds), role, int(same.sum()))


def _distinct(a, b) -> bool:
    return a is not None and b is not None and a.fingerprint != b.fingerprint


def choose_sets(option: str, train, val, heldout, fake_images: torch.Tensor,
                seed: int) -> PrivacySets:
    """The audit's training set, baseline and control (None when no second exchangeable set
    exists) for the ``privacy_baseline`` option. ``train`` / ``val`` / ``heldout``: the
    datasets as the evaluation's split families see them (any may be None). Raises
    :class:`ConfigError` when the asked-for baseline does not exist."""
    kind, fraction = parse_baseline(option)
    warnings: list[str] = []
    has_val = _distinct(val, train)
    has_test = _distinct(heldout, train)
    all_train = RealSet("train", np.arange(len(train)), _label(train), "the training split")
    val_role = "the validation split"

    def val_set():
        return _unseen("val", val, np.arange(len(val)), val_role, fake_images, warnings)

    def test_set():
        return _unseen("heldout", heldout, np.arange(len(heldout)),
                       "the held-out set (the test split on the command line)", fake_images,
                       warnings)

    if kind == "reserve":
        kept, reserved = reserved_rows(train, fraction, seed)
        who = "whole patients" if getattr(train, "patient_ids", None) is not None else \
            "stratified by class"
        role = (f"a reserved random {fraction:.0%} of the training split ({who}, seed {seed}), "
                "left out of the audit's training set")
        baseline = _unseen("train", train, reserved, role, fake_images, warnings)
        baseline.label = f"{_label(train)}[reserved {fraction:.0%}]"
        kept_set = RealSet("train", kept, f"{_label(train)}[rest]",
                           "the training split without the reserved part")
        why = ("asked for with privacy baseline 'reserve'; valid only if the generator was "
               "trained without the reserved images")
        return PrivacySets(kept_set, baseline, val_set() if has_val else None, "reserve",
                           why, warnings)
    if kind == "val" or (kind == "auto" and has_val):
        if not has_val:
            raise ConfigError("privacy baseline val: the evaluation has no validation split "
                              "distinct from the training split; choose test or reserve.")
        why = ("asked for with privacy baseline 'val'" if kind == "val" else
               "the default: drawn from the same pool as the training images and unseen by "
               "the generator")
        return PrivacySets(all_train, val_set(), None, kind, why, warnings)
    if not has_test:
        raise ConfigError("the privacy audit needs held-out real images: the evaluation has "
                          "no validation and no test split distinct from the training split.")
    why = ("asked for with privacy baseline 'test'" if kind == "test" else
           "the default without a validation split; exchangeable with the training images "
           "only if drawn from the same pool, which the exchangeability check tests")
    return PrivacySets(all_train, test_set(), val_set() if has_val else None, kind, why,
                       warnings)
