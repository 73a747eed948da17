"""Training recipes of the networks trained on real data: the diagnostic classifier's
:class:`Recipe` (named ``quick`` and ``medmnist``) and the rule that turns a name, a recipe or a
dict of fields into a validated recipe (:func:`resolve_recipe`, shared with the SSL recipes of
:mod:`medsyn.evaluators.networks.ssl`).

Every field of a recipe is recorded in results.json, and ``describe()`` is part of the key of
the trained network in the cache (:mod:`medsyn.evaluators.networks.netcache`): it must not
change for an unchanged recipe, or every cached network would be trained again.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from medsyn.errors import ConfigError
from medsyn.utils import file_digest

SELECTIONS = ("val_auc", "val_accuracy", "last")
AUGMENTATIONS = ("none", "shift")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class Recipe:
    """How a diagnostic classifier is trained. Every field ends up in results.json."""

    name: str = "quick"
    model: str = "resnet18"
    stem_stride: int | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    selection: str = "val_auc"
    augment: str = "none"
    precision: str = "auto"
    # after every epoch, batch-norm statistics recomputed on up to this many training images
    # (0: keep the running averages); see recompute_batchnorm
    precise_bn: int = 2048
    pretrained: str | None = None       # local timm/torchvision state_dict file
    # load only the tensors of ``pretrained`` that fit the network (else a file of another
    # network is refused: medsyn.weights.fit_state_dict)
    pretrained_partial: bool = False

    def validate(self) -> Recipe:
        def need(cond, msg):
            if not cond:
                raise ConfigError(f"classifier recipe {self.name!r}: {msg}")
        need(isinstance(self.epochs, int) and self.epochs >= 1,
             f"epochs must be an integer >= 1, got {self.epochs!r}.")
        need(isinstance(self.batch_size, int) and self.batch_size >= 2,
             f"batch_size must be an integer >= 2, got {self.batch_size!r}.")
        need(isinstance(self.lr, (int, float)) and self.lr > 0,
             f"lr must be > 0, got {self.lr!r}.")
        need(isinstance(self.milestones, (tuple, list)) and all(
             isinstance(m, (int, float)) and 0 < m < 1 for m in self.milestones),
             f"milestones are fractions of the epochs in (0, 1), got {self.milestones!r}.")
        need(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma!r}.")
        need(self.stem_stride in (None, 1, 2, 4),
             f"stem_stride must be 1, 2, 4 or None (chosen from the image size), got "
             f"{self.stem_stride!r}.")
        need(self.selection in SELECTIONS,
             f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}.")
        need(self.augment in AUGMENTATIONS,
             f"augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}.")
        need(isinstance(self.precise_bn, int) and self.precise_bn >= 0,
             f"precise_bn must be an integer >= 0 (images), got {self.precise_bn!r}.")
        need(self.precision in PRECISIONS,
             f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}.")
        need(not self.pretrained_partial or self.pretrained is not None,
             "pretrained_partial needs pretrained (a weights file).")
        if self.pretrained is not None and not Path(self.pretrained).expanduser().is_file():
            raise ConfigError(f"classifier weights file {self.pretrained} does not exist; give a "
                              f"local state_dict for timm's {self.model} or leave it unset.")
        return self

    def milestone_epochs(self) -> list[int]:
        """Epochs after which the lr is multiplied by ``gamma``: ``floor(m * epochs)`` for each
        fraction m (at least 1); a repeated epoch decays twice, as in MultiStepLR."""
        return sorted(max(1, int(math.floor(m * self.epochs + 1e-9))) for m in self.milestones)

    def describe(self) -> dict:
        """JSON-ready: every field, the milestones in epochs, and what the names mean."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        out["milestones"] = list(self.milestones)
        out["milestone_epochs"] = self.milestone_epochs()
        out["optimizer"] = "Adam"
        out["loss"] = "cross-entropy"
        out["input"] = "x / 127.5 - 1"
        out["stem"] = ("chosen from the image size: stride 1 up to 32 px, 2 up to 64 px, 4 above"
                       if self.stem_stride is None else f"stride {self.stem_stride}")
        if self.pretrained:
            path = Path(self.pretrained).expanduser()
            out["pretrained_sha256"] = file_digest(path) if path.is_file() else None
        if not self.pretrained_partial:       # absent unless asked: cache keys stay as they were
            del out["pretrained_partial"]
        return out


RECIPES: dict[str, Recipe] = {
    # CPU-sized: ResNet-18 with timm's ImageNet stem at every size (a 28 px image is 7x7 after
    # the stem), 10 epochs. About 0.5 k img/s of training on 2 CPU cores at 28 px. So few
    # steps leave batch norm's running averages behind the weights (measured: a 1,200-image
    # PneumoniaMNIST run predicted one class in eval mode after 3 epochs though its training
    # loss was 0.13), hence the statistics are recomputed after every epoch.
    "quick": Recipe(name="quick", stem_stride=4, epochs=10),
    # MedMNIST v2's ResNet-18 recipe (Yang et al. 2023): 100 epochs, lr x0.1 at 50 and 75,
    # the stem chosen from the size (stride 1 at 28 px, as their ResNet-18 (28)).
    "medmnist": Recipe(name="medmnist", stem_stride=None, epochs=100, precise_bn=0),
}
DEFAULT_RECIPE = "quick"


def get_recipe(recipe: str | Recipe | dict | None = None, **overrides) -> Recipe:
    """A named recipe (``quick``, ``medmnist``), a Recipe, or a dict of fields, with overrides
    (``None`` values are ignored). A changed recipe keeps its base name plus ``+custom``."""
    return resolve_recipe(recipe, overrides, recipe_type=Recipe, named=RECIPES,
                          default=DEFAULT_RECIPE, what="classifier")


def resolved_precision(recipe: Recipe, device: torch.device) -> str:
    bf16 = recipe.precision == "bf16" or (recipe.precision == "auto" and device.type == "cuda")
    return "bf16" if bf16 else "fp32"


def resolve_recipe(recipe, overrides: dict, *, recipe_type: type, named: dict, default: str,
                   what: str):
    """A training recipe from a name (a key of ``named``), a ``recipe_type`` instance or a dict
    of its fields, with ``overrides`` (``None`` values ignored); a changed named recipe keeps
    its base name plus ``+custom``. Shared by the classifier and SSL recipes."""
    if recipe is None:
        recipe = default
    if isinstance(recipe, str):
        if recipe not in named:
            raise ConfigError(f"unknown {what} recipe {recipe!r}; choose from "
                              f"{', '.join(named)}.")
        base = named[recipe]
    elif isinstance(recipe, recipe_type):
        base = recipe
    elif isinstance(recipe, dict):
        known = {f.name for f in dataclasses.fields(recipe_type)}
        unknown = sorted(set(recipe) - known)
        if unknown:
            raise ConfigError(f"unknown {what} recipe field(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}.")
        base = recipe_type(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in recipe.items()})
    else:
        raise ConfigError(f"a {what} recipe is a name, a {recipe_type.__name__} or a dict, got "
                          f"{type(recipe).__name__}.")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes:
        changed = {k: v for k, v in changes.items() if getattr(base, k) != v}
        if changed and not base.name.endswith("+custom"):
            changes["name"] = f"{base.name}+custom"
        base = dataclasses.replace(base, **changes)
    return base.validate()
