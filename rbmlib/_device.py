"""Device choice and seeded random generators shared by the RBM and the networks."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils import check_random_state


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return a usable torch device; ``"auto"`` prefers cuda, then mps, then cpu.

    Raises
    ------
    ValueError
        If ``device`` names a backend that this machine does not have.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'mps'."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use device='auto'.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' was requested but MPS is not available; use device='auto'.")
    return dev


def make_generator(random_state, device: torch.device) -> torch.Generator:
    """A torch generator on ``device`` seeded from ``random_state`` (None, int or RandomState).

    ``random_state=None`` draws a fresh seed, as scikit-learn does.
    """
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def torch_dtype_for(np_dtype) -> torch.dtype:
    """float32 stays float32; everything else computes in float64."""
    return torch.float32 if np.dtype(np_dtype) == np.float32 else torch.float64


# ----------------------------------------------------------------------------- precision

PRECISIONS = ("auto", "float32", "bfloat16")


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware.

    CPUs: AMX tiles or AVX512-BF16 (read from torch's own CPU probe, which
    sees what the operating system enables). CUDA: GPUs with bf16 tensor cores
    (compute capability 8.0 on); emulated bf16 is slower than float32 there.
    Everything else (MPS, CPUs without these units) answers False.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        caps = cpu_capabilities()
        return bool(caps.get("amx_bf16") or caps.get("avx512_bf16"))
    return False


def cpu_capabilities() -> dict:
    """torch's probe of the CPU (flags such as ``amx_bf16``); empty where torch has none."""
    probe = getattr(torch.cpu, "get_capabilities", None)
    try:
        return dict(probe()) if probe is not None else {}
    except RuntimeError:  # a torch built without the probe for this architecture
        return {}


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` becomes ``"bfloat16"`` where the device has native bf16, else ``"float32"``."""
    if precision == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return precision


def bfloat16_kind(device: torch.device | None = None) -> str:
    """How ``device`` (default: the one "auto" picks) multiplies in bf16: "native" or "emulated" (``rbmlib._bf16``)."""
    return "native" if native_bfloat16(resolve_device("auto") if device is None else device) else "emulated"


def bfloat16_products(precision: str, device: torch.device, *, autocast: bool = False):
    """The context in which ``precision``'s products run on ``device``.

    For "bfloat16" on a device without bf16 hardware (see :func:`native_bfloat16`),
    :class:`rbmlib._bf16.EmulatedBFloat16`: the same rounding at float32 speed,
    where torch's bf16 kernels would run in software many times slower. Else,
    with ``autocast`` (float32 tensors, the networks), ``torch.autocast`` to
    bf16 for "bfloat16"; and nothing to do for float32, or for tensors already in bf16.
    """
    import contextlib

    if precision != "bfloat16":
        return contextlib.nullcontext()
    if not native_bfloat16(device):
        from rbmlib._bf16 import EmulatedBFloat16

        return EmulatedBFloat16()
    return torch.autocast(device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()


def compute_dtype(precision: str, dtype: torch.dtype) -> torch.dtype:
    """The dtype matrix products run in: bfloat16, or the data's own dtype for ``"float32"``."""
    return torch.bfloat16 if precision == "bfloat16" else dtype
