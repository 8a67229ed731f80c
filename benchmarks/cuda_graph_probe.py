"""GPU probe (issue #3): is the supernet step launch-bound, and what would CUDA graphs buy?

The figures of the README's GPU paragraph came from this script, run on an H200 before
``nao_core.engine.graphs`` existed (it captures graphs with torch.optim.SGD and a fixed learning
rate, which is fine for timing): ``PYTHONPATH=. python benchmarks/cuda_graph_probe.py
--steps 60``. Runs on CUDA, or on the CPU with ``--device cpu`` (graph parts skipped) to check
the script. ``nao bench supernet`` now times the production graph path itself.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback

import numpy as np
import torch
from torch import nn

from nao_core.bench.supernet import PAPER, standalone_args, synthetic_cifar
from nao_core.config import DataConfig, SearchConfig
from nao_core.engine import ClassificationTask, train_epoch
from nao_core.engine.optim import build_sgd
from nao_core.evaluator.supernet import CnnSupernetEvaluator
from nao_core.search_space import create_search_space
from nao_core.search_space.named import get_named_arch
from nao_core.train import build_network

P = argparse.ArgumentParser()
P.add_argument("--device", default="cuda")
P.add_argument("--steps", type=int, default=60)
P.add_argument("--out", default=None)
A = P.parse_args()
dev = torch.device(A.device)
cuda = dev.type == "cuda"
space = create_search_space("cnn")
archs = space.sample_many(np.random.default_rng(0), 400)
task = ClassificationTask()
results: dict[str, object] = {}


def sync() -> None:
    if cuda:
        torch.cuda.synchronize()


def supernet_setup(precision: str, cl: bool):
    cfg = SearchConfig(precision=precision, data=DataConfig(batch_size=64))
    ev = CnnSupernetEvaluator(cfg, synthetic_cifar(64, 500), dev, channels_last=cl)
    batch = next(iter(ev.module.train_batches(torch.Generator(dev).manual_seed(0))))
    return ev, batch


def supernet_runner(precision: str, cl: bool):
    """run(n): n engine training steps of the supernet, one arch per step; seconds, synced."""
    ev, batch = supernet_setup(precision, cl)
    model = ev.supernet
    opt, _ = build_sgd(model.parameters(), PAPER.optim)
    it = iter(archs * 10)

    def fwd(m, x, p):
        return m(x, next(it), False, progress=p)

    def run(n: int) -> float:
        sync()
        t = time.perf_counter()
        train_epoch(
            model,
            task,
            [batch] * n,
            opt,
            step=0,
            total_steps=10 * n,
            grad_clip=5.0,
            precision=precision,
            forward=fwd,
        )
        sync()
        return time.perf_counter() - t

    return run


def eager_supernet(precision: str, cl: bool, steps: int) -> float:
    run = supernet_runner(precision, cl)
    run(5)
    return run(steps) / steps


def section(name: str, fn) -> None:
    t = time.perf_counter()
    try:
        results[name] = fn()
    except Exception:  # keep going: every figure that can be had is worth the device time
        results[name] = "FAILED: " + traceback.format_exc()[-1500:]
    print(f"== {name} ({time.perf_counter() - t:.1f} s): {results[name]}", flush=True)


# 1. Eager supernet step, four settings, cudnn.benchmark off then on.
def variants() -> dict[str, float]:
    out = {}
    for bench in (False, True):
        torch.backends.cudnn.benchmark = bench
        for precision, cl in (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)):
            s = eager_supernet(precision, cl, A.steps)
            out[f"{precision}-{'cl' if cl else 'contig'}-bench{int(bench)}"] = round(64 / s, 1)
    torch.backends.cudnn.benchmark = False
    return out


section("supernet_eager_img_s", variants)


# 2. Profile the default (bf16 channels_last): kernels per step, GPU busy time vs wall time.
def profile_default() -> dict[str, object]:
    from torch.profiler import ProfilerActivity, profile

    run = supernet_runner("bf16" if cuda else "fp32", True)
    run(5)
    sync()
    n = 20
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        t = time.perf_counter()
        run(n)
        sync()
        wall = time.perf_counter() - t
    kernels, busy = 0, 0.0
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            kernels += 1
            busy += e.device_time if hasattr(e, "device_time") else e.cuda_time
    ops = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CPU)
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=18), flush=True)
    return {
        "wall_ms_per_step_profiled": 1000 * wall / n,
        "gpu_kernels_per_step": kernels / n,
        "gpu_busy_ms_per_step": busy / 1000 / n,
        "cpu_events_per_step": ops / n,
    }


section("supernet_profile", profile_default)


def graph_capture(model, step_fn, warmup_fn):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        warmup_fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        step_fn()
    return g


# 3. Stand-alone nets (rerank N=3 C=20 B=64, final N=6 C=36 B=128): eager vs one CUDA graph.
def standalone_graph(name: str, layers: int, channels: int, bs: int) -> dict[str, float]:
    _, arch = get_named_arch("naonet-b")
    args = standalone_args(layers, channels)
    model = build_network(arch, "cnn", args, dev, True)
    model.train()
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.025, momentum=0.9, weight_decay=3e-4)
    for p in params:
        opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
    x = torch.randn(bs, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (bs,), device=dev)
    loss_sum = torch.zeros((), device=dev)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            o = model(x, progress=0.5)
        loss, _ = task.loss(o, (x, y))
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        loss_sum.add_(loss.detach())

    def eager(n):
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            step()

    out = {}
    eager(5)
    sync()
    t = time.perf_counter()
    eager(A.steps)
    sync()
    out[f"{name}_eager_img_s"] = round(bs * A.steps / (time.perf_counter() - t), 1)
    opt.zero_grad(set_to_none=True)
    t = time.perf_counter()
    g = graph_capture(model, step, lambda: eager(3))
    sync()
    out[f"{name}_capture_s"] = round(time.perf_counter() - t, 3)
    g.replay()
    sync()
    t = time.perf_counter()
    for _ in range(A.steps):
        g.replay()
    sync()
    out[f"{name}_graph_img_s"] = round(bs * A.steps / (time.perf_counter() - t), 1)
    return out


def standalone_graphs() -> dict[str, float]:
    return standalone_graph("rerank", 3, 20, 64) | standalone_graph("final", 6, 36, 128)


if cuda:
    section("standalone_graphs", standalone_graphs)


# 4. Supernet with one CUDA graph per architecture (shared memory pool), replayed in random
#    order: what a per-arch graph cache would give, capture cost included separately.
def supernet_graphs() -> dict[str, float]:
    ev, batch = supernet_setup("bf16", True)
    model = ev.supernet
    model.train()
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.025, momentum=0.9, weight_decay=3e-4)
    for p in params:
        opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
    x, y = (t.clone() for t in batch)
    loss_sum = torch.zeros((), device=dev)

    def step(a):
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            o = model(x, a, False, progress=0.5)
        loss, _ = task.loss(o, (x, y))
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        loss_sum.add_(loss.detach())

    def eager(arch_list):
        for a in arch_list:
            opt.zero_grad(set_to_none=True)
            step(a)

    eager(archs[:5])
    sync()
    t = time.perf_counter()
    eager(archs[: A.steps])
    sync()
    eager_s = (time.perf_counter() - t) / A.steps
    n_graphs = 40
    pool = torch.cuda.graph_pool_handle()
    graphs = []
    free0 = torch.cuda.mem_get_info()[0]
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        eager(archs[:3])
    torch.cuda.current_stream().wait_stream(s)
    sync()
    t = time.perf_counter()
    for a in archs[:n_graphs]:
        opt.zero_grad(set_to_none=True)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, pool=pool):
            step(a)
        graphs.append(g)
    sync()
    capture_s = (time.perf_counter() - t) / n_graphs
    mem = (free0 - torch.cuda.mem_get_info()[0]) / 2**20
    order = np.random.default_rng(1).integers(0, n_graphs, size=4 * A.steps)
    for i in order[:5]:
        graphs[i].replay()
    sync()
    t = time.perf_counter()
    for i in order:
        graphs[i].replay()
    sync()
    replay_s = (time.perf_counter() - t) / len(order)
    # Correctness: one replayed step vs the same eager step from the same state.
    state = {k: v.clone() for k, v in model.state_dict().items()}
    mom = [opt.state[p]["momentum_buffer"].clone() for p in params]
    rng = torch.cuda.get_rng_state()
    graphs[7].replay()
    sync()
    after_graph = [p.detach().clone() for p in params]
    model.load_state_dict(state)
    for p, m in zip(params, mom, strict=True):
        opt.state[p]["momentum_buffer"].copy_(m)
    torch.cuda.set_rng_state(rng)
    opt.zero_grad(set_to_none=True)
    step(archs[7])
    sync()
    diff = max(
        (a - p.detach()).abs().max().item() for a, p in zip(after_graph, params, strict=True)
    )
    return {
        "eager_img_s": round(64 / eager_s, 1),
        "graph_replay_img_s": round(64 / replay_s, 1),
        "capture_ms_per_arch": round(1000 * capture_s, 1),
        "pool_mib_for_graphs": round(mem, 1),
        "graphs": n_graphs,
        "max_param_diff_graph_vs_eager": diff,
    }


if cuda:
    section("supernet_graphs", supernet_graphs)

if A.out:
    with open(A.out, "w") as f:
        json.dump(results, f, indent=2, default=str)
