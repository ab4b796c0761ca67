"""How fast does the RBM train, next to the machine's limit and to the alternatives?

Measures, in one process and on the same data:

* the matrix-multiply peak at the RBM's own shapes, (B x 784) @ (784 x H);
* ``rbmlib.BernoulliRBM`` with CD-1 and with persistent CD-1 (scikit-learn's kind);
* scikit-learn's ``BernoulliRBM`` (PCD-1);
* the original study's formulation: CD-1 through autograd on the free-energy
  difference, ``torch.bernoulli`` sampling, an SGD optimiser, and the study's
  stochastic binarisation of each batch (re-implemented here from its description);
* ``transform`` of all 70,000 images at the largest size, with its memory.

The project's target counts 8 * V * H flops per CD-1 sample (four matrix
products), so ``gflops`` and ``fraction_of_peak`` use that count and ``peak /
(8 V H)`` is the plotted limit. CD-1 in fact performs five products' worth, 10 *
V * H (the weight gradient sums over the data rows and the model rows), so the
true share of the peak is 10/8 of ``fraction_of_peak``; ``rbmlib.report.speed.targets``
shows both.

Run:  python benchmarks/rbm_speed.py            (writes results/benchmarks/rbm_speed.{csv,png})
      python benchmarks/rbm_speed.py --quick    (small sizes, a few seconds)
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.neural_network import BernoulliRBM as SklearnRBM

from rbmlib import BernoulliRBM, data, paths
from rbmlib.report import speed
from rbmlib._device import resolve_device

N_VISIBLE = 784


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


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(batch, n_hidden, device, seconds=1.0):
    a = torch.rand(batch, N_VISIBLE, device=device)
    b = torch.rand(N_VISIBLE, n_hidden, device=device)
    for _ in range(5):
        a @ b
    synchronize(device)
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    synchronize(device)
    return 2 * batch * N_VISIBLE * n_hidden * count / (time.perf_counter() - start) / 1e9


def rbmlib_speed(X, n_hidden, batch, persistent, device):
    make = lambda n: BernoulliRBM(n_hidden, batch_size=batch, n_iter=1, learning_rate=0.01,  # noqa: E731
                                  persistent=persistent, device=str(device), random_state=0)
    make(batch * 8).fit(X[: batch * 8])  # warm-up: threads, allocator, kernels
    rbm = make(len(X)).fit(X)
    return len(X) / rbm.history_[0]["seconds"]  # the training loop only, not the monitoring


def sklearn_speed(X, n_hidden, batch):
    SklearnRBM(n_hidden, batch_size=batch, n_iter=1, random_state=0).fit(X[: batch * 8])
    start = time.perf_counter()
    SklearnRBM(n_hidden, batch_size=batch, n_iter=1, learning_rate=0.01, random_state=0).fit(X)
    return len(X) / (time.perf_counter() - start)


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
    optimizer = torch.optim.SGD(rbm.parameters(), lr=0.01)
    batches = torch.from_numpy(X).to(device).split(batch)

    def step(images):
        v0 = torch.bernoulli(images)  # the study binarises every batch stochastically
        loss = rbm.free_energy(v0) - rbm.free_energy(rbm(v0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for images in batches[:8]:
        step(images)
    synchronize(device)
    start = time.perf_counter()
    for images in batches:
        step(images)
    synchronize(device)
    return len(X) / (time.perf_counter() - start)


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
    return {"seconds": seconds, "output_gib": features.nbytes / 2**30,
            "peak_rss_growth_gib": max(0.0, after - before), "input_gib": X.nbytes / 2**30}


def run(sizes, batches, n_rows, n_rows_slow, device):
    X, source = load_images(n_rows)
    X_slow = X[:n_rows_slow]
    rows = []
    for n_hidden in sizes:
        for batch in batches:
            peak = matmul_gflops(batch, n_hidden, device)
            speeds = {
                "rbmlib CD-1": rbmlib_speed(X, n_hidden, batch, False, device),
                "rbmlib PCD-1": rbmlib_speed(X, n_hidden, batch, True, device),
                "original (autograd CD-1)": original_speed(X_slow, n_hidden, batch, device),
            }
            if device.type == "cpu":  # scikit-learn runs on the CPU only
                speeds["scikit-learn PCD-1"] = sklearn_speed(X_slow, n_hidden, batch)
            for name, speed in speeds.items():
                gflops = 8 * N_VISIBLE * n_hidden * speed / 1e9
                rows.append({"implementation": name, "n_components": n_hidden, "batch_size": batch,
                             "samples_per_s": speed, "gflops": gflops,
                             "matmul_gflops_at_shape": peak})
                print(f"H={n_hidden:5d} B={batch:4d} {name:26s} {speed:10.0f} samples/s "
                      f"{gflops:6.1f} GFLOP/s (matmul {peak:.0f})", flush=True)
    table = pd.DataFrame(rows)
    table["matmul_peak_gflops"] = table["matmul_gflops_at_shape"].max()
    table["fraction_of_peak"] = table["gflops"] / table["matmul_peak_gflops"]
    table["device"] = str(device)
    table["data"] = source
    table["torch"] = torch.__version__
    table["threads"] = torch.get_num_threads()
    table["machine"] = platform.processor() or platform.machine()
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and data, for a smoke run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(paths.BENCHMARKS_DIR), help="folder for the CSV and PNG")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if args.quick:
        table = run([64, 256], [64], n_rows=4096, n_rows_slow=2048, device=device)
        memory = None
    else:
        table = run([256, 1024, 4096], [64, 256], n_rows=50_000, n_rows_slow=10_000, device=device)
        memory = transform_cost(4096, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = speed.benchmark_stem(device.type)
    table.to_csv(out / f"{stem}.csv", index=False)
    speed.speed_figure(table).savefig(out / f"{stem}.png", dpi=150)
    for row in speed.targets(table).itertuples(index=False):
        print(f"{row.target}: {row.measured} (target {row.required}, {'met' if row.met else 'missed'})")
    if memory:
        print("transform of 70,000 images at H=4096: {seconds:.1f} s, output {output_gib:.2f} GiB, "
              "peak memory grew {peak_rss_growth_gib:.2f} GiB (input {input_gib:.2f} GiB)".format(**memory))
        pd.DataFrame([memory]).to_csv(out / f"{stem}_transform.csv", index=False)
    print(f"wrote {out / (stem + '.csv')} and .png")


if __name__ == "__main__":
    main()
