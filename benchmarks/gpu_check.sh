#!/bin/bash
# The prepared device check for issue #3 (one call, about 6 minutes on an H200): the CUDA tests
# (CUDA-graph steps against the eager step, a search and a final training on CUDA), then
# `nao bench supernet` with its CUDA-graph rows, then graph memory for a 600-arch pool.
# Run from the repo root; results go to $OUT (or ./bench-out).
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/nao_core/test_graphs.py \
  tests/nao_core/test_ws_search.py tests/nao_core/test_train.py tests/nao_core/test_models.py \
  tests/nao_core/test_engine.py -m "gpu or not gpu" > "$OUT/pytest.log" 2>&1
echo "pytest rc $?"
grep -E "passed|failed|Error" "$OUT/pytest.log" | tail -12
timeout 180 python3 -m nao_core.cli bench supernet --device cuda --steps 60 --final-steps 30 \
  --controller-epochs 20 --json "$OUT/supernet.json" > "$OUT/bench.log" 2>&1
echo "bench rc $?"
tail -40 "$OUT/bench.log"
timeout 150 python3 benchmarks/cuda_graph_memory.py 600 "$OUT/graph_mem.json" \
  > "$OUT/graph_mem.log" 2>&1
echo "memory rc $?"
tail -22 "$OUT/graph_mem.log"
