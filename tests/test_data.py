"""Tests for rbmlib.data: file verification, sources, and split semantics.

Most tests use tiny IDX files or synthetic arrays; one test uses the real data
when Debian's copy (or an existing cache) is there.
"""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from rbmlib import data, paths

NAMES = {  # decompressed file name -> (train?, kind)
    "train-images-idx3-ubyte": (True, "images"),
    "train-labels-idx1-ubyte": (True, "labels"),
    "t10k-images-idx3-ubyte": (False, "images"),
    "t10k-labels-idx1-ubyte": (False, "labels"),
}


def write_idx(path, array, *, magic=None, gz=False):
    """Write ``array`` (uint8, 1-d or 3-d) as an IDX file; return the MD5 of its bytes."""
    array = np.asarray(array, dtype=np.uint8)
    magic = magic if magic is not None else (2051 if array.ndim == 3 else 2049)
    raw = struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return hashlib.md5(raw).hexdigest()


def tiny_arrays(name, rng):
    train, kind = NAMES[name]
    n = 20 if train else 10
    if kind == "images":
        return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    return np.arange(n, dtype=np.uint8) % 10


@pytest.fixture
def tiny(tmp_path):
    """Four tiny valid IDX files (plain and .gz) and their checksum table."""
    rng = np.random.default_rng(0)
    plain, gzd = tmp_path / "plain", tmp_path / "gz"
    plain.mkdir()
    gzd.mkdir()
    table = {}
    for name in NAMES:
        arr = tiny_arrays(name, rng)
        md5 = write_idx(plain / name, arr)
        assert write_idx(gzd / f"{name}.gz", arr, gz=True) == md5
        table[name] = (len(arr), md5)
    return plain, gzd, table


# --------------------------------------------------------------------------- verification

def test_good_files_verify(tiny):
    plain, gzd, table = tiny
    for name in NAMES:
        data._verify_file(plain / name, table)  # raises on failure
        data._verify_file(gzd / f"{name}.gz", table)


def test_truncated_file(tiny):
    plain, _, table = tiny
    path = plain / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(data.DataError) as err:
        data._verify_file(path, table)
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg
    assert "truncated: 1000 bytes, header says 15696" in msg  # 16 + 20*28*28
    assert "delete" in msg


def test_truncated_gzip(tiny):
    _, gzd, table = tiny
    path = gzd / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(data.DataError, match="t10k-images-idx3-ubyte.gz"):
        data._verify_file(path, table)


def test_wrong_magic(tiny):
    plain, _, table = tiny
    path = plain / "t10k-images-idx3-ubyte"
    write_idx(path, tiny_arrays(path.name, np.random.default_rng(0)), magic=2049)
    with pytest.raises(data.DataError) as err:
        data._verify_file(path, table)
    assert "t10k-images-idx3-ubyte" in str(err.value)
    assert "magic number 2049" in str(err.value)


def test_wrong_image_size(tiny):
    plain, _, table = tiny
    path = plain / "t10k-images-idx3-ubyte"
    write_idx(path, np.zeros((10, 28, 27)))
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte.*\(10, 28, 27\)"):
        data._verify_file(path, table)


def test_wrong_count(tiny):
    plain, _, table = tiny
    path = plain / "train-labels-idx1-ubyte"
    write_idx(path, np.zeros(7))
    with pytest.raises(data.DataError, match=r"train-labels-idx1-ubyte.*7 items, expected 20"):
        data._verify_file(path, table)


def test_wrong_checksum(tiny):
    plain, _, table = tiny
    name = "train-labels-idx1-ubyte"
    bad = dict(table, **{name: (table[name][0], "0" * 32)})
    with pytest.raises(data.DataError) as err:
        data._verify_file(plain / name, bad)
    assert name in str(err.value)
    assert "MD5" in str(err.value) and table[name][1] in str(err.value)


def test_label_out_of_range(tiny):
    plain, _, table = tiny
    path = plain / "t10k-labels-idx1-ubyte"
    labels = np.arange(10) % 10
    labels[3] = 12
    md5 = write_idx(path, labels)
    table = dict(table, **{path.name: (10, md5)})  # checksum right: the range check must catch it
    with pytest.raises(data.DataError) as err:
        data._verify_file(path, table)
    assert "t10k-labels-idx1-ubyte" in str(err.value)
    assert "label 12 out of range" in str(err.value)


def test_missing_file(tiny):
    plain, _, table = tiny
    path = plain / "t10k-labels-idx1-ubyte"
    path.unlink()
    with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte.*missing"):
        data._verify_file(path, table)


# --------------------------------------------------------------------------- ensure_data sources

