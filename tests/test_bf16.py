"""rbmlib._bf16: bfloat16 products on float32 kernels compute what bf16 kernels compute."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rbmlib import BernoulliRBM, _device
from rbmlib._bf16 import EmulatedBFloat16
from rbmlib.nets import FNNClassifier

CPU = torch.device("cpu")
ULP = 2.0 ** -7  # bf16's relative spacing: the most two roundings of one float32 sum can differ


def _bf16_values(t: torch.Tensor) -> bool:
    """Whether every value of float32 ``t`` is a bfloat16 value."""
    return torch.equal(t, t.to(torch.bfloat16).float())


@pytest.fixture
def without_bf16_hardware(monkeypatch):
    monkeypatch.setattr(_device, "native_bfloat16", lambda device: False)


def test_products_of_bf16_tensors_match_torchs_bf16_kernels():
    g = torch.Generator().manual_seed(0)
    v, W, b = (torch.rand(s, generator=g).to(torch.bfloat16) for s in ((32, 50), (40, 50), (40,)))
    native = torch.addmm(b, v, W.T)
    out = torch.empty(32, 40, dtype=torch.bfloat16)
    with EmulatedBFloat16():
        emulated = torch.addmm(b, v, W.T, out=out)
        product = v @ W.T
    assert emulated is out and out.dtype == torch.bfloat16 and product.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), native.float(), rtol=ULP, atol=0)
    torch.testing.assert_close(product.float(), (v @ W.T).float(), rtol=ULP, atol=0)


def test_float32_layers_see_and_give_bf16_values_with_bf16_gradients_as_under_autocast():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 30, generator=g)
    W = torch.randn(20, 30, generator=g, requires_grad=True)
    with EmulatedBFloat16():
        y = F.linear(x, W)
    assert y.dtype == torch.float32 and _bf16_values(y.detach())
    (y ** 2).sum().backward()
    assert _bf16_values(W.grad)
    W2 = W.detach().clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y2 = F.linear(x, W2)
    (y2.float() ** 2).sum().backward()
    torch.testing.assert_close(y.detach(), y2.float().detach(), rtol=ULP, atol=0)
    torch.testing.assert_close(W.grad, W2.grad, rtol=4 * ULP, atol=1e-3)


def test_other_operations_are_left_alone():
    x = torch.randn(4, 4)
    with EmulatedBFloat16():
        assert torch.equal(torch.sigmoid(x), x.sigmoid()) and torch.equal(x + 1, 1 + x)


def test_the_context_is_the_emulation_only_where_bf16_hardware_is_missing(monkeypatch):
    monkeypatch.setattr(_device, "native_bfloat16", lambda device: False)
    assert isinstance(_device.bfloat16_products("bfloat16", CPU), EmulatedBFloat16)
    assert isinstance(_device.bfloat16_products("float32", CPU), contextlib.nullcontext)
    monkeypatch.setattr(_device, "native_bfloat16", lambda device: True)
    assert isinstance(_device.bfloat16_products("bfloat16", CPU, autocast=True), torch.autocast)
    assert isinstance(_device.bfloat16_products("bfloat16", CPU), contextlib.nullcontext)


def _fit_rbm(X):
    return BernoulliRBM(n_components=24, n_iter=2, batch_size=20, precision="bfloat16", random_state=0).fit(X)


def test_an_rbm_trained_emulated_learns_what_torchs_bf16_kernels_learn(monkeypatch):
    X = (np.random.RandomState(0).rand(200, 40) < 0.3).astype(np.float32)
    monkeypatch.setattr(_device, "native_bfloat16", lambda device: True)  # torch's own bf16 kernels
    native = _fit_rbm(X)
    monkeypatch.setattr(_device, "native_bfloat16", lambda device: False)
    emulated = _fit_rbm(X)
    # Sampling amplifies last-bit differences of the sums, so compare what was learned, not bits.
    np.testing.assert_allclose(emulated.components_, native.components_, atol=0.05)
    np.testing.assert_allclose(emulated.transform(X), native.transform(X), atol=0.05)
    assert emulated.precision_ == "bfloat16"


def test_a_network_trained_emulated_follows_autocast(monkeypatch):
    rng = np.random.RandomState(0)
    X = rng.rand(300, 20).astype(np.float32)
    y = X[:, :3].argmax(1)
    fit = lambda: FNNClassifier(hidden_units=16, n_iter=3, precision="bfloat16", random_state=0).fit(X, y)  # noqa: E731
    monkeypatch.setattr(_device, "native_bfloat16", lambda device: True)
    native = fit()
    monkeypatch.setattr(_device, "native_bfloat16", lambda device: False)
    emulated = fit()
    losses = [[r["train_loss"] for r in m.history_] for m in (native, emulated)]
    np.testing.assert_allclose(losses[1], losses[0], rtol=0.01)
