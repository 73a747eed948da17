"""Figures written next to results.json (paths returned relative to that folder)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from medsyn.utils import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    with atomic_write(path) as f:
        f.write(buf.getvalue())
    return path.name


def _subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= cap else np.sort(rng.choice(n, cap, replace=False))


def tsne_plot(path: Path, real: np.ndarray, real_labels: np.ndarray, fake: np.ndarray,
              fake_labels: np.ndarray | None, class_names: list[str], max_points: int,
              seed: int, extractor: str) -> str:
    """t-SNE (scikit-learn; PCA to 50 dimensions first) of real and fake features, coloured by
    class, marker by real (o) / fake (x)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    ir = _subsample(len(real), max_points, rng)
    jf = _subsample(len(fake), max_points, rng)
    x = np.concatenate([real[ir], fake[jf]]).astype(np.float64)
    n_comp = min(50, x.shape[0] - 1, x.shape[1])
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    # One thread: after torch has run in this process, OpenMP pools of torch and scikit-learn
    # compete for the cores, and a few hundred points then take tens of seconds instead of one.
    with threadpool_limits(limits=1):
        x = PCA(n_components=n_comp, random_state=seed).fit_transform(x)
        emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                   learning_rate="auto").fit_transform(x)
    er, ef = emb[: len(ir)], emb[len(ir):]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    colours = plt.get_cmap("tab10")
    for c, name in enumerate(class_names):
        m = real_labels[ir] == c
        ax.scatter(er[m, 0], er[m, 1], s=12, marker="o", color=colours(c % 10), alpha=0.55,
                   label=f"real {name}")
        if fake_labels is not None:
            m = fake_labels[jf] == c
            ax.scatter(ef[m, 0], ef[m, 1], s=18, marker="x", color=colours(c % 10), alpha=0.8,
                       label=f"fake {name}")
    if fake_labels is None:
        ax.scatter(ef[:, 0], ef[:, 1], s=18, marker="x", color="black", alpha=0.7,
                   label="fake (no labels)")
    ax.set_title(f"t-SNE of {extractor} features: {len(ir)} real (o), {len(jf)} fake (x)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=1.2, loc="best", ncol=2)
    return _save(fig, path)


def ordinal(p: float) -> str:
    if float(p).is_integer():
        n = int(p)
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"{n}{suffix}"
    return f"{p:g}th"


def _show(img: torch.Tensor):
    arr = img.numpy()
    return (arr[0], "gray") if arr.shape[0] == 1 else (arr.transpose(1, 2, 0), None)


def memorization_gallery(path: Path, fake_images: torch.Tensor, train_images: torch.Tensor,
                         order: np.ndarray, nearest: np.ndarray, distances: np.ndarray,
                         threshold: float, percentile: float, space: str | None = None) -> str:
    """The synthetic images closest to a training image (top row) and that image (bottom)."""
    plt = _pyplot()
    n = max(len(order), 1)
    fig, axes = plt.subplots(2, n, figsize=(1.7 * n, 4.0), squeeze=False)
    for col in range(n):
        for row in range(2):
            axes[row, col].axis("off")
        if col >= len(order):
            continue
        i = int(order[col])
        img, cmap = _show(fake_images[i])
        axes[0, col].imshow(img, cmap=cmap, vmin=0, vmax=255)
        flag = " *" if distances[i] < threshold else ""
        axes[0, col].set_title(f"fake {i}\nd={distances[i]:.3g}{flag}", fontsize=7)
        img, cmap = _show(train_images[int(nearest[i])])
        axes[1, col].imshow(img, cmap=cmap, vmin=0, vmax=255)
        axes[1, col].set_title(f"train {int(nearest[i])}", fontsize=7)
    where = f" in {space}" if space else ""
    fig.suptitle(f"Closest synthetic / training pairs{where} (* = below the "
                 f"{ordinal(percentile)} percentile of held-out distances, {threshold:.3g})",
                 fontsize=9)
    return _save(fig, path)


def distance_histogram(path: Path, d_fake: np.ndarray, d_held: np.ndarray, threshold: float,
                       percentile: float, space: str | None = None) -> str:
    """Distances to the nearest training image: synthetic against the held-out baseline (its
    distribution, its median and its ``percentile``-th percentile)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    bins = np.linspace(0, max(d_fake.max(), d_held.max()) * 1.02, 50)
    ax.hist(d_held, bins=bins, density=True, alpha=0.55, label=f"real held-out (n={len(d_held)})")
    ax.hist(d_fake, bins=bins, density=True, alpha=0.55, label=f"synthetic (n={len(d_fake)})")
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1,
               label=f"{ordinal(percentile)} percentile of held-out")
    if space is not None:
        ax.axvline(float(np.median(d_held)), color="C0", linewidth=1.2,
                   label="held-out median (baseline)")
        ax.axvline(float(np.median(d_fake)), color="C1", linewidth=1.2, label="synthetic median")
    ax.set_xlabel(f"distance to the nearest training image ({space or 'feature space'})")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return _save(fig, path)