@pytest.fixture
def tiny_sources(tiny, monkeypatch):
    """Point data.py at the tiny files: their table, Debian folder = the .gz folder."""
    plain, gzd, table = tiny
    monkeypatch.setattr(data, "_EXPECTED", table)
    monkeypatch.setattr(paths, "DEBIAN_DATA_DIR", gzd)
    monkeypatch.delenv("RBMLIB_DATA_DIR", raising=False)
    return plain, gzd, table


def test_ensure_data_from_debian_copy(tiny_sources, tmp_path):
    plain, _, _ = tiny_sources
    root = data.ensure_data(tmp_path / "cache", download=False)
    raw = root / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(NAMES)  # no temp files left
    for name in NAMES:
        assert (raw / name).read_bytes() == (plain / name).read_bytes()
    assert data.ensure_data(root, download=False) == root  # second call: already there


def test_ensure_data_prefers_rbmlib_data_dir(tiny_sources, tmp_path, monkeypatch):
    plain, _, _ = tiny_sources
    monkeypatch.setenv("RBMLIB_DATA_DIR", str(plain))
    monkeypatch.setattr(paths, "DEBIAN_DATA_DIR", tmp_path / "nowhere")
    root = data.ensure_data(tmp_path / "cache", download=False)
    assert (root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


def test_ensure_data_corrupt_local_copy(tiny_sources, tmp_path):
    _, gzd, _ = tiny_sources
    src = gzd / "train-images-idx3-ubyte.gz"
    src.write_bytes(src.read_bytes()[:300])
    with pytest.raises(data.DataError) as err:
        data.ensure_data(tmp_path / "cache", download=False)
    assert str(src) in str(err.value) and "apt-get install --reinstall" in str(err.value)
    assert not (tmp_path / "cache" / "FashionMNIST" / "raw" / src.stem).exists()


def test_interrupted_copy_leaves_nothing(tiny_sources, tmp_path, monkeypatch):
    def copy_half(fin, fout, length=0):
        fout.write(fin.read(100))
        raise KeyboardInterrupt

    monkeypatch.setattr(data.shutil, "copyfileobj", copy_half)
    with pytest.raises(KeyboardInterrupt):
        data.ensure_data(tmp_path / "cache", download=False)
    assert list((tmp_path / "cache" / "FashionMNIST" / "raw").iterdir()) == []


def test_ensure_data_corrupt_cached_file(tiny_sources, tmp_path):
    root = data.ensure_data(tmp_path / "cache", download=False)
    path = root / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(data.DataError) as err:
        data.ensure_data(root, download=False)
    assert str(path) in str(err.value) and "delete" in str(err.value)


def test_ensure_data_nothing_found(tiny_sources, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DEBIAN_DATA_DIR", tmp_path / "nowhere")
    with pytest.raises(data.DataError) as err:
        data.ensure_data(tmp_path / "cache", download=False)
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg
    assert "sudo apt-get install dataset-fashion-mnist" in msg
    assert "RBMLIB_DATA_DIR" in msg and "network" in msg


def test_ensure_data_download_fails(tiny_sources, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DEBIAN_DATA_DIR", tmp_path / "nowhere")

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(data, "FashionMNIST", offline)
    with pytest.raises(data.DataError) as err:
        data.ensure_data(tmp_path / "cache", download=True)
    msg = str(err.value)
    assert "Error downloading" in msg and "sudo apt-get install dataset-fashion-mnist" in msg
    assert "RBMLIB_DATA_DIR" in msg and "network" in msg


def test_load_raw_reads_through_torchvision(tiny_sources, tmp_path):
    plain, _, _ = tiny_sources
    images, labels = data.load_raw(False, data_dir=tmp_path / "cache", download=False)
    assert images.shape == (10, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10,) and labels.dtype in (np.uint8, np.int64)
    assert images.tobytes() == (plain / "t10k-images-idx3-ubyte").read_bytes()[16:]
    np.testing.assert_array_equal(labels, np.arange(10) % 10)


# --------------------------------------------------------------------------- load_split (synthetic)

N_TRAIN, N_TEST = 600, 100


def synthetic(n):
    """Balanced labels; pixels 0 and 1 encode the row number so rows can be traced."""
    images = np.full((n, 28, 28), 128, dtype=np.uint8)
    images[:, 0, 0] = np.arange(n) % 256
    images[:, 0, 1] = np.arange(n) // 256
    images[:, 27, 27] = 255
    return images, np.arange(n, dtype=np.int64) % 10


def row_ids(X):
    px = np.rint(X[:, :2] * 255).astype(int)
    return px[:, 0] + 256 * px[:, 1]


@pytest.fixture
def fake_raw(monkeypatch):
    monkeypatch.setattr(data, "load_raw",
                        lambda train, **kw: synthetic(N_TRAIN if train else N_TEST))


@pytest.mark.parametrize("split, n", [("train", 500), ("val", 100), ("trainval", 600),
                                      ("test", 100)])
def test_load_split_shapes(fake_raw, split, n):
    X, y = data.load_split(split, n_val=100)
    assert X.shape == (n, 784) and X.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert X.min() >= 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(X[:, 2], np.float32(128 / 255))


def test_train_val_partition_and_stratified(fake_raw):
    Xt, yt = data.load_split("train", n_val=100)
    Xv, yv = data.load_split("val", n_val=100)
    it, iv = row_ids(Xt), row_ids(Xv)
    assert not set(it) & set(iv)
    assert set(it) | set(iv) == set(range(N_TRAIN))
    np.testing.assert_array_equal(yt, it % 10)  # labels stay with their images
    assert np.all(np.bincount(yv) == 10) and np.all(np.bincount(yt) == 50)


def test_split_seed(fake_raw):
    a = row_ids(data.load_split("val", n_val=100, split_seed=0)[0])
    b = row_ids(data.load_split("val", n_val=100, split_seed=0)[0])
    c = row_ids(data.load_split("val", n_val=100, split_seed=1)[0])
    np.testing.assert_array_equal(a, b)
    assert set(a) != set(c)


def test_subset(fake_raw):
    X, y = data.load_split("train", n_val=100, subset=50)
    assert X.shape == (50, 784) and np.all(np.bincount(y) == 5)
    train_rows = set(row_ids(data.load_split("train", n_val=100)[0]))
    assert set(row_ids(X)) <= train_rows
    Xt, yt = data.load_split("test", subset=20)
    assert Xt.shape == (20, 784) and np.all(np.bincount(yt) == 2)


def test_binarize(fake_raw):
    X = data.load_split("test")[0]
    Xb = data.load_split("test", binarize=0.5)[0]
    assert Xb.dtype == np.float32 and set(np.unique(Xb)) <= {0.0, 1.0}
    np.testing.assert_array_equal(Xb, (X > 0.5).astype(np.float32))


def test_unknown_split(fake_raw):
    with pytest.raises(ValueError) as err:
        data.load_split("validation")
    assert all(name in str(err.value) for name in data.SPLITS)


@pytest.mark.parametrize("kwargs", [
    dict(n_val=0), dict(n_val=-5), dict(n_val=2.5), dict(n_val=N_TRAIN), dict(n_val=True),
    dict(subset=0), dict(subset=-1), dict(subset=3.0), dict(subset=501), dict(subset=5),
    dict(binarize=0), dict(binarize=1.0), dict(binarize="yes"),
])
def test_bad_arguments(fake_raw, kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        data.load_split("train", **{"n_val": 100, **kwargs})  # "train" has 500 rows


def test_constants():
    from torchvision.datasets import FashionMNIST

    assert data.CLASS_NAMES == tuple(FashionMNIST.classes)
    assert data.N_VAL == 10_000 and data.SPLITS == ("train", "val", "trainval", "test")


# --------------------------------------------------------------------------- real data

def _cached(folder):
    return all((folder / "FashionMNIST" / "raw" / name).is_file() for name in NAMES)


@pytest.mark.skipif(not paths.DEBIAN_DATA_DIR.is_dir() and not _cached(paths.DATA_DIR),
                    reason="no Fashion-MNIST: neither Debian's copy nor a cache in DATA_DIR")
def test_real_data(tmp_path_factory):
    root = (data.ensure_data(tmp_path_factory.mktemp("fmnist"), download=False)
            if paths.DEBIAN_DATA_DIR.is_dir() else data.ensure_data(paths.DATA_DIR, download=False))
    X, y = data.load_split("train", data_dir=root)
    assert X.shape == (50_000, 784) and X.dtype == np.float32
    assert np.all(np.bincount(y) == 5000)
    Xv, yv = data.load_split("val", data_dir=root)
    assert Xv.shape == (10_000, 784) and np.all(np.bincount(yv) == 1000)
    Xt, yt = data.load_split("test", data_dir=root)
    assert Xt.shape == (10_000, 784)
    assert np.array_equal(np.unique(yt), np.arange(10)) and np.all(np.bincount(yt) == 1000)
    assert 0.0 <= Xt.min() and Xt.max() == 1.0


def test_split_size_says_how_many_images_a_split_holds_without_reading_them():
    assert [data.split_size(s) for s in data.SPLITS] == [50_000, 10_000, 60_000, 10_000]
    assert data.split_size("train", n_val=5_000) == 55_000 and data.split_size("trainval", subset=2_000) == 2_000
