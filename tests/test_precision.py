"""The precision option: which hardware gets bfloat16, what a fit records, and what bf16 changes.

Parity of quality (validation accuracy of features and networks trained in bf16)
is measured on real data by ``benchmarks/precision_parity.py``; these tests pin
the mechanics on small arrays.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from rbmlib import BernoulliRBM, _device
from rbmlib._cd import ContrastiveDivergence
from rbmlib.nets import CNNClassifier, FNNClassifier
from rbmlib.tuning.rbm_cache import data_fingerprint, rbm_key

CPU = torch.device("cpu")


@pytest.fixture
def binary_data():
    rng = np.random.RandomState(0)
    prototypes = rng.rand(4, 64) < 0.4
    X = prototypes[rng.randint(0, 4, 400)] ^ (rng.rand(400, 64) < 0.05)  # 4 noisy patterns
    return X.astype(np.float32)


@pytest.fixture
def cpu_with(monkeypatch):
    """Pretend the CPU has (or lacks) the given flags, and that bf16 products beat float32 or not."""
    monkeypatch.delenv("RBMLIB_BFLOAT16", raising=False)

    def pretend(beats=True, **flags):
        monkeypatch.setattr(_device, "cpu_capabilities", lambda: dict(flags))
        monkeypatch.setattr(_device, "_bfloat16_beats_float32", lambda: beats)
    return pretend


@pytest.mark.parametrize("flags, beats, expected", [
    ({"amx_bf16": True, "avx512_bf16": True}, True, "bfloat16"),
    ({"avx512_bf16": True}, True, "bfloat16"),  # an AMD EPYC (Zen 4): 343 against 156 GFLOP/s
    ({"avx512_bf16": True}, False, "float32"),  # an Intel Xeon without AMX: 68 against 108
    ({"avx512_f": True, "avx2": True}, True, "float32"),  # no bf16 instructions: never native
    ({}, True, "float32"),
])
def test_auto_picks_bfloat16_only_on_cpus_that_multiply_it_natively_and_faster(cpu_with, flags, beats,
                                                                                expected):
    cpu_with(beats, **flags)
    assert _device.resolve_precision("auto", CPU) == expected
    assert _device.bfloat16_kind(CPU) == ("native" if expected == "bfloat16" else "emulated")
    assert _device.resolve_precision("float32", CPU) == "float32"  # explicit choices pass through
    assert _device.resolve_precision("bfloat16", CPU) == "bfloat16"


def test_rbmlib_bfloat16_names_the_kernels_without_measuring(cpu_with, monkeypatch):
    cpu_with(True, avx512_bf16=True)
    monkeypatch.setattr(_device, "_bfloat16_beats_float32", lambda: pytest.fail("measured"))
    monkeypatch.setenv("RBMLIB_BFLOAT16", "emulated")
    assert _device.bfloat16_kind(CPU) == "emulated"
    monkeypatch.setenv("RBMLIB_BFLOAT16", "native")
    assert _device.bfloat16_kind(CPU) == "native"
    monkeypatch.setenv("RBMLIB_BFLOAT16", "fast")
    with pytest.raises(ValueError, match="RBMLIB_BFLOAT16='fast': use 'native'"):
        _device.bfloat16_kind(CPU)


def test_the_measurement_runs_once_per_process_on_one_thread_and_restores_the_threads():
    threads = torch.get_num_threads()
    _device._bfloat16_beats_float32.cache_clear()
    first = _device._bfloat16_beats_float32()
    assert isinstance(first, bool) and _device._bfloat16_beats_float32() is first
    assert _device._bfloat16_beats_float32.cache_info().hits == 1
    assert torch.get_num_threads() == threads


def test_auto_on_cuda_asks_for_bf16_tensor_cores_and_mps_stays_float32(monkeypatch):
    asked = {}

    def supported(including_emulation=True):
        asked["including_emulation"] = including_emulation
        return True

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert _device.resolve_precision("auto", torch.device("cuda")) == "bfloat16"
    assert asked == {"including_emulation": False}  # emulated bf16 is slower than float32
    assert _device.resolve_precision("auto", torch.device("mps")) == "float32"


def test_this_machines_probe_reports_the_flags_that_decide():
    caps = _device.cpu_capabilities()
    if not caps:
        pytest.skip("torch has no CPU probe on this architecture")
    assert {"amx_bf16", "avx512_bf16"} <= set(caps)


def test_the_default_is_float32_and_unchanged(binary_data):
    default = BernoulliRBM(16, batch_size=20, n_iter=2, random_state=0).fit(binary_data)
    explicit = BernoulliRBM(16, batch_size=20, n_iter=2, random_state=0, precision="float32").fit(binary_data)
    assert default.precision_ == "float32"
    np.testing.assert_array_equal(default.components_, explicit.components_)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bfloat16_keeps_parameters_and_outputs_in_the_datas_dtype(binary_data, dtype):
    X = binary_data.astype(dtype)
    rbm = BernoulliRBM(16, batch_size=20, n_iter=2, random_state=0, precision="bfloat16").fit(X)
    assert rbm.precision_ == "bfloat16"
    assert rbm.components_.dtype == dtype and rbm.intercept_hidden_.dtype == dtype
    assert rbm.transform(X).dtype == dtype and rbm.score_samples(X).dtype == dtype
    assert set(np.unique(rbm.h_samples_)) <= {0.0, 1.0}  # the chains stay binary states


def test_bfloat16_learns_what_float32_learns(binary_data):
    """Same seed, same data: the two fits agree to bf16's rounding, not bit for bit."""
    fits = {p: BernoulliRBM(32, batch_size=20, learning_rate=0.05, n_iter=10, random_state=0,
                            persistent=False, precision=p).fit(binary_data)
            for p in ("float32", "bfloat16")}
    errors = {p: rbm.history_[-1]["reconstruction_error"] for p, rbm in fits.items()}
    assert errors["bfloat16"] < 0.5 * fits["bfloat16"].history_[0]["reconstruction_error"]  # it trains
    assert abs(errors["bfloat16"] - errors["float32"]) < 0.2 * errors["float32"]
    # Features of the two: different numbers, the same information for a linear model.
    F32, F16 = (rbm.transform(binary_data) for rbm in fits.values())
    assert not np.array_equal(F32, F16)
    r = np.corrcoef(F32.mean(1), F16.mean(1))[0, 1]
    assert r > 0.9


