"""Looking at Fashion-MNIST before modelling it: class balance, a t-SNE map, class overlap.

The exploration notebook calls these; each returns plain arrays or DataFrames so
that the numbers the article quotes come from code, not from reading a plot.

>>> rows = pick_per_class(y, n_per_class=8, random_state=0)   # 8 images of each class
>>> emb = tsne_map(X[rows], random_state=0)                      # (n, 2)
>>> table = neighbour_purity(emb, y[rows], k=10)                 # one row per class
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors

from rbmlib.data import CLASS_NAMES, pick_per_class

# pick_per_class lives with the data (few_labels uses it too); the notebooks call it from here.
__all__ = ["pick_per_class", "stratified_rows", "class_balance", "tsne_map", "describe_map",
           "neighbour_purity", "separation_summary"]


def stratified_rows(y, n=None, *, random_state=0) -> np.ndarray:
    """Sorted indices of a stratified random sample of ``n`` rows (all rows when ``n`` is None)."""
    y = np.asarray(y)
    if n is None or n >= len(y):
        return np.arange(len(y))
    rows, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=random_state)
    return np.sort(rows)


def class_balance(splits, class_names=CLASS_NAMES) -> pd.DataFrame:
    """Number of images of each class in each split, with a total row.

    Parameters
    ----------
    splits : dict of str -> array-like of labels
        e.g. ``{"train": y_train, "validation": y_val, "test": y_test}``.
    class_names : sequence of str
        Name of label ``i`` at position ``i``.

    Returns
    -------
    DataFrame
        Index: class names then "Total"; one integer column per split.
    """
    counts = {
        name: np.bincount(np.asarray(labels), minlength=len(class_names))
        for name, labels in splits.items()
    }
    table = pd.DataFrame(counts, index=pd.Index(list(class_names), name="class"))
    table.loc["Total"] = table.sum()
    return table


def tsne_map(X, *, n_pca=50, perplexity=30.0, random_state=0, n_jobs=1, verbose=False) -> np.ndarray:
    """Two-dimensional t-SNE embedding of the rows of X.

    The pixels are first projected on their ``n_pca`` leading principal components
    (cheaper neighbour search, less pixel noise), then embedded with openTSNE's
    FFT-accelerated t-SNE (PCA initialisation, seeded), so the same inputs give the
    same map.

    Returns
    -------
    ndarray of shape (n_samples, 2)
    """
    from openTSNE import TSNE  # imported here: only the exploration needs it

    X = np.asarray(X, dtype=np.float32)
    n_pca = min(n_pca, X.shape[0], X.shape[1])
    reduced = PCA(n_components=n_pca, random_state=random_state).fit_transform(X)
    tsne = TSNE(perplexity=perplexity, n_jobs=n_jobs, random_state=random_state, verbose=verbose)
    return np.asarray(tsne.fit(reduced.astype(np.float64)))


def describe_map(n_map, n_total, *, perplexity, k) -> str:
    """One sentence on what the t-SNE map and its purity table are computed from."""
    share = f"all {n_total:,}" if n_map == n_total else f"{n_map:,} of the {n_total:,}"
    return (f"The map embeds {share} images (perplexity {perplexity:g}); purity counts each "
            f"point's {k} nearest neighbours in the map.")


def neighbour_purity(embedding, y, *, k=10, class_names=CLASS_NAMES) -> pd.DataFrame:
    """How cleanly each class stands apart in a 2-D map, measured on nearest neighbours.

    For every point, the share of its ``k`` nearest neighbours in the map (itself
    excluded) that carry its own label; averaged per class this is the class's
    *purity* (1 = a clean island, 0.1 = as mixed as ten balanced classes can be).
    The neighbours that carry another label are counted per label to name the
    class each class is most often confused with in the map.

    Returns
    -------
    DataFrame, one row per class, sorted from most to least pure, with columns
    ``class``, ``purity``, ``closest other class`` and ``share of neighbours``
    (the share of that class's neighbours that belong to the closest other class).
    """
    embedding = np.asarray(embedding)
    y = np.asarray(y)
    if len(embedding) != len(y):
        raise ValueError(f"embedding has {len(embedding)} rows but y has {len(y)}.")
    if not 1 <= k < len(y):
        raise ValueError(f"k={k} must be in [1, n_samples - 1].")
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding)
    neighbour_labels = y[idx[:, 1:]]  # (n, k), dropping each point itself
    n_classes = len(class_names)
    rows = []
    for label in range(n_classes):
        mine = neighbour_labels[y == label]
        if mine.size == 0:
            continue
        counts = np.bincount(mine.ravel(), minlength=n_classes).astype(float)
        purity = counts[label] / mine.size
        counts[label] = -1  # find the most frequent *other* class
        other = int(np.argmax(counts))
        rows.append({
            "class": class_names[label],
            "purity": purity,
            "closest other class": class_names[other],
            "share of neighbours": counts[other] / mine.size,
        })
    table = pd.DataFrame(rows).sort_values("purity", ascending=False, kind="stable")
    return table.reset_index(drop=True)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _join(words) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def separation_summary(table, *, distinct=("Trouser",), overlapping=("Pullover", "Coat", "Shirt")) -> str:
    """One paragraph, in words, that checks a reading of the map against ``neighbour_purity``.

    ``distinct`` are the classes claimed to stand apart and ``overlapping`` the ones
    claimed to mix (by default the original study's reading). The paragraph gives
    their purity ranks and says whether the ranks bear the claim out: every
    distinct class must rank above every overlapping one, and the overlapping
    classes must fill the bottom ranks.
    """
    table = table.reset_index(drop=True)
    rank = {name: i + 1 for i, name in enumerate(table["class"])}
    purity = dict(zip(table["class"], table["purity"]))
    closest = dict(zip(table["class"], table["closest other class"]))
    missing = [c for c in (*distinct, *overlapping) if c not in rank]
    if missing:
        raise ValueError(f"classes {missing} are not in the table.")

    def describe(name):
        return f"{name} ({_ordinal(rank[name])}, {purity[name]:.0%})"

    n = len(table)
    bottom = set(table["class"].iloc[n - len(overlapping):])
    holds = max(rank[c] for c in distinct) < min(rank[c] for c in overlapping) and set(overlapping) == bottom
    first = table.iloc[0]
    last = table.iloc[-1]
    text = (
        f"Ranked by neighbourhood purity in the map, the classes run from {first['class']} "
        f"({first['purity']:.0%} of neighbours share its label) down to {last['class']} "
        f"({last['purity']:.0%}; its most common foreign neighbour is {last['closest other class']}). "
        f"{_join(describe(c) for c in distinct)} against "
        f"{_join(describe(c) for c in overlapping)}: "
    )
    if holds:
        text += "the map bears out the reading that the former stands apart and the latter overlap."
    else:
        partners = _join(f"{c} with {closest[c]}" for c in overlapping)
        text += f"the map does not fully bear out that reading (closest foreign neighbours: {partners})."
    return text
