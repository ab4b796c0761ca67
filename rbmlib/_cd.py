"""The training step of the RBM: CD-k / PCD-k updates, in place, without allocations.

This is the loop that every RBM trial and refit runs, so it is written for speed:

* every intermediate lives in a buffer allocated once per batch shape;
* the data and model statistics are stacked, so the weight gradient
  ``<h v^T>_data - <h v^T>_model`` is one matrix product of (H, B + C) by
  (B + C, V), accumulated straight into W (or its velocity) by ``addmm_``;
* Bernoulli samples are ``uniform < p`` into a preallocated output
  (``rbmlib.conditionals``, which holds the formulas).

One CD-1 step costs three products of B rows (P(h | v_data), then P(v | h)
and P(h | v) of the negative phase) and the gradient product of 2B rows: about
10 * B * V * H flops. Everything else is elementwise work on (B, H) and (B, V)
arrays.

In bfloat16 (``dtype=torch.bfloat16``) the products run on a bf16 copy of W and
of the biases, refreshed once per update rather than cast per product; the
parameters, the velocity and the bias gradients stay in float32, so small
updates are not lost to bf16's 8-bit mantissa. The data arrive already in bf16.
"""

from __future__ import annotations

import torch

from rbmlib.conditionals import bernoulli, mean_hiddens, mean_visibles