def test_bf16_transform_rounds_only_the_products(binary_data):
    rbm = BernoulliRBM(16, batch_size=20, n_iter=2, random_state=0, precision="bfloat16").fit(binary_data)
    exact = BernoulliRBM.from_params(rbm.components_, rbm.intercept_hidden_, rbm.intercept_visible_)
    diff = np.abs(rbm.transform(binary_data) - exact.transform(binary_data))
    assert 0 < diff.max() < 0.02  # bf16 keeps 8 bits: probabilities within a percent or two


def test_the_bf16_step_reads_one_copy_of_the_weights_refreshed_every_update(binary_data):
    W = torch.randn(8, 64) * 0.01
    params = {"W": W, "b_h": torch.zeros(8), "b_v": torch.zeros(64), "chain_h": torch.zeros(5, 8)}
    gen = torch.Generator().manual_seed(0)
    cd = ContrastiveDivergence(params, learning_rate=0.1, k=1, persistent=True, momentum=0.5,
                               weight_decay=1e-3, generator=gen, dtype=torch.bfloat16)
    data = torch.from_numpy(binary_data).to(torch.bfloat16)
    for first in range(0, 50, 5):
        before = params["W"].clone()
        cd.update(data, torch.arange(first, first + 5))
        assert params["W"].dtype == torch.float32 and not torch.equal(params["W"], before)
        for name in ("W", "b_h", "b_v"):  # the copy the products read follows the float32 master
            assert cd.low[name].dtype == torch.bfloat16
            torch.testing.assert_close(cd.low[name], params[name].to(torch.bfloat16), rtol=0, atol=0)
        torch.testing.assert_close(params["chain_h"], cd.low["chain_h"].float(), rtol=0, atol=0)


