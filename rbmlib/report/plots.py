"""The report's figures. Each function takes arrays, draws one figure and returns it.

Figures are made with ``pyplot`` so that a notebook shows each one once, where
the cell that makes it ends; the functions never call ``show``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullLocator

from rbmlib.data import CLASS_NAMES

IMAGE_SIDE = 28


def use_report_style() -> None:
    """Readable defaults for every figure of the report (resolution, fonts, no top/right spines)."""
    plt.rcParams.update({
        "figure.dpi": 110,
        "savefig.dpi": 110,
        "font.size": 9,
        "axes.titlesize": 9,
        "axes.labelsize": 9,
        "legend.fontsize": 8,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })


def untangle_xticks(fig: Figure, *, pad: float = 3.0, rounds: int = 6) -> Figure:
    """Thin the x tick labels of ``fig`` until no two of them overlap, within a panel or across panels.

    Narrow side-by-side panels (seven hyperparameters in one strip) leave each
    label a few millimetres, and a label's width depends on its text, which no
    locator knows in advance: so the figure is drawn, each crowded axis keeps
    every other labelled tick, and it is drawn again. ``pad`` is the least gap
    between two labels, in pixels at the figure's resolution. Returns ``fig``.
    """
    for _ in range(rounds):
        fig.draw_without_rendering()
        renderer = fig.canvas.get_renderer()
        boxes = [(ax, label.get_window_extent(renderer)) for ax in fig.axes for label in _shown_labels(ax)]
        crowded = {}
        for i, (ax, box) in enumerate(boxes):
            for other_ax, other in boxes[i + 1:]:
                if _overlap(box, other, pad):
                    crowded[id(ax)], crowded[id(other_ax)] = ax, other_ax
        thinnable = [ax for ax in crowded.values() if len(_shown_labels(ax)) > 1]
        if not thinnable:
            break
        for ax in thinnable:
            _keep_every_other(ax)
    return fig


def _shown_labels(ax) -> list:
    """The x tick labels (major and minor, in order) that a draw of ``ax`` shows: in view, with text."""
    low, high = sorted(ax.get_xlim())
    ticks = sorted(ax.xaxis.get_major_ticks() + ax.xaxis.get_minor_ticks(), key=lambda t: t.get_loc())
    return [t.label1 for t in ticks if t.label1.get_visible() and t.label1.get_text()
            and low <= t.get_loc() <= high]


def _overlap(a, b, pad: float) -> bool:
    return a.x0 < b.x1 + pad and b.x0 < a.x1 + pad and a.y0 < b.y1 and b.y0 < a.y1


def _keep_every_other(ax) -> None:
    """Fix ``ax``'s labelled x ticks to every other one of those shown (a log axis's minor
    labels become fixed ticks like the rest)."""
    shown = [(label.get_position()[0], label.get_text()) for label in _shown_labels(ax)][::2]
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks([loc for loc, _ in shown], [text for _, text in shown])


def image_grid(images, nrows, ncols, *, row_labels=None, col_labels=None, cmap="gray_r",
               vmin=0.0, vmax=1.0, cell_size=0.85) -> Figure:
    """Flattened 28x28 images on a grid, filled row by row, with optional row and column labels.

    Parameters
    ----------
    images : array-like of shape (n, 784)
        At most ``nrows * ncols`` images; empty cells stay blank.
    row_labels, col_labels : sequence of str, optional
    cmap, vmin, vmax : colour map and its limits (``None`` limits: per image).
    """
    images = np.asarray(images)
    if len(images) > nrows * ncols:
        raise ValueError(f"{len(images)} images do not fit a {nrows}x{ncols} grid.")
    label_space = 1.4 if row_labels is not None else 0.0
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(ncols * cell_size + label_space, nrows * cell_size + 0.3))
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if i < len(images):
            ax.imshow(images[i].reshape(IMAGE_SIDE, IMAGE_SIDE), cmap=cmap, vmin=vmin, vmax=vmax)
    for r, label in enumerate(row_labels or []):
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center")
    for c, label in enumerate(col_labels or []):
        axes[0, c].set_title(label)
    fig.tight_layout(pad=0.2, w_pad=0.1, h_pad=0.1)
    return fig


def class_samples(X, y, indices, class_names=CLASS_NAMES) -> Figure:
    """One row per class of the images ``X[indices]`` (indices grouped by class, as ``pick_per_class`` gives)."""
    y = np.asarray(y)[indices]
    classes, counts = np.unique(y, return_counts=True)
    if len(set(counts)) != 1:
        raise ValueError("indices must pick the same number of images of every class.")
    return image_grid(np.asarray(X)[indices], len(classes), int(counts[0]),
                      row_labels=[class_names[c] for c in classes])


def image_rows(rows, *, col_labels=None) -> Figure:
    """Rows of images that belong together, e.g. ``{"image": X, "reconstruction": R}``.

    Parameters
    ----------
    rows : dict of str -> array-like of shape (n, 784)
        Row label to images; every row has the same n.
    col_labels : sequence of str, optional
    """
    lengths = {len(v) for v in rows.values()}
    if len(lengths) != 1:
        raise ValueError("every row must hold the same number of images.")
    return image_grid(np.concatenate([np.asarray(v) for v in rows.values()]), len(rows), lengths.pop(),
                      row_labels=list(rows), col_labels=col_labels)


def gibbs_chains(chains, checkpoints, *, row_labels=None) -> Figure:
    """Each chain as a row: its start, then its state at each checkpoint (see ``anatomy.gibbs_chains``)."""
    chains = np.asarray(chains)
    n_chains, n_frames, _ = chains.shape
    col_labels = ["start"] + [f"{c} step" + ("s" if c != 1 else "") for c in checkpoints]
    return image_grid(chains.reshape(n_chains * n_frames, -1), n_chains, n_frames,
                      row_labels=row_labels, col_labels=col_labels)


def filters(components, *, n=64, ncols=8) -> Figure:
    """The first ``n`` rows of the weight matrix as 28x28 images, each on its own symmetric scale.

    Red and blue mark weights of opposite sign; a filter's strong pixels are those
    whose being on most raises (or lowers) the input to its hidden unit.
    """
    W = np.asarray(components)[:n]
    scale = np.abs(W).max(axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    nrows = int(np.ceil(len(W) / ncols))
    return image_grid(W / scale, nrows, ncols, cmap="RdBu_r", vmin=-1.0, vmax=1.0, cell_size=0.7)


def tsne_scatter(embedding, y, class_names=CLASS_NAMES) -> Figure:
    """A 2-D map coloured by class, with each class's name written at its median point."""
    embedding = np.asarray(embedding)
    y = np.asarray(y)
    fig, ax = plt.subplots(figsize=(7.0, 6.0))
    colours = plt.get_cmap("tab10")
    size = max(1.0, min(8.0, 20000 / len(y)))
    for label, name in enumerate(class_names):
        points = embedding[y == label]
        if len(points) == 0:
            continue
        ax.scatter(points[:, 0], points[:, 1], s=size, color=colours(label), label=name,
                   alpha=0.6, linewidths=0, rasterized=True)
        x_mid, y_mid = np.median(points, axis=0)
        ax.annotate(name, (x_mid, y_mid), ha="center", va="center", fontsize=8, weight="bold",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": colours(label), "alpha": 0.8})
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.legend(markerscale=max(1.0, 6 / size), loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def training_curves(history) -> Figure:
    """Reconstruction error and pseudo-likelihood per epoch, from ``BernoulliRBM.history_``."""
    epochs = [r["epoch"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 2.6))
    left.plot(epochs, [r["reconstruction_error"] for r in history], marker="o", ms=3)
    left.set_ylabel("reconstruction error (MSE)")
    right.plot(epochs, [r["pseudo_likelihood"] for r in history], marker="o", ms=3, color="C1")
    right.set_ylabel("pseudo-log-likelihood (nats)")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def cd_variant_curves(curves) -> Figure:
    """One panel per monitored quantity, one line per sampler (see ``anatomy.compare_cd_variants``)."""
    panels = [
        ("log_likelihood", "held-out log-likelihood (nats)"),
        ("pseudo_likelihood", "pseudo-log-likelihood (nats)"),
        ("reconstruction_error", "reconstruction error (MSE)"),
    ]
    if curves["log_likelihood"].isna().all():
        panels = panels[1:]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 2.6))
    for ax, (column, label) in zip(np.atleast_1d(axes), panels):
        for name, part in curves.groupby("variant", sort=False):
            ax.plot(part["epoch"], part[column], marker="o", ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    return fig