class ContrastiveDivergence:
    """In-place CD-k / PCD-k updates of the tensors in ``params``.

    Parameters
    ----------
    params : dict of torch.Tensor
        ``W`` (H, V), ``b_h`` (H,), ``b_v`` (V,) and ``chain_h`` (C, H), updated in place.
    learning_rate, k, persistent, momentum, weight_decay
        As in :class:`rbmlib.BernoulliRBM`.
    generator : torch.Generator
        The only source of randomness.
    velocity : dict of torch.Tensor or None
        Momentum state (``W``, ``b_h``, ``b_v``) carried over from earlier epochs.
    dtype : torch.dtype or None
        The dtype of the products (and of the data given to :meth:`update`); None
        for the parameters' own dtype.
    sample_visible : bool
        Replace each mini-batch by binary states drawn from it, v ~ Bernoulli(batch).
    """

    def __init__(self, params, *, learning_rate, k, persistent, momentum, weight_decay, generator,
                 velocity=None, dtype=None, sample_visible=False):
        self.params = params
        self.sample_visible = sample_visible
        self.dtype = dtype or params["W"].dtype
        # What the products read: the parameters themselves, or one low-precision copy of them.
        self.low = params if self.dtype == params["W"].dtype else {
            name: params[name].to(self.dtype) for name in ("W", "b_h", "b_v", "chain_h")}
        self.learning_rate = learning_rate
        self.k = k
        self.persistent = persistent
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.generator = generator
        if momentum and velocity is None:
            velocity = {name: torch.zeros_like(params[name]) for name in ("W", "b_h", "b_v")}
        self.velocity = velocity if momentum else None
        self._buffers = {}

    def update(self, data, rows):
        """One update from the mini-batch ``data[rows]``; data (n, V) in ``dtype``, rows (B,) indices."""
        W, b_h, b_v = (self.params[name] for name in ("W", "b_h", "b_v"))
        chain_h = self.low["chain_h"]
        n_data = rows.shape[0]
        n_model = chain_h.shape[0] if self.persistent else n_data
        buf = self._workspace(n_data, n_model)
        stat_h, stat_v = buf["stat_h"], buf["stat_v"]  # (B + C, H), (B + C, V)
        v_data, v_model = stat_v[:n_data], stat_v[n_data:]
        h_prob_data, h_prob_model = stat_h[:n_data], stat_h[n_data:]

        torch.index_select(data, 0, rows, out=v_data)
        if self.sample_visible:
            self._sample(v_data, v_data)  # binary images drawn from the intensities, in place
        self._mean_hiddens(v_data, out=h_prob_data)
        # Negative phase: k block-Gibbs steps from the persistent chains or from the data.
        h = chain_h if self.persistent else self._sample(h_prob_data, buf["h"])
        for step in range(self.k):
            self._sample(self._mean_visibles(h, out=buf["p_v"]), v_model)
            self._mean_hiddens(v_model, out=h_prob_model)
            if self.persistent:
                h = self._sample(h_prob_model, chain_h)
            elif step < self.k - 1:
                h = self._sample(h_prob_model, buf["h"])

        # Sign and scale the model rows so that stat_h^T @ stat_v / B is the
        # difference of the two means; then one product gives the gradient.
        h_prob_model.mul_(-n_data / n_model)
        # Bias gradients are sums over the batch: accumulated in the parameters' dtype.
        grad_b_h = stat_h.sum(0, dtype=W.dtype).div_(n_data)  # (H,)
        grad_b_v = (v_data.sum(0, dtype=W.dtype).div_(n_data)
                    .sub_(v_model.sum(0, dtype=W.dtype).div_(n_model)))  # (V,)
        lr = self.learning_rate
        target = W if self.velocity is None else self.velocity["W"]
        if self.velocity is not None:
            target.mul_(self.momentum)
        elif self.weight_decay:
            W.mul_(1 - lr * self.weight_decay)
        self._add_weight_gradient(target, stat_h, stat_v, buf, alpha=lr / n_data)
        if self.velocity is None:
            b_h.add_(grad_b_h, alpha=lr)
            b_v.add_(grad_b_v, alpha=lr)
        else:
            vel = self.velocity
            if self.weight_decay:
                vel["W"].add_(W, alpha=-lr * self.weight_decay)
            vel["b_h"].mul_(self.momentum).add_(grad_b_h, alpha=lr)
            vel["b_v"].mul_(self.momentum).add_(grad_b_v, alpha=lr)
            for name in ("W", "b_h", "b_v"):
                self.params[name].add_(vel[name])
        self._refresh_low()

    def _add_weight_gradient(self, target, stat_h, stat_v, buf, *, alpha):
        """target += alpha * stat_h^T @ stat_v: one product, fused into target when dtypes agree."""
        if target.dtype == stat_h.dtype:
            target.addmm_(stat_h.T, stat_v, alpha=alpha)
        else:  # the bf16 product into its own buffer, widened into a float32 one, then added
            # (adding the bf16 buffer itself converts it into a fresh temporary on every update:
            # 19 ms against 6 for these two passes, 11,693 x 784 on one thread; the same numbers)
            grad = torch.mm(stat_h.T, stat_v, out=buf["grad_W"])
            target.add_(buf["grad_W_wide"].copy_(grad), alpha=alpha)

    def _refresh_low(self):
        """Copy the updated parameters (and chains) into the low-precision copy the products read."""
        if self.low is self.params:
            return
        for name in ("W", "b_h", "b_v"):
            self.low[name].copy_(self.params[name])
        self.params["chain_h"].copy_(self.low["chain_h"])  # the chains evolve in the copy

    # -------------------------------------------------------------- the math
    def _mean_hiddens(self, v, *, out):
        return mean_hiddens(v, self.low["W"], self.low["b_h"], out=out)

    def _mean_visibles(self, h, *, out):
        return mean_visibles(h, self.low["W"], self.low["b_v"], out=out)

    def _sample(self, p, out):
        """Bernoulli(p) into ``out``, with uniforms drawn into a float32 buffer of p's shape."""
        key = ("u", *p.shape)
        if key not in self._buffers:
            self._buffers[key] = torch.empty(p.shape, device=p.device)
        return bernoulli(p, self.generator, out=out, uniform=self._buffers[key])

    def _workspace(self, n_data, n_model):
        key = (n_data, n_model)
        if key not in self._buffers:
            W = self.params["W"]
            n_hidden, n_visible = W.shape
            new = lambda *shape: torch.empty(shape, device=W.device, dtype=self.dtype)  # noqa: E731
            self._buffers[key] = {
                "stat_h": new(n_data + n_model, n_hidden),
                "stat_v": new(n_data + n_model, n_visible),
                "h": new(n_data, n_hidden),
                "p_v": new(n_model, n_visible),
            }
            if self.dtype != W.dtype:
                self._buffers[key]["grad_W"] = new(n_hidden, n_visible)
                self._buffers[key]["grad_W_wide"] = torch.empty_like(W)
        return self._buffers[key]
