#!/usr/bin/env bash
# The CUDA checks of issue 10 (item 5) as one short run for a lent GPU machine; see
# DEVELOPERS.md. On the device machine, from the repository root, with the wheels of
# `make gpu-wheels` carried in .whl/:
#
#     bash benchmarks/gpu_check.sh            # writes into $OUT (or benchmarks/results/)
#
# DEVICE=cpu runs the same steps on the CPU, to check the script where there is no GPU.
#
# 1. tests/test_cuda.py: attribution (IG 16 points and adaptive) and batched training on the
#    GPU against the CPU;
# 2. bench_batched_training.py --device cuda: vmapped ensembles against one-by-one training;
# 3. bench_naive_vs_xaibids.py --device cuda: the naive pipeline against xaibids (50, auto and
#    adaptive IG) at CI size.
# It has not run on a GPU yet (on the CPU, DEVICE=cpu, it took 97 s). Each step has its own
# time limit (150 + 120 + 200 s), so one hang cannot eat the lease. The JSON results
# (*_cuda.json) name the device: copy them into benchmarks/results/ and their figures into
# docs/benchmarks.md.
set -uo pipefail
OUT=${OUT:-benchmarks/results}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PYTHON" -c "import torch, captum, nibabel; print('torch', torch.__version__, 'cuda',
torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" \
    || exit 1
status=0
XAIBIDS_TEST_DEVICE=$DEVICE timeout 150 "$PYTHON" -m pytest -q -p no:cacheprovider -m cuda \
    tests/test_cuda.py 2>&1 | tee "$OUT/gpu_check_tests.log" || status=1
timeout 120 "$PYTHON" benchmarks/bench_batched_training.py --device "$DEVICE" \
    --output "$OUT/batched_training_$DEVICE.json" || status=1
# --no-trace: the NumPy peak does not depend on the device (naive_vs_xaibids.json has it)
timeout 200 "$PYTHON" benchmarks/bench_naive_vs_xaibids.py --device "$DEVICE" --no-trace \
    --xaibids-ig-steps 50 auto adaptive --output "$OUT/naive_vs_xaibids_$DEVICE.json" || status=1
exit $status
