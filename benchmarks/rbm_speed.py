"""How fast does the RBM train, next to the machine's limit and to the alternatives?

Measures, in one process and on the same data, at every hidden-layer size H and
batch size B:

* the matrix-multiply peak at the RBM's own shapes, (B x 784) @ (784 x H), in
  float32 and in bfloat16, timed the same way;
* ``rbmlib.BernoulliRBM`` with CD-1 and with persistent CD-1 (scikit-learn's
  kind), each in float32 and in bfloat16 (``precision="bfloat16"``);
* scikit-learn's ``BernoulliRBM`` (PCD-1, float32 input; CPU only);
* the PyTorch RBM libraries a user would pick instead (``pip install -e ".[bench]"``):
  ``learnergy`` (``RBM.fit``: CD-1 only; every batch it also computes the
  reconstruction error and a pseudo-likelihood, and it gets its gradient by
  autograd on the free-energy difference) and ``rbms`` (its per-update step
  ``fit_batch_pcd``, CD-1 and PCD-1, with the uncentred gradient; its own
  ``train`` loop also writes to an HDF5 file and a progress bar every update,
  so it is not what is timed). A missing peer is reported in one line and its
  rows say so in ``note``;
* the original study's formulation: CD-1 through autograd on the free-energy
  difference, ``torch.bernoulli`` sampling, an SGD optimiser, and the study's
  stochastic binarisation of each batch (re-implemented here from its description);
* ``transform`` of all 70,000 images at the largest size, with its memory.

Every row times training only (one epoch, after a warm-up fit on 8 batches),
not data loading. ``gflops`` counts the 10 * V * H flops per sample that a CD-1
or PCD-1 update performs (three products of B rows and the weight gradient's
product of 2B rows; ``rbmlib.report.speed``), whatever an implementation
actually executes, so it is useful work per second; ``fraction_of_peak``
divides it by the matmul peak of the row's precision, and ``peak / (10 V H)``
is the figure's arithmetic limit.

The CSV records the machine (CPU model, torch's AMX / AVX512-BF16 flags,
threads, torch, device) in every row, and ``<stem>_machine.json`` beside it
holds the same facts with the libraries' versions.

Run:  python benchmarks/rbm_speed.py            (writes results/benchmarks/rbm_speed.{csv,png}, ...)
      python benchmarks/rbm_speed.py --quick    (small sizes, a minute or two)
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import re
import resource
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import torch
import torch.nn.functional as F
from sklearn.neural_network import BernoulliRBM as SklearnRBM

import rbmlib
from rbmlib import BernoulliRBM, data, paths
from rbmlib._device import cpu_capabilities, native_bfloat16, resolve_device
from rbmlib.report import speed

N_VISIBLE = 784
LEARNING_RATE = 0.01
WARMUP_BATCHES = 8
# The peer libraries and the pins of the `bench` extra (pyproject.toml).
PEERS = {"learnergy": "learnergy==2.0.2", "rbms": "rbms==0.5.0"}
INSTALL_HINT = 'pip install -e ".[bench]" (or `make bench`, which does)'


class CannotRun(Exception):
    """A setting that an implementation cannot run; the message goes into the CSV's ``note``."""


# ----------------------------------------------------------------------------- data and machine
def load_images(n_rows):
    """Real training images if the data is here, else random ones of similar density."""
    try:
        X, _ = data.load_split("trainval", download=False)
        source = "fashion-mnist"
    except data.DataError:
        X = (np.random.RandomState(0).rand(60_000, N_VISIBLE) < 0.3).astype(np.float32)
        source = "random"
    reps = int(np.ceil(n_rows / len(X)))
    return np.ascontiguousarray(np.tile(X, (reps, 1))[:n_rows]), source


