"""Device choice and seeded random generators shared by the RBM and the networks."""

from __future__ import annotations

import functools
import os
import platform
import time

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
    """Whether ``device`` multiplies bfloat16 matrices in hardware, faster than float32.

    CUDA: GPUs with bf16 tensor cores (compute capability 8.0 on); emulated
    bf16 is slower than float32 there. CPUs: AMX tiles or AVX512-BF16 (read
    from torch's own CPU probe, which sees what the operating system enables),
    *and* bf16 products measured faster than float32 ones on this CPU
    (:func:`_bfloat16_beats_float32`): the flag alone does not say it. One
    thread of an AMD EPYC with AVX512-BF16 multiplied bf16 at 343 GFLOP/s
    against 156 in float32; one of an Intel Xeon with AVX512-BF16 but no AMX
    at 68 against 108, and its RBM epochs took 1.8 times as long in torch's bf16
    as in float32. ``RBMLIB_BFLOAT16=native`` (or ``emulated``) skips the
    measurement, to repeat a run on the kernels it used (its trials record
    which: :func:`bfloat16_kind`). Everything else (MPS) answers False.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    forced = os.environ.get("RBMLIB_BFLOAT16", "")
    if forced:
        if forced not in ("native", "emulated"):
            raise ValueError(f"RBMLIB_BFLOAT16={forced!r}: use 'native' (torch's bf16 kernels) or "
                             "'emulated' (rbmlib._bf16), or unset it to measure.")
        return forced == "native"
    caps = cpu_capabilities()
    return bool(caps.get("amx_bf16") or caps.get("avx512_bf16")) and _bfloat16_beats_float32()


@functools.lru_cache(maxsize=None)
def _bfloat16_beats_float32() -> bool:
    """Whether a bf16 product of an RBM's shape takes less time than a float32 one (once per process).

    (batch 256) x (784 pixels) x (1,024 hidden units) on one thread, the best
    of 5 timings of each, interleaved: what one core gives, which neither the
    thread count nor a busy neighbour changes much (several threads on busy
    cores wait for each other, float32's kernels more than bf16's). About 0.1 s.
    """
    a, b = torch.rand(256, 784), torch.rand(784, 1024)
    best = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(5):
            for dtype in (torch.float32, torch.bfloat16):
                x, y = a.to(dtype), b.to(dtype)
                start = time.perf_counter()
                x @ y
                best[dtype] = min(best.get(dtype, float("inf")), time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return best[torch.bfloat16] < best[torch.float32]


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


def processor_name() -> str:
    """The CPU's model name as the operating system reports it ("AMD EPYC 9B14"); the machine type if it says none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine() or "unknown processor"


def machine_description(device: torch.device | None = None) -> str:
    """What a run must match to repeat its numbers: processor, torch threads, bf16 kernels, torch.

    For example ``"AMD EPYC 9B14; 1 thread; bfloat16 native; torch 2.14.1"``. On a
    GPU its name stands for the processor. Recorded with every trial and refit:
    the same seed gives the same result only with the same of each.
    """
    device = resolve_device("auto") if device is None else device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else processor_name()
    threads = torch.get_num_threads()
    return (f"{name}; {threads} thread{'s' if threads != 1 else ''}; bfloat16 {bfloat16_kind(device)}; "
            f"torch {torch.__version__.split('+')[0]}")
