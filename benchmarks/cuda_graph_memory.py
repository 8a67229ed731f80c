"""GPU memory and replay rate of one CUDA graph per architecture, at paper size, for a
pool-sized cache (issue #3): captures N archs through the engine's ``GraphedSteps``, then
replays them in random order. ``PYTHONPATH=. python benchmarks/cuda_graph_memory.py 600
OUT.json`` (on CUDA only)."""

import json
import sys
import time

import numpy as np
import torch

from nao_core.bench.supernet import synthetic_cifar
from nao_core.config import DataConfig, SearchConfig
from nao_core.engine import graphed_steps, train_epoch
from nao_core.evaluator.supernet import CnnSupernetEvaluator
from nao_core.search_space import create_search_space

n_archs = int(sys.argv[1])
out_path = sys.argv[2]
dev = torch.device("cuda")
space = create_search_space("cnn")
archs = space.sample_many(np.random.default_rng(0), n_archs)
cfg = SearchConfig(data=DataConfig(batch_size=64))
ev = CnnSupernetEvaluator(cfg, synthetic_cifar(64, 500), dev)
batch = next(iter(ev.module.train_batches(torch.Generator(dev).manual_seed(0))))
graphs = graphed_steps(
    ev.supernet,
    ev.task,
    ev.optimizer,
    enabled=True,
    grad_clip=5.0,
    precision=ev.precision,
    max_graphs=n_archs + 1,
)
assert graphs is not None


def forward(model, x, progress, arch):
    return model(x, arch, False, progress=progress)


def run(order):
    it = iter(order)
    torch.cuda.synchronize()
    t = time.perf_counter()
    m, _ = train_epoch(
        ev.supernet,
        ev.task,
        [batch] * len(order),
        ev.optimizer,
        step=0,
        total_steps=10 * len(order),
        grad_clip=5.0,
        precision=ev.precision,
        forward=forward,
        draw=lambda: next(it),
        graphs=graphs,
    )
    return time.perf_counter() - t, m


free0 = torch.cuda.mem_get_info()[0]
res = {"n_archs": n_archs}
run([archs[0]])  # the eager warm-up step
marks = sorted({min(n_archs, k) for k in (100, 300, n_archs)})
done = 0
for k in marks:
    s, _ = run(archs[done:k])
    res[f"capture_s_per_arch_to_{k}"] = round(s / max(k - done, 1), 4)
    res[f"device_mib_used_after_{k}"] = round((free0 - torch.cuda.mem_get_info()[0]) / 2**20)
    res[f"reserved_mib_after_{k}"] = round(torch.cuda.memory_reserved() / 2**20)
    done = k
    print(json.dumps(res), flush=True)  # partial figures survive a timeout
order = list(np.random.default_rng(1).integers(0, n_archs, size=2000))
s, m = run([archs[i] for i in order])
res["replay_img_s_random_order"] = round(64 * len(order) / s, 1)
res["train_loss_after"] = m["loss"]
res["captures"] = graphs.captures
res["uncapturable"] = len(graphs.uncapturable)
print(json.dumps(res, indent=1))
with open(out_path, "w") as f:
    json.dump(res, f, indent=1)
