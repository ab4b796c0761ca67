"""Fashion-MNIST: find or fetch the raw files, verify them, and cut fixed splits.

The four IDX files live where torchvision expects them,
``<data_dir>/FashionMNIST/raw/``, and are taken, in order, from: that folder
(if they are already there and verified), a local copy (``$RBMLIB_DATA_DIR``
or Debian's ``dataset-fashion-mnist`` package), or torchvision's download.
Every file is checked (IDX header, length, label range, MD5) before it is used,
so a truncated or foreign file fails loudly instead of training on garbage.

>>> X, y = load_split("train")          # (50000, 784) float32 in [0, 1], (50000,) int64
>>> X_val, y_val = load_split("val")    # the 10,000 held-out training images
"""

from __future__ import annotations

import gzip
import hashlib
import numbers
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import check_scalar
from torchvision.datasets import FashionMNIST

from . import paths

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
N_VAL = 10_000
SPLITS = ("train", "val", "trainval", "test")

# name -> (number of items, MD5 of the *decompressed* file), from
# `zcat FILE.gz | md5sum` on /usr/share/datasets/fashion-mnist (Debian package
# dataset-fashion-mnist 0.0~git20200523.55506a9-1). Debian's .gz files do not
# match torchvision's MD5s (FashionMNIST.resources) only because their gzip
# header was rewritten (file name dropped, mtime reset): putting back the name
# and upstream's mtime (1504176606 for train-*, 1504176627 for t10k-*, i.e.
# 2017-08-31) reproduces all four of torchvision's MD5s byte for byte, so these
# are the contents of the real files. Decompressed MD5s are used because they
# do not depend on how a copy was compressed.
_EXPECTED: dict[str, tuple[int, str]] = {
    "train-images-idx3-ubyte": (60_000, "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train-labels-idx1-ubyte": (60_000, "9018921c3c673c538a1fc5bad174d6f9"),
    "t10k-images-idx3-ubyte": (10_000, "8181f5470baa50b63fa0f6fddb340f0a"),
    "t10k-labels-idx1-ubyte": (10_000, "15d484375f8d13e6eb1aabb0c3f46965"),
}
_MAGIC = {"images": 2051, "labels": 2049}  # IDX: 0x0803 (ubyte, 3-d) / 0x0801 (ubyte, 1-d)
_HOW_TO_GET = (
    "To get Fashion-MNIST, do one of: (a) on Debian/Ubuntu, "
    "`sudo apt-get install dataset-fashion-mnist`; (b) set RBMLIB_DATA_DIR to a folder "
    "holding the four files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (gzipped or not); "
    "(c) connect to the network so that torchvision can download them"
)


class DataError(RuntimeError):
    """Fashion-MNIST is missing or corrupt; the message names the file and the fix."""


def _verify_file(path, expected, *, fix=None):
    """Raise DataError unless ``path`` is a sound IDX file that matches ``expected``.

    Parameters
    ----------
    path : path-like
        An IDX file, gzipped if its name ends in ``.gz`` (checked as decompressed).
    expected : dict
        ``{decompressed file name: (n items, MD5 of the decompressed bytes)}``.
    fix : str, optional
        What the user should do; the default is to delete the file.
    """
    path = Path(path)
    name = path.name.removesuffix(".gz")
    fix = fix or f"delete {path} so that it is fetched again"

    def fail(problem):
        return DataError(f"Fashion-MNIST file {path}: {problem}. Fix: {fix}.")

    if not path.is_file():
        raise fail("file is missing")
    if name not in expected:
        raise fail(f"unexpected file name; expected one of {sorted(expected)}")
    n_expected, md5_expected = expected[name]
    kind = "images" if "-images-" in name else "labels"
    ndim = 3 if kind == "images" else 1
    header_len = 4 + 4 * ndim

    # Stream the file: one pass gives the length, the MD5 and the label range
    # without holding a second copy of the images in memory.
    md5, size, max_label = hashlib.md5(), 0, 0
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            header = f.read(header_len)
            md5.update(header)
            size = len(header)
            if size < header_len:
                raise fail(f"truncated: {size} bytes, shorter than the IDX header")
            magic, *dims = struct.unpack(f">{1 + ndim}I", header)
            if magic != _MAGIC[kind]:
                raise fail(f"wrong magic number {magic}, expected {_MAGIC[kind]} for IDX {kind}")
            if kind == "images" and dims[1:] != [28, 28]:
                raise fail(f"header dimensions {tuple(dims)}, expected (n, 28, 28)")
            for chunk in iter(lambda: f.read(1 << 20), b""):
                md5.update(chunk)
                size += len(chunk)
                if kind == "labels":
                    max_label = max(max_label, max(chunk))
    except (OSError, EOFError, zlib.error) as exc:  # e.g. a gzip cut short
        raise fail(f"unreadable ({exc})") from exc

    implied = header_len + int(np.prod(dims))
    if size < implied:
        raise fail(f"truncated: {size} bytes, header says {implied}")
    if size > implied:
        raise fail(f"too long: {size} bytes, header says {implied}")
    if dims[0] != n_expected:
        raise fail(f"header says {dims[0]} items, expected {n_expected}")
    if max_label > 9:
        raise fail(f"label {max_label} out of range 0..9")
    if md5.hexdigest() != md5_expected:
        raise fail(f"MD5 checksum {md5.hexdigest()} != expected {md5_expected}")


def _local_copy(name):
    """The first local copy of ``name`` (plain or .gz), or None if there is none."""
    folders = [Path(os.environ["RBMLIB_DATA_DIR"])] if os.environ.get("RBMLIB_DATA_DIR") else []
    folders.append(Path(paths.DEBIAN_DATA_DIR))
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _install_copy(src, dst):
    """Verify ``src`` and decompress it to ``dst``, atomically (temp file, then rename)."""
    fix = (f"replace {src} with a good copy (for Debian's copy: "
           "`sudo apt-get install --reinstall dataset-fashion-mnist`)")
    _verify_file(src, _EXPECTED, fix=fix)
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as dst so that os.replace is a rename, never a cross-device copy;
    # the pid keeps two processes filling one cache from writing the same temp file.
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    try:
        opener = gzip.open if src.suffix == ".gz" else open
        with opener(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ensure_data(data_dir=None, *, download=True) -> Path:
    """Make sure the four verified raw files are in ``<data_dir>/FashionMNIST/raw``.

    Parameters
    ----------
    data_dir : path-like, optional
        torchvision ``root``; defaults to ``paths.DATA_DIR``.
    download : bool
        Whether torchvision may download the files if no local copy is found.

    Returns
    -------
    data_dir : Path

    Raises
    ------
    DataError
        If a file is corrupt, or cannot be found nor downloaded.
    """
    data_dir = Path(paths.DATA_DIR if data_dir is None else data_dir).expanduser()
    raw = data_dir / "FashionMNIST" / "raw"
    missing = []
    for name in _EXPECTED:
        if (raw / name).exists():
            _verify_file(raw / name, _EXPECTED)
        elif (src := _local_copy(name)) is not None:
            _install_copy(src, raw / name)
        else:
            missing.append(name)
    if not missing:
        return data_dir
    if not download:
        raise DataError(f"Fashion-MNIST files {missing} are not in {raw}, no local copy "
                        f"was found, and download=False. {_HOW_TO_GET}.")
    try:
        for train in (True, False):
            FashionMNIST(root=data_dir, train=train, download=True)
    except Exception as exc:  # no network, server down, bad checksum...
        raise DataError(f"Could not download Fashion-MNIST into {raw} ({exc}). "
                        f"{_HOW_TO_GET}.") from exc
    for name in missing:
        _verify_file(raw / name, _EXPECTED)
    return data_dir


def load_raw(train: bool, *, data_dir=None, download=True) -> tuple[np.ndarray, np.ndarray]:
    """Load the official training (60,000) or test (10,000) set.

    Returns
    -------
    images : ndarray of shape (n, 28, 28), uint8
    labels : ndarray of shape (n,), int64
    """
    root = ensure_data(data_dir, download=download)
    ds = FashionMNIST(root=root, train=train, download=False)
    return ds.data.numpy(), ds.targets.numpy()


def _split_rows(split, y, n_val, split_seed):
    """Row indices of ``split`` within its source file, or None for all rows."""
    if split in ("trainval", "test"):
        return None
    # Stratified: both parts need a member of every class, hence the bounds.
    check_scalar(n_val, "n_val", numbers.Integral, min_val=len(CLASS_NAMES), max_val=len(y) - len(CLASS_NAMES))
    train, val = train_test_split(np.arange(len(y)), test_size=n_val, stratify=y,
                                  random_state=split_seed)
    return np.sort(train if split == "train" else val)


def pick_per_class(y, n_per_class=1, *, random_state=0) -> np.ndarray:
    """Row indices of ``n_per_class`` random examples of every class, grouped by class.

    Each class's rows are permuted by one generator seeded with ``random_state``
    and the first ``n_per_class`` kept, so for one seed the picks are nested:
    the 10 of a class are among its 100 (a change with ``n_per_class`` is not
    also a change of images).

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Integer labels.
    n_per_class : int
        Examples per class; every class must have at least this many.
    random_state : int
        Seeds the choice.

    Returns
    -------
    ndarray of shape (n_classes * n_per_class,)
        Indices ordered by class (all of class 0, then class 1, ...), ascending within a class.

    Raises
    ------
    ValueError
        A class has fewer than ``n_per_class`` rows.
    """
    y = np.asarray(y)
    rng = np.random.RandomState(random_state)
    picks = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if len(members) < n_per_class:
            raise ValueError(f"class {label} has {len(members)} examples; {n_per_class} requested.")
        # choice without replacement is permutation()[:n]: the same draws for every n
        picks.append(np.sort(rng.choice(members, n_per_class, replace=False)))
    return np.concatenate(picks)


def split_size(split="train", *, n_val=N_VAL, subset=None) -> int:
    """How many images ``load_split(split, n_val=n_val, subset=subset)`` returns, without reading any."""
    n_file, n_test = _EXPECTED["train-labels-idx1-ubyte"][0], _EXPECTED["t10k-labels-idx1-ubyte"][0]
    n = {"train": n_file - n_val, "val": n_val, "trainval": n_file, "test": n_test}[split]
    return n if subset is None else subset


@validate_params({
    "split": [StrOptions(set(SPLITS))],
    "n_val": [Interval(numbers.Integral, 1, None, closed="left")],  # the upper bound depends on the data
    "subset": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "binarize": [Interval(numbers.Real, 0, 1, closed="neither"), None],
}, prefer_skip_nested_validation=True)
def load_split(split="train", *, n_val=N_VAL, split_seed=0, subset=None, binarize=None,
               data_dir=None, download=True) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of Fashion-MNIST as flat float32 pixels.

    Parameters
    ----------
    split : {"train", "val", "trainval", "test"}
        "train": 60,000 - n_val training images; "val": the other n_val;
        "trainval": all 60,000 (for the final refit); "test": the official 10,000.
    n_val : int
        Size of the validation set, cut from the training file by a stratified
        split (``train_test_split(stratify=y, random_state=split_seed)``).
    split_seed : int
        Seeds the train/val split and the subset.
    subset : int, optional
        Keep a stratified random ``subset`` rows of the split (for smoke runs).
    binarize : float in (0, 1), optional
        If given, return ``(X > binarize)`` as 0.0 / 1.0.
    data_dir, download
        See :func:`ensure_data`.

    Returns
    -------
    X : ndarray of shape (n, 784), float32, in [0, 1] (pixels / 255)
    y : ndarray of shape (n,), int64
    """
    images, y = load_raw(split != "test", data_dir=data_dir, download=download)
    rows = _split_rows(split, y, n_val, split_seed)
    if subset is not None:
        n = len(y) if rows is None else len(rows)
        check_scalar(subset, "subset", numbers.Integral, min_val=len(CLASS_NAMES), max_val=n)  # stratified: one per class
        if subset < n:  # train_test_split refuses an empty test part
            pool = np.arange(n) if rows is None else rows
            rows, _ = train_test_split(pool, train_size=subset, stratify=y[pool],
                                       random_state=split_seed)
            rows = np.sort(rows)
    if rows is not None:
        images, y = images[rows], y[rows]  # drops our reference to the full file

    X = images.reshape(len(images), -1).astype(np.float32)
    del images
    X /= 255.0
    if binarize is not None:
        X = (X > binarize).astype(np.float32)
    return X, y.astype(np.int64, copy=False)
