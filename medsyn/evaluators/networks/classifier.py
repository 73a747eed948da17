"""Diagnostic classifiers for the utility protocol and the in-domain feature extractor.

A timm network (ResNet-18 by default, no pretrained weights unless a local file is given),
adapted to the image size and channel count, trained with a fixed, named recipe:

    from medsyn.evaluators.networks.classifier import (get_recipe, train_classifier,
                                                       predict_proba, classification_scores)
    recipe = get_recipe("quick")          # or "medmnist", or get_recipe("quick", epochs=3)
    clf = train_classifier(train.images, train.labels, val.images, val.labels,
                           num_classes=2, recipe=recipe, seed=0)
    probs = predict_proba(clf.model, test.images)      # float64 [N, K]
    scores = classification_scores(probs, test.labels.numpy(), test.class_names)

Classifiers trained on a real training split are cached on disk (``real_classifier``), keyed
by the fingerprints of the training and validation data, the recipe and the seed, so every
checkpoint evaluated against the same dataset reuses them.

Conventions (all recorded in ``Recipe.describe()``; the recipes are in
:mod:`medsyn.evaluators.networks.recipes`):

- input ``x / 127.5 - 1`` (:func:`medsyn.model_range.to_model_range`; MedMNIST's
  Normalize(mean=.5, std=.5));
- stem: the total stride of ResNet's stem is chosen from the image size (``stem_stride``
  ``None``): 1 up to 32 px (3x3 stride-1 convolution, no max-pool: MedMNIST's ResNet-18 (28)),
  2 up to 64 px (the same convolution, then the max-pool), 4 above (timm's own 7x7 stride-2
  convolution and max-pool, as ResNet-18 (224)); an explicit 1, 2 or 4 forces it;
- Adam, cross-entropy, lr multiplied by ``gamma`` at the given fractions of the epochs;
- model selection on the real validation split after every epoch (macro one-vs-rest AUC by
  default, ties to the earlier epoch);
- batches are drawn from a seeded permutation of the uint8 tensor held on the device; a last
  batch of a single image is dropped (batch norm cannot train on one image);
- ``precise_bn``: after every epoch, batch-norm statistics are recomputed on up to that many
  training images (the ``quick`` recipe; ``medmnist`` keeps PyTorch's running averages).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import pickle
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medsyn.errors import ConfigError, DataError
from medsyn.evaluators.networks.netcache import (
    cache_key,
    load_network,
    state_digest,
    store_network,
)
from medsyn.evaluators.networks.recipes import (  # noqa: F401 (public names here too)
    RECIPES,
    Recipe,
    get_recipe,
    resolved_precision,
)
from medsyn.model_range import to_model_range
from medsyn.utils import progress

log = logging.getLogger(__name__)

CLASSIFIER_CACHE_VERSION = 1
CACHE_KIND = "classifiers"

# ---------------------------------------------------------------- the network


def stem_stride_for(image_size: int, recipe: Recipe) -> int:
    if recipe.stem_stride is not None:
        return recipe.stem_stride
    return 1 if image_size <= 32 else 2 if image_size <= 64 else 4


def _create_pretrained(recipe: Recipe, kwargs: dict) -> torch.nn.Module:
    """timm's model initialised from the user's weights file, read with weights_only=True.

    timm adapts the stem to the channel count and drops a classifier of another size; it is
    handed a private copy holding only the verified tensors, so whatever else the user's file
    holds is never unpickled, whichever timm version reads it.
    """
    import tempfile

    import timm

    from medsyn.weights import fit_state_dict, read_state_dict

    try:
        state = read_state_dict(recipe.pretrained, "classifier weights",
                                "Give a timm/torchvision state_dict saved with torch.save "
                                "(--classifier-weights).")
    except ConfigError as exc:
        raise ConfigError(f"could not load classifier weights: {exc}") from None
    # timm's own load is not strict when the class count differs: a file of another network
    # would leave the classifier at its random initialisation, silently
    target = timm.create_model(recipe.model, pretrained=False, **kwargs)
    cfg = target.pretrained_cfg or {}
    head = {f"{name}.{part}" for name in _names(cfg.get("classifier"))
            for part in ("weight", "bias")}
    stem = {f"{name}.weight" for name in _names(cfg.get("first_conv"))}
    state = fit_state_dict(state, target.state_dict(), what="classifier weights",
                           path=recipe.pretrained, network=f"timm's {recipe.model}", head=head,
                           stem=stem, partial=recipe.pretrained_partial,
                           partial_flag="--classifier-weights-partial")
    with tempfile.TemporaryDirectory(prefix="medsyn-weights-") as tmp:
        verified = Path(tmp) / "verified.pth"
        torch.save(state, verified)
        return timm.create_model(recipe.model, pretrained=True,
                                 pretrained_cfg_overlay={"file": str(verified)},
                                 pretrained_strict=not recipe.pretrained_partial, **kwargs)


def _names(value) -> tuple[str, ...]:
    """A timm pretrained_cfg entry (a layer name or a tuple of them) as a tuple."""
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def build_classifier(recipe: Recipe, channels: int, num_classes: int,
                     image_size: int) -> torch.nn.Module:
    """The recipe's timm model for ``channels`` x ``image_size`` images and ``num_classes``."""
    import timm

    if not timm.is_model(recipe.model):
        raise ConfigError(f"timm has no model {recipe.model!r}; e.g. resnet18, resnet50 "
                          "(timm.list_models() lists them).")
    kwargs = dict(in_chans=channels, num_classes=num_classes)
    try:
        if recipe.pretrained:
            model = _create_pretrained(recipe, kwargs)
        else:
            model = timm.create_model(recipe.model, pretrained=False, **kwargs)
    except (RuntimeError, OSError, KeyError, ValueError, pickle.UnpicklingError) as exc:
        if recipe.pretrained:
            raise ConfigError(f"could not load classifier weights {recipe.pretrained} into timm's "
                              f"{recipe.model} ({type(exc).__name__}: {str(exc)[:300]}).") from None
        raise
    stride = stem_stride_for(image_size, recipe)
    if stride != 4:
        if not (hasattr(model, "conv1") and hasattr(model, "maxpool")
                and isinstance(model.conv1, torch.nn.Conv2d)):
            if recipe.stem_stride is None:
                return model          # not a ResNet: keep its own stem
            raise ConfigError(f"stem_stride {stride} needs a ResNet-style model (conv1 + "
                              f"maxpool); {recipe.model} has another stem.")
        model.conv1 = torch.nn.Conv2d(channels, model.conv1.out_channels, 3, 1, 1, bias=False)
        torch.nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        if stride == 1:
            model.maxpool = torch.nn.Identity()
    return model