def test_bf16_handles_sparse_input_and_momentum(binary_data):
    import scipy.sparse as sp

    rbm = BernoulliRBM(16, batch_size=20, n_iter=2, momentum=0.5, random_state=0, precision="bfloat16")
    dense = rbm.fit(binary_data).components_.copy()
    sparse = rbm.fit(sp.csr_matrix(binary_data)).components_
    np.testing.assert_array_equal(dense, sparse)  # one dense batch at a time: the same updates


def test_an_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(InvalidParameterError, match="precision.*float32|bfloat16"):
        BernoulliRBM(precision="half").fit(np.zeros((4, 3)))


def test_the_precision_survives_a_pickle(binary_data):
    rbm = BernoulliRBM(16, batch_size=20, n_iter=1, random_state=0, precision="bfloat16").fit(binary_data)
    back = pickle.loads(pickle.dumps(rbm))
    assert back.precision_ == "bfloat16"
    np.testing.assert_array_equal(back.transform(binary_data), rbm.transform(binary_data))


def test_the_cache_key_holds_the_resolved_precision(cpu_with, binary_data):
    fp = data_fingerprint(binary_data)
    key = lambda p: rbm_key(BernoulliRBM(16, precision=p, random_state=0), fp)  # noqa: E731
    cpu_with(avx512_f=True)  # no native bf16: auto is float32
    assert key("auto") == key("float32") != key("bfloat16")
    cpu_with(amx_bf16=True)
    assert key("auto") == key("bfloat16") != key("float32")


@pytest.mark.parametrize("make", [
    lambda p: FNNClassifier(hidden_units=32, n_iter=3, batch_size=32, random_state=0, precision=p),
    lambda p: CNNClassifier(filters1=4, filters2=8, dense_units=16, n_iter=2, batch_size=32,
                            random_state=0, precision=p),
], ids=["fnn", "cnn"])
def test_networks_train_under_bf16_autocast_and_record_it(make, cpu_with):
    rng = np.random.RandomState(0)
    X = rng.rand(200, 784).astype(np.float32)
    y = (X[:, :392].mean(1) > X[:, 392:].mean(1)).astype(int)  # learnable: which half is brighter
    fits = {p: make(p).fit(X, y) for p in ("float32", "bfloat16")}
    assert fits["float32"].precision_ == "float32" and fits["bfloat16"].precision_ == "bfloat16"
    proba = fits["bfloat16"].predict_proba(X)
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    assert all(p.dtype == torch.float32 for p in fits["bfloat16"].module_.parameters())
    assert not np.array_equal(proba, fits["float32"].predict_proba(X))  # autocast really ran
    cpu_with()
    assert make("auto").fit(X, y).precision_ == "float32"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sample_visible_trains_on_binary_images_drawn_from_the_intensities(dtype):
    params = {"W": torch.randn(8, 64) * 0.01, "b_h": torch.zeros(8), "b_v": torch.zeros(64),
              "chain_h": torch.zeros(5, 8)}
    cd = ContrastiveDivergence(params, learning_rate=0.1, k=1, persistent=False, momentum=0.0,
                               weight_decay=0.0, generator=torch.Generator().manual_seed(0), dtype=dtype,
                               sample_visible=True)
    grey = torch.full((50, 64), 0.5, dtype=dtype)
    cd.update(grey, torch.arange(20))
    v_data = cd._workspace(20, 20)["stat_v"][:20]  # the positive phase's images
    assert set(v_data.unique().tolist()) == {0.0, 1.0}
    assert 0.35 < v_data.float().mean() < 0.65  # drawn with probability 0.5
    rbm = BernoulliRBM(8, batch_size=10, n_iter=1, random_state=0, sample_visible=True).fit(grey.float().numpy())
    plain = BernoulliRBM(8, batch_size=10, n_iter=1, random_state=0).fit(grey.float().numpy())
    assert not np.array_equal(rbm.components_, plain.components_)


def test_the_machine_description_names_what_a_rerun_must_match(monkeypatch):
    monkeypatch.setenv("RBMLIB_BFLOAT16", "emulated")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        text = _device.machine_description(CPU)
    finally:
        torch.set_num_threads(threads)
    processor, *rest = text.split("; ")
    assert processor == _device.processor_name() and processor
    assert rest == ["1 thread", "bfloat16 emulated", f"torch {torch.__version__.split('+')[0]}"]