def cpu_model() -> str:
    """The CPU's model name: lscpu's "Model name", else /proc/cpuinfo, else torch's probe."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                             env={**os.environ, "LC_ALL": "C"}).stdout
        match = re.search(r"^Model name:\s*(.+)$", out, re.MULTILINE)
        if match:
            return match[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        if match:
            return match[1].strip()
    except OSError:
        pass
    return str(cpu_capabilities().get("cpu_name") or platform.processor() or platform.machine())


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_facts(device) -> dict:
    """What the numbers depend on: CPU, its bf16 units, threads, torch, device, library versions."""
    caps = cpu_capabilities()
    facts = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "cpu_model": cpu_model(),
        "amx_bf16": bool(caps.get("amx_bf16", False)),
        "amx_tile": bool(caps.get("amx_tile", False)),
        "avx512_bf16": bool(caps.get("avx512_bf16", False)),
        "native_bf16": bool(native_bfloat16(device)),
        "threads": torch.get_num_threads(),
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    versions = {"rbmlib": rbmlib.__version__, "scikit-learn": sklearn.__version__,
                **{name: _version(name) for name in PEERS}}
    return facts, versions


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- the limit
def matmul_gflops(batch, n_hidden, device, dtype=torch.float32, seconds=1.0):
    """Sustained GFLOP/s of (batch x 784) @ (784 x n_hidden) in ``dtype``, as 2 B V H flops a product."""
    a = torch.rand(batch, N_VISIBLE, device=device).to(dtype)
    b = torch.rand(N_VISIBLE, n_hidden, device=device).to(dtype)
    for _ in range(5):
        a @ b
    synchronize(device)
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    synchronize(device)
    return 2 * batch * N_VISIBLE * n_hidden * count / (time.perf_counter() - start) / 1e9


# ----------------------------------------------------------------------------- rbmlib, scikit-learn, original
def rbmlib_speed(X, n_hidden, batch, persistent, device, precision="float32"):
    """Samples/s of one epoch and the precision used (``precision_``)."""
    make = lambda: BernoulliRBM(n_hidden, batch_size=batch, n_iter=1, learning_rate=LEARNING_RATE,  # noqa: E731
                                persistent=persistent, device=str(device), precision=precision,
                                random_state=0)
    make().fit(X[: batch * WARMUP_BATCHES])  # warm-up: threads, allocator, kernels
    rbm = make().fit(X)
    return len(X) / rbm.history_[0]["seconds"], rbm.precision_  # the training loop only, not the monitoring


def sklearn_speed(X, n_hidden, batch):
    SklearnRBM(n_hidden, batch_size=batch, n_iter=1, random_state=0).fit(X[: batch * WARMUP_BATCHES])
    rbm = SklearnRBM(n_hidden, batch_size=batch, n_iter=1, learning_rate=LEARNING_RATE, random_state=0)
    start = time.perf_counter()
    rbm.fit(X)  # float32 input stays float32 in scikit-learn
    return len(X) / (time.perf_counter() - start), _precision(rbm.components_.dtype)


def _precision(dtype) -> str:
    return str(dtype).removeprefix("torch.")


class OriginalRBM(torch.nn.Module):
    """The original study's RBM: parameters trained by autograd on a free-energy loss."""

    def __init__(self, n_visible, n_hidden):
        super().__init__()
        self.W = torch.nn.Parameter(torch.randn(n_hidden, n_visible) * 0.1)
        self.v_bias = torch.nn.Parameter(torch.zeros(n_visible))
        self.h_bias = torch.nn.Parameter(torch.zeros(n_hidden))

    def forward(self, v):  # one Gibbs step (k=1) with torch.bernoulli samples
        h = torch.bernoulli(torch.sigmoid(F.linear(v, self.W, self.h_bias)))
        return torch.bernoulli(torch.sigmoid(F.linear(h, self.W.t(), self.v_bias)))

    def free_energy(self, v):  # mean over the batch, log1p(exp(.)) as in the study
        hidden = torch.log1p(torch.exp(F.linear(v, self.W, self.h_bias))).sum(1)
        return -((v * self.v_bias).sum(1) + hidden).mean()