def penultimate(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Features before the classifier layer (global pooling output; 512-d for ResNet-18)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


# the classifiers' input: medsyn's one uint8 -> [-1, 1] conversion
to_input = to_model_range


def _shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random translation by up to 1/8 of the size (reflect padding, then a random crop), one
    offset per image, as tensor ops on the whole batch."""
    n, _, h, w = x.shape
    ph, pw = max(1, h // 8), max(1, w // 8)
    padded = torch.nn.functional.pad(x, (pw, pw, ph, ph), mode="reflect")
    dy = torch.randint(0, 2 * ph + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pw + 1, (n,), generator=generator).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])          # [n, h]
    cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])          # [n, w]
    idx = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------- scores


def classification_scores(probs: np.ndarray, labels: np.ndarray,
                          class_names: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, macro one-vs-rest AUC, macro F1 and per-class recall.

    Balanced accuracy, F1 and recall average over the classes present in ``labels``; the AUC
    is ``None`` (with a reason under ``auc_macro_unavailable``) when fewer than two classes are
    present.
    """
    from sklearn.metrics import (
        balanced_accuracy_score,
        f1_score,
        recall_score,
        roc_auc_score,
    )

    labels = np.asarray(labels, dtype=np.int64)
    k = len(class_names)
    pred = probs.argmax(1)
    present = np.unique(labels)
    with warnings.catch_warnings():
        # predictions of a class absent from the labels are expected (a poor classifier)
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = float(balanced_accuracy_score(labels, pred))
    out = {"accuracy": float(np.mean(pred == labels)),
           "balanced_accuracy": balanced,
           "f1_macro": float(f1_score(labels, pred, labels=present, average="macro",
                                      zero_division=0)),
           "n": int(len(labels))}
    recalls = recall_score(labels, pred, labels=np.arange(k), average=None, zero_division=0)
    out["per_class_recall"] = {name: (float(recalls[c]) if c in present else None)
                               for c, name in enumerate(class_names)}
    if len(present) < 2:
        out["auc_macro"] = None
        out["auc_macro_unavailable"] = "the labels hold fewer than two classes"
    elif k == 2:
        out["auc_macro"] = float(roc_auc_score(labels, probs[:, 1]))
    else:
        # one-vs-rest AUC of each class present, averaged (equals sklearn's multi_class="ovr"
        # when every class is present, and needs no renormalisation when some are not)
        out["auc_macro"] = float(np.mean([roc_auc_score(labels == c, probs[:, c])
                                          for c in present]))
    return out


# ---------------------------------------------------------------- training


@dataclass
class TrainedClassifier:
    model: torch.nn.Module
    recipe: Recipe
    seed: int
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    from_cache: bool = False
    n_train: int = 0
    weights_sha256: str | None = None

    device: str = "cpu"
    precision: str = "fp32"

    def describe(self) -> dict:
        return {"seed": self.seed, "best_epoch": self.best_epoch,
                "device": self.device, "precision": self.precision,
                "selection": self.recipe.selection, "n_train": self.n_train,
                "train_seconds": round(self.train_seconds, 2), "from_cache": self.from_cache,
                "val": self.history[self.best_epoch - 1] if self.history else None}


def _autocast(device: torch.device, recipe: Recipe):
    return torch.autocast(device.type, dtype=torch.bfloat16,
                          enabled=resolved_precision(recipe, device) == "bf16")


@torch.no_grad()
def predict_proba(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 512,
                  device: torch.device | str | None = None,
                  recipe: Recipe | None = None) -> np.ndarray:
    """Softmax probabilities (float64 ``[N, K]``) of ``model`` on uint8 images."""
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    out = []
    for s in range(0, len(images), batch_size):
        x = to_input(images[s:s + batch_size].to(dev, non_blocking=True))
        with _autocast(dev, recipe or Recipe()):
            logits = model(x)
        out.append(torch.softmax(logits.float(), 1).double().cpu())
    if not out:
        return np.zeros((0, 0))
    return torch.cat(out).numpy()


@torch.no_grad()
def recompute_batchnorm(model: torch.nn.Module, images: torch.Tensor, max_images: int,
                        batch_size: int, generator: torch.Generator,
                        recipe: Recipe) -> None:
    """Replace batch norm's running mean/variance by their average over up to ``max_images``
    training images under the current weights ("precise BN", Wu & Johnson 2021)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns or max_images <= 0:
        return
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None                   # cumulative average over the batches below
    was_training = model.training
    model.train()
    idx = torch.randperm(len(images), generator=generator)[:max_images].to(images.device)
    if len(idx) > batch_size:         # equal batches: the cumulative average weighs each alike
        idx = idx[: len(idx) - len(idx) % batch_size]
    for s in range(0, len(idx), batch_size):
        part = idx[s:s + batch_size]
        if len(part) < 2:
            continue
        with _autocast(images.device, recipe):
            model(to_input(images[part]))
    for bn, m in zip(bns, momenta, strict=True):
        bn.momentum = m
    model.train(was_training)


def _selection_value(scores: dict, selection: str) -> float:
    if selection == "val_auc":
        v = scores.get("auc_macro")
        return -math.inf if v is None else v
    if selection == "val_accuracy":
        return scores["accuracy"]
    return 0.0


def _check_training_data(images, labels, num_classes: int, what: str):
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise DataError(f"{what}: expected uint8 images [N, C, H, W], got "
                        f"{getattr(images, 'dtype', type(images).__name__)}.")
    if len(images) != len(labels):
        raise DataError(f"{what}: {len(images)} images but {len(labels)} labels.")
    if len(images) < 2:
        raise DataError(f"{what}: needs at least 2 images, got {len(images)}.")
    lab = torch.as_tensor(labels)
    if int(lab.min()) < 0 or int(lab.max()) >= num_classes:
        raise DataError(f"{what}: labels must be in 0..{num_classes - 1}, got "
                        f"{int(lab.min())}..{int(lab.max())}.")


def train_classifier(train_images: torch.Tensor, train_labels, val_images: torch.Tensor,
                     val_labels, num_classes: int, recipe: Recipe | str | None = None,
                     seed: int = 0, device: torch.device | str | None = None,
                     class_names: Sequence[str] | None = None, desc: str = "classifier",
                     eval_batch_size: int = 512) -> TrainedClassifier:
    """Train the recipe's network on uint8 images; select the epoch on the validation set.

    Same seed, data, recipe and device -> the same weights (on CPU; cuDNN may differ on GPU).
    """
    from medsyn.device import resolve_device

    recipe = get_recipe(recipe)
    dev = resolve_device(device)
    train_labels = torch.as_tensor(train_labels, dtype=torch.int64)
    val_labels_np = np.asarray(torch.as_tensor(val_labels), dtype=np.int64)
    _check_training_data(train_images, train_labels, num_classes, f"{desc} training images")
    _check_training_data(val_images, val_labels_np, num_classes, f"{desc} validation images")
    if train_images.shape[1:] != val_images.shape[1:]:
        raise DataError(f"{desc}: training images are {tuple(train_images.shape[1:])} but "
                        f"validation images {tuple(val_images.shape[1:])}.")
    names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
    channels, size = int(train_images.shape[1]), int(train_images.shape[2])

    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        model = build_classifier(recipe, channels, num_classes, size).to(dev)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, betas=tuple(recipe.betas),
                           weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, recipe.milestone_epochs(), recipe.gamma)
    x_all = train_images.to(dev)
    y_all = train_labels.to(dev)
    n = len(x_all)
    history: list[dict] = []
    best, best_value, best_epoch = None, -math.inf, 0
    started = time.perf_counter()
    bar = progress(total=recipe.epochs, desc=desc, unit="epoch")
    with bar:
        for epoch in range(1, recipe.epochs + 1):
            model.train()
            lr = float(opt.param_groups[0]["lr"])
            perm = torch.randperm(n, generator=gen).to(dev)
            total, count = 0.0, 0
            for s in range(0, n, recipe.batch_size):
                idx = perm[s:s + recipe.batch_size]
                if len(idx) < 2:
                    continue
                x = to_input(x_all[idx])
                if recipe.augment == "shift":
                    x = _shift(x, gen)
                with _autocast(dev, recipe):
                    loss = torch.nn.functional.cross_entropy(model(x), y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise DataError(f"{desc}: the training loss became {loss_value} in epoch "
                                    f"{epoch}; lower the learning rate or check the images.")
                total += loss_value * len(idx)
                count += len(idx)
            sched.step()
            recompute_batchnorm(model, x_all, recipe.precise_bn, eval_batch_size, gen, recipe)
            probs = predict_proba(model, val_images, eval_batch_size, dev, recipe)
            scores = classification_scores(probs, val_labels_np, names)
            record = {"epoch": epoch, "lr": lr, "loss": total / max(count, 1),
                      "val_accuracy": scores["accuracy"], "val_auc": scores["auc_macro"]}
            history.append(record)
            value = _selection_value(scores, recipe.selection)
            if recipe.selection == "last" or value > best_value or best is None:
                best_value, best_epoch = value, epoch
                best = copy.deepcopy(model.state_dict())
            bar.set_postfix(loss=f"{record['loss']:.3f}", val_acc=f"{scores['accuracy']:.3f}",
                            best=best_epoch)
            bar.update(1)
    model.load_state_dict(best)
    model.eval()
    return TrainedClassifier(model=model, recipe=recipe, seed=seed, best_epoch=best_epoch,
                             history=history, train_seconds=time.perf_counter() - started,
                             n_train=n, weights_sha256=state_digest(model), device=str(dev),
                             precision=resolved_precision(recipe, dev))


# ---------------------------------------------------------------- cache of real classifiers


def _cache_key(train, val, recipe: Recipe, seed: int, device: torch.device) -> str:
    import timm

    from medsyn import __version__

    # the medsyn, torch and timm versions are part of the key: a changed training loop or
    # library gives a new classifier rather than an old one that its code would not reproduce
    return cache_key({"version": CLASSIFIER_CACHE_VERSION, "medsyn": __version__,
                      "torch": torch.__version__.split("+")[0], "timm": timm.__version__,
                      "device_type": device.type, "precision": resolved_precision(recipe, device),
                      "train": {"name": train.name, "split": train.split,
                                "fingerprint": train.fingerprint},
                      "val": {"name": val.name, "split": val.split,
                              "fingerprint": val.fingerprint},
                      "recipe": recipe.describe(), "seed": int(seed)})


def real_classifier(train, val, recipe: Recipe | str | None = None, seed: int = 0,
                    device=None, use_cache: bool = True, desc: str | None = None
                    ) -> TrainedClassifier:
    """The recipe's classifier trained on the real ``train`` dataset (selected on ``val``),
    from ``$MEDSYN_CACHE_DIR/classifiers`` when trained before (evaluators/networks/netcache.py)."""
    from medsyn.device import resolve_device

    recipe = get_recipe(recipe)
    dev = resolve_device(device)
    key = _cache_key(train, val, recipe, seed, dev)
    k, size = train.num_classes, train.image_size[0]
    cached = load_network(CACHE_KIND, key, lambda: build_classifier(
        dataclasses.replace(recipe, pretrained=None), train.channels, k, size)) \
        if use_cache else None
    if cached is not None:
        model, meta = cached
        return TrainedClassifier(model=model.to(dev).eval(), recipe=recipe, seed=seed,
                                 best_epoch=meta["best_epoch"], history=meta["history"],
                                 train_seconds=meta["train_seconds"], from_cache=True,
                                 n_train=meta["n_train"], weights_sha256=meta["weights_sha256"],
                                 device=meta.get("device", str(dev)),
                                 precision=resolved_precision(recipe, dev))
    clf = train_classifier(train.images, train.labels, val.images, val.labels, k, recipe, seed,
                           dev, train.class_names,
                           desc=desc or f"TRTR {train.name} seed {seed}")
    if use_cache:
        store_network(CACHE_KIND, key, clf.model, {
            "train": train.name, "split": train.split, "fingerprint": train.fingerprint,
            "val": val.fingerprint, "recipe": recipe.describe(), "seed": seed,
            "best_epoch": clf.best_epoch, "history": clf.history,
            "train_seconds": clf.train_seconds, "n_train": clf.n_train, "device": str(dev)})
    return clf
