"""bfloat16 products on a CPU that has no fast hardware for them, at float32 speed.

What ``precision="bfloat16"`` asks for is what bf16 hardware (AMX, AVX512-BF16,
tensor cores) computes: operands rounded to bf16, products accumulated in
float32, the result rounded to bf16. A CPU without such units runs torch's bf16
kernels in software, about 15 times slower than float32 (1.6 against 26 GFLOP/s
on one thread of an AVX2-only AMD EPYC), and some CPUs with AVX512-BF16 but
no AMX run them slower than float32 too (:func:`rbmlib._device.native_bfloat16`
measures it). :class:`EmulatedBFloat16` computes the
same thing with float32 kernels instead: it rounds each product's operands to
bf16, multiplies in float32 and rounds the result (and, in training, each
gradient of a product) to bf16. The numbers differ from native bf16 only in the
order of the float32 accumulation, as they differ between thread counts.

It serves both ways that rbmlib multiplies in bf16:

* tensors already in bf16 (the RBM's training and features): their products
  return bf16, into ``out=`` where given;
* float32 tensors under what would be ``torch.autocast`` (the networks): the
  products of linear and convolutional layers take and give values that bf16
  can hold, in float32 tensors, with gradients rounded likewise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

#: The products autocast runs in bf16 on a CPU (those rbmlib calls).
_PRODUCTS = {F.linear, F.conv2d, torch.addmm, torch.mm, torch.matmul, torch.Tensor.matmul,
             torch.Tensor.__matmul__, torch.Tensor.mm, torch.Tensor.addmm}


class _Round(torch.autograd.Function):
    """x rounded to the nearest bf16 value, kept in x's dtype; the gradient rounded likewise."""

    @staticmethod
    def forward(ctx, x):
        return x.to(torch.bfloat16).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.to(torch.bfloat16).to(grad.dtype)


def _operand(x):
    """A product's operand as float32 holding bf16 values (other arguments unchanged)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return x
    if x.dtype == torch.bfloat16:
        return x.float()  # exact: every bf16 value is a float32 value
    return _Round.apply(x) if torch.is_grad_enabled() and x.requires_grad else x.to(torch.bfloat16).float()


class EmulatedBFloat16(TorchFunctionMode):
    """Within it, bf16 products (see the module) run as float32 products of bf16-rounded operands."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func not in _PRODUCTS:
            return func(*args, **kwargs)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        in_bf16 = any(t.dtype == torch.bfloat16 for t in tensors)
        out = kwargs.pop("out", None)
        result = func(*(_operand(a) for a in args), **{k: _operand(v) for k, v in kwargs.items()})
        if in_bf16:  # the RBM's bf16 tensors: a bf16 result, as the bf16 kernel gives
            return result.to(torch.bfloat16) if out is None else out.copy_(result)
        rounded = _Round.apply(result) if result.requires_grad else result.to(torch.bfloat16).float()
        return rounded if out is None else out.copy_(rounded)
