"""The RBM's conditionals and Bernoulli sampling, written once.

For the energy E(v, h) = -v.b_v - h.b_h - h W v the two layers are independent
given each other:

    P(h = 1 | v) = sigmoid(v W^T + b_h)        (n, H)
    P(v = 1 | h) = sigmoid(h W + b_v)          (n, V)

and summing out h gives the free energy F(v) = -v.b_v - sum_j softplus((v W^T + b_h)_j).
:class:`rbmlib.BernoulliRBM`, its training step (``rbmlib._cd``), AIS (at an
inverse temperature ``beta``) and the notebooks' Gibbs chains all call these,
so there is one implementation of each formula. Tensors only; ``out=`` writes
into a preallocated buffer, which the training step relies on.
"""

from __future__ import annotations

import torch


def hidden_input(v, W, b_h, *, out=None):
    """v W^T + b_h, the hidden units' total input: (n, V) @ (V, H) + (H,) -> (n, H)."""
    return torch.addmm(b_h, v, W.T, out=out)


def mean_hiddens(v, W, b_h, *, out=None):
    """P(h = 1 | v), shape (n, H)."""
    return hidden_input(v, W, b_h, out=out).sigmoid_()


def mean_visibles(h, W, b_v, *, beta=1.0, out=None):
    """P(v = 1 | h) = sigmoid(beta h W + b_v), shape (n, V).

    ``beta`` scales the weights only: AIS passes its own biases for the
    tempered model (``(1 - beta) b_base + beta b_v``); the RBM itself uses 1.
    """
    return torch.addmm(b_v, h, W, alpha=beta, out=out).sigmoid_()


def bernoulli(p, generator, *, out=None, uniform=None):
    """Binary states that are 1 with probability ``p``: uniforms below ``p``.

    Comparing with uniforms is several times faster than ``torch.bernoulli`` on
    the CPU. The uniforms are always float32, whatever ``p``'s dtype, so float32
    and float64 models draw the same states from the same seed.

    Parameters
    ----------
    p : Tensor of probabilities
    generator : torch.Generator
        The only source of randomness.
    out : Tensor, optional
        Where to write the states (in ``out``'s dtype); default a new tensor of ``p``'s dtype.
    uniform : Tensor of p's shape, float32, optional
        A buffer to draw the uniforms into, instead of allocating one.
    """
    if uniform is None:
        uniform = torch.rand(p.shape, generator=generator, device=p.device)
    else:
        uniform.uniform_(generator=generator)
    if out is None:
        return (uniform < p).to(p.dtype)
    return torch.lt(uniform, p, out=out)


def free_energy(v, W, b_h, b_v):
    """F(v) = -v.b_v - sum_j softplus((v W^T + b_h)_j) of each row, shape (n,)."""
    return -(v @ b_v) - torch.nn.functional.softplus(hidden_input(v, W, b_h)).sum(1)
