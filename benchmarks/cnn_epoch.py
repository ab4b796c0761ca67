"""Where a CNN training epoch's time goes, and what each speed-up buys (images per second).

The paper study's best CNN shape (filters 21 and 75, 3x3 kernels, 600 dense
units) trains on 6,400 random images for one warm-up epoch and two timed ones
(the best is kept), with each combination of:

``f32``     the network as it was first written: NCHW, Adam's per-parameter kernels;
``cl``      channels_last memory format (oneDNN's convolutions and pooling prefer NHWC);
``fused``   Adam's fused kernel (what ``rbmlib.nets`` now uses);
``bf16``    bf16 autocast (``precision="bfloat16"``);
``compile`` ``torch.compile`` (its first epoch includes the compilation).

Run:  python benchmarks/cnn_epoch.py 64 f32 cl+fused cl+fused+bf16       (batch size, then the variants)
      python benchmarks/cnn_epoch.py 64 f32 --profile                     (torch.profiler's table of one epoch)
"""

from __future__ import annotations

import sys
import time

import torch
import torch.nn.functional as F

from rbmlib.nets import CNN

N_IMAGES = 6400


def run(label, X, y, batch, *, bf16=False, cl=False, compile_=False, fused=False, profile=False):
    torch.manual_seed(0)
    model = CNN(21, 75, 3, 3, 600, 0.26, 10)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=7e-4, fused=fused or None)
    forward = torch.compile(model) if compile_ else model

    def epoch():
        for i in range(0, len(X), batch):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(forward(X[i:i + batch]), y[i:i + batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    start = time.perf_counter()
    epoch()
    first = time.perf_counter() - start
    best = 0.0
    for _ in range(2):
        start = time.perf_counter()
        epoch()
        best = max(best, len(X) / (time.perf_counter() - start))
    print(f"{label:24s} batch {batch}: {best:7.0f} images/s (first epoch {first:.1f} s)", flush=True)
    if profile:
        from torch.profiler import ProfilerActivity
        with torch.profiler.profile(activities=[ProfilerActivity.CPU]) as prof:
            epoch()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    profile = "--profile" in args
    args = [a for a in args if a != "--profile"]
    batch, variants = int(args[0]), args[1:] or ["f32", "cl+fused", "cl+fused+bf16"]
    gen = torch.Generator().manual_seed(0)
    X, y = torch.rand(N_IMAGES, 784, generator=gen), torch.randint(0, 10, (N_IMAGES,), generator=gen)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    for v in variants:
        run(v, X, y, batch, bf16="bf16" in v, cl="cl" in v, compile_="compile" in v, fused="fused" in v,
            profile=profile)


if __name__ == "__main__":
    main()
