"""torch's clip_grad_norm_ on gradclip's model-shaped workloads (docs/benchmarking.md, section "Baselines:
C and torch").

Needs torch (Debian 12: apt-get install python3-torch, which is torch 1.13.1; run with /usr/bin/python3).
Prints the median of RUNS runs for the norm alone and for a clip that scales on every call: every dtype on
GPT-2-small at 1 thread, then float32 and bfloat16 on every workload at 1 and 2 threads.
torch 1.13 cannot clip float16 on the CPU; the script prints its error.
"""
import random
import statistics
import sys
import time

import torch

RUNS = 7


def gpt2_small():
    d = 768
    sizes = [50257 * d, 1024 * d]
    for _ in range(12):
        sizes += [d, d, d * 3 * d, 3 * d, d * d, d, d, d, d * 4 * d, 4 * d, 4 * d * d, d]
    return sizes + [d, d]


def resnet50():
    sizes = [64 * 3 * 7 * 7, 64, 64]
    inputs = 64
    for stage, blocks in enumerate([3, 4, 6, 3]):
        planes = 64 << stage
        for block in range(blocks):
            sizes += [planes * inputs, planes, planes, planes * planes * 9, planes, planes,
                      4 * planes * planes, 4 * planes, 4 * planes]
            if block == 0:
                sizes += [4 * planes * inputs, 4 * planes, 4 * planes]
            inputs = 4 * planes
    return sizes + [1000 * 2048, 1000]


def many_small():
    rng = random.Random(2000)
    return [rng.randint(1 << 10, 8 << 10) for _ in range(2000)]


def median_ms(work):
    work()
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    workloads = {"gpt2-small": gpt2_small(), "resnet50": resnet50(), "many-small": many_small()}
    runs = [(1, dtype, "gpt2-small") for dtype in ("float32", "float64", "bfloat16", "float16")]
    runs += [(threads, dtype, name) for threads in (1, 2) for dtype in ("float32", "bfloat16")
             for name in ("gpt2-small", "resnet50", "many-small")]
    for threads, dtype, name in runs:
        torch.set_num_threads(threads)
        sizes = workloads[name]
        try:
            measure(threads, dtype, name, sizes)
        except RuntimeError as e:
            print(f"{name} {dtype} {threads} thread(s): torch fails: {e}")


def clipper(dtype, sizes):
    """Parameters with gradients of these sizes in this dtype, uniform in [-1, 1), and a clip that scales on
    every call (to just below the current norm). Also what Interleaved's versus mode calls from the JVM."""
    kind = getattr(torch, dtype)
    params = []
    for n in sizes:
        p = torch.nn.Parameter(torch.empty(n, dtype=kind))
        p.grad = (torch.rand(n) * 2 - 1).to(kind)
        params.append(p)
    state = {"max": float(torch.nn.utils.clip_grad_norm_(params, float("inf"))) * (1 - 2 ** -22)}

    def clip():
        norm = float(torch.nn.utils.clip_grad_norm_(params, state["max"]))
        state["max"] = state["max"] * norm / (norm + 1e-6) * (1 - 2 ** -22)

    return params, clip


def measure(threads, dtype, name, sizes):
    params, clip = clipper(dtype, sizes)
    elements = sum(sizes)
    norm_ms = median_ms(lambda: torch.norm(torch.stack([torch.norm(p.grad) for p in params])))
    clip_ms = median_ms(clip)
    size = params[0].grad.element_size()
    print(f"torch {torch.__version__} {name} {dtype} {threads} thread(s): {len(sizes)} tensors, {elements:,} "
          f"elements; norm {norm_ms:.2f} ms ({size * elements / norm_ms / 1e6:.2f} GB/s), clip {clip_ms:.2f} ms "
          f"({3 * size * elements / clip_ms / 1e6:.2f} GB/s)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