def original_speed(X, n_hidden, batch, device):
    torch.manual_seed(0)
    rbm = OriginalRBM(N_VISIBLE, n_hidden).to(device)
    optimizer = torch.optim.SGD(rbm.parameters(), lr=LEARNING_RATE)
    batches = torch.from_numpy(X).to(device).split(batch)

    def step(images):
        v0 = torch.bernoulli(images)  # the study binarises every batch stochastically
        loss = rbm.free_energy(v0) - rbm.free_energy(rbm(v0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for images in batches[:WARMUP_BATCHES]:
        step(images)
    synchronize(device)
    start = time.perf_counter()
    for images in batches:
        step(images)
    synchronize(device)
    return len(X) / (time.perf_counter() - start), "float32"


# ----------------------------------------------------------------------------- the peers
def learnergy_speed(X, n_hidden, batch, persistent, device):
    """learnergy 2.0.2: ``RBM(...).fit(TensorDataset, batch_size, epochs=1)``, its only training API.

    Its fit shuffles through a DataLoader (per-row indexing and collation), runs
    the Gibbs chain with autograd recording, backpropagates the free-energy
    difference through an SGD optimiser, and computes the batch's reconstruction
    error and a pseudo-likelihood (two more free energies) every batch; none of
    that can be switched off. No progress bar. It has no persistent chains.
    """
    if persistent:
        raise CannotRun("learnergy has no persistent CD: RBM.fit always starts the chain at the data")
    from learnergy.models.bernoulli import RBM

    if device.type not in ("cpu", "cuda"):
        raise CannotRun(f"learnergy runs on cpu or cuda only, not {device.type}")
    # A TensorDataset in host memory: the DataLoader gathers each batch row by row
    # (cheap on the CPU, a kernel per row on a GPU) and fit copies it to the device.
    images = torch.from_numpy(X)
    dataset = torch.utils.data.TensorDataset(images, torch.zeros(len(images)))
    n_warm = batch * WARMUP_BATCHES
    warm = torch.utils.data.TensorDataset(images[:n_warm], torch.zeros(n_warm))
    make = lambda: RBM(n_visible=N_VISIBLE, n_hidden=n_hidden, steps=1, learning_rate=LEARNING_RATE,  # noqa: E731
                       use_gpu=device.type == "cuda")
    torch.manual_seed(0)
    make().fit(warm, batch_size=batch, epochs=1)
    model = make()
    synchronize(device)
    start = time.perf_counter()
    model.fit(dataset, batch_size=batch, epochs=1)
    synchronize(device)
    return len(X) / (time.perf_counter() - start), _precision(model.W.dtype)


def rbms_speed(X, n_hidden, batch, persistent, device):
    """rbms 0.5.0: its update ``fit_batch_pcd`` on a ``BBRBM``, with the SGD step of its ``train``.

    ``rbms.training.pcd.train`` needs an HDF5 archive, draws each batch with a
    fresh ``randperm`` of the whole data set, appends to the archive and moves a
    tqdm bar after every update; the loop here keeps its body (zero_grad,
    fit_batch_pcd, optimizer.step with ``maximize=True``) over one shuffled
    epoch. PCD-1: ``num_chains = batch_size`` persistent chains, as rbmlib and
    scikit-learn. CD-1: the chains restart at the batch (as train's
    ``training_type="cd"``, without its extra hidden pass). ``centered=False``,
    the plain gradient that the others compute (its default centres it: more
    elementwise work). Each update also normalises the gradient to unit norm.
    """
    with warnings.catch_warnings():  # rbms decorates its kernels with the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        from rbms.bernoulli_bernoulli.classes import BBRBM
        from rbms.training.pcd import fit_batch_pcd

    images = torch.from_numpy(X).to(device)
    weights = torch.ones(len(images), device=device)

    class _Data:  # init_parameters reads only .data (for the visible biases)
        data = images

    def epoch(rows_limit):
        torch.manual_seed(0)
        params = BBRBM.init_parameters(num_hiddens=n_hidden, dataset=_Data, device=device,
                                       dtype=torch.float32)
        params.init_grad()
        optimizer = torch.optim.SGD(params.parameters(), lr=LEARNING_RATE, maximize=True)
        chains = params.init_chains(num_samples=batch)
        order = torch.randperm(rows_limit, device=device)
        synchronize(device)
        start = time.perf_counter()
        with torch.no_grad():
            for rows in order.split(batch):
                v, w = images[rows], weights[rows]
                if not persistent:  # sample_state starts from the visible units
                    chains = {"visible": v, "weights": w}
                optimizer.zero_grad(set_to_none=False)
                chains, _ = fit_batch_pcd(batch=(v, w), parallel_chains=chains, params=params,
                                          gibbs_steps=1, beta=1.0, centered=False)
                optimizer.step()
        synchronize(device)
        return time.perf_counter() - start, params

    epoch(batch * WARMUP_BATCHES)
    seconds, params = epoch(len(images))
    return len(X) / seconds, _precision(params.weight_matrix.dtype)


# ----------------------------------------------------------------------------- the run
# The modules the drivers below import (rbms imports h5py only there).
_PEER_MODULES = {"learnergy": "learnergy.models.bernoulli", "rbms": "rbms.training.pcd"}


def _peer_available(name):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            importlib.import_module(_PEER_MODULES[name])
        return True, ""
    except ImportError as exc:
        print(f"{name} is not installed ({exc.name} missing), so its rows are empty: {INSTALL_HINT}", flush=True)
        return False, f"not installed: {INSTALL_HINT}"


def implementations(device):
    """(name, library, algorithm, function(X_fast, X_slow, H, B) -> (samples/s, precision)) to measure."""
    impls = []
    for precision, suffix in (("float32", ""), ("bfloat16", " (bf16)")):
        for persistent, algorithm in ((False, "CD-1"), (True, "PCD-1")):
            impls.append((f"rbmlib {algorithm}{suffix}", "rbmlib", algorithm,
                          lambda X, Xs, h, b, p=persistent, q=precision: rbmlib_speed(X, h, b, p, device, q)))
    impls.append(("original (autograd CD-1)", "original", "CD-1",
                  lambda X, Xs, h, b: original_speed(Xs, h, b, device)))
    if device.type == "cpu":  # scikit-learn runs on the CPU only
        impls.append(("scikit-learn PCD-1", "scikit-learn", "PCD-1",
                      lambda X, Xs, h, b: sklearn_speed(Xs, h, b)))
    peer_functions = {"learnergy": learnergy_speed, "rbms": rbms_speed}
    for peer, function in peer_functions.items():
        ok, why = _peer_available(peer)
        for persistent, algorithm in ((False, "CD-1"), (True, "PCD-1")):
            run_it = ((lambda X, Xs, h, b, f=function, p=persistent: f(Xs, h, b, p, device))
                      if ok else _cannot(why))
            impls.append((f"{peer} {algorithm}", peer, algorithm, run_it))
    return impls


def _cannot(why):
    def function(*_):
        raise CannotRun(why)
    return function


def run(sizes, batches, n_rows, n_rows_slow, device):
    X, source = load_images(n_rows)
    X_slow = X[:n_rows_slow]
    impls = implementations(device)
    rows = []
    for n_hidden in sizes:
        for batch in batches:
            peak32 = matmul_gflops(batch, n_hidden, device, torch.float32)
            peak16 = matmul_gflops(batch, n_hidden, device, torch.bfloat16)
            print(f"H={n_hidden:5d} B={batch:4d} matmul peak at this shape: float32 {peak32:.0f} GFLOP/s, "
                  f"bfloat16 {peak16:.0f} GFLOP/s", flush=True)
            for name, library, algorithm, function in impls:
                n = n_rows if library == "rbmlib" else n_rows_slow
                try:
                    samples_per_s, precision = function(X, X_slow, n_hidden, batch)
                    note = ""
                except CannotRun as exc:
                    samples_per_s, precision, note = np.nan, "", str(exc)
                except Exception as exc:  # noqa: BLE001 - a peer failing is a result, not a crash
                    if library not in PEERS:
                        raise
                    samples_per_s, precision = np.nan, ""
                    first_line = str(exc).splitlines()[0][:200] if str(exc) else ""
                    note = f"failed: {type(exc).__name__}: {first_line}"
                rows.append({"implementation": name, "library": library, "algorithm": algorithm,
                             "precision": precision, "n_components": n_hidden, "batch_size": batch,
                             "n_rows": n, "samples_per_s": samples_per_s,
                             "matmul_gflops_at_shape": peak32, "bf16_matmul_gflops_at_shape": peak16,
                             "note": note})
                gflops = speed.cd_flops_per_sample(n_hidden) * samples_per_s / 1e9
                shown = (f"{samples_per_s:10.0f} samples/s {gflops:6.1f} GFLOP/s"
                         if np.isfinite(samples_per_s) else f"{'-':>10s}            {note}")
                print(f"H={n_hidden:5d} B={batch:4d} {name:26s} {shown}", flush=True)
    table = pd.DataFrame(rows)
    table["matmul_peak_gflops"] = table["matmul_gflops_at_shape"].max()
    table["bf16_matmul_peak_gflops"] = table["bf16_matmul_gflops_at_shape"].max()
    facts, _ = machine_facts(device)
    for key, value in facts.items():
        table[key] = value
    table["data"] = source
    return speed.complete(table)


def transform_cost(n_hidden, device):
    """Seconds and extra peak memory to transform all 70,000 images at n_hidden units."""
    X, _ = load_images(70_000)
    rbm = BernoulliRBM(n_hidden, batch_size=256, n_iter=1, device=str(device), random_state=0)
    rbm.fit(X[:2048])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (ru_maxrss is KiB)
    start = time.perf_counter()
    features = rbm.transform(X)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"n_components": n_hidden, "seconds": seconds, "output_gib": features.nbytes / 2**30,
            "peak_rss_growth_gib": max(0.0, after - before), "input_gib": X.nbytes / 2**30}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and data, for a smoke run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(paths.BENCHMARKS_DIR), help="folder for the CSV, PNG and JSON")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    started = time.perf_counter()
    if args.quick:
        table = run([64, 256], [64], n_rows=4096, n_rows_slow=2048, device=device)
        memory = transform_cost(256, device)
    else:
        table = run([256, 1024, 4096], [64, 256], n_rows=50_000, n_rows_slow=10_000, device=device)
        memory = transform_cost(4096, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = speed.benchmark_stem(device.type)
    table.to_csv(out / f"{stem}.csv", index=False)
    speed.speed_figure(table).savefig(out / f"{stem}.png", dpi=150, bbox_inches="tight")
    facts, versions = machine_facts(device)
    (out / f"{stem}_machine.json").write_text(json.dumps(
        {**facts, "data": table["data"].iloc[0], "versions": versions,
         "matmul_peak_gflops": {"float32": float(table["matmul_peak_gflops"].iloc[0]),
                                "bfloat16": float(table["bf16_matmul_peak_gflops"].iloc[0])}},
        indent=2) + "\n")
    print(f"machine: {facts['cpu_model']}, {facts['threads']} threads, device {facts['device']}, "
          f"amx_bf16={facts['amx_bf16']} amx_tile={facts['amx_tile']} avx512_bf16={facts['avx512_bf16']}, "
          f"torch {facts['torch']}")
    speed.targets(table, echo=True)
    print("transform of 70,000 images at H={n_components}: {seconds:.1f} s, output {output_gib:.2f} GiB, "
          "peak memory grew {peak_rss_growth_gib:.2f} GiB (input {input_gib:.2f} GiB)".format(**memory))
    pd.DataFrame([memory]).to_csv(out / f"{stem}_transform.csv", index=False)
    print(f"wrote {out / stem}.csv, .png, _machine.json and _transform.csv in "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
