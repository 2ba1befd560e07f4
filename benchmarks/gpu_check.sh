#!/usr/bin/env bash
# Every GPU check of the performance work in one command, sized for one device-tool call
# (each step under a time limit, 9 minutes in all; the machine's own python3 with torch, no
# install; not yet run on a GPU):
#
#     bash benchmarks/gpu_check.sh            # results into benchmarks/results/
#     OUT=/some/dir bash benchmarks/gpu_check.sh
#     DEVICE=cpu COMPILE=default FUSE_ARGS="--models tiny_cnn --nodes 2" bash benchmarks/gpu_check.sh
#                                             # the same steps on a CPU: a dry run of this script
#
# 1. the CUDA tests (bf16 + channels_last vs fp32, fused SGD, no memory growth);
# 2. benchmarks/train_step.py --device cuda --compile reduce-overhead: the paper's 3-node graph,
#    ours vs reference vs ours compiled with CUDA graphs, side by side;
# 3. benchmarks/fuse_nodes.py --device cuda (loop, vmap, grouped).
# Packing (benchmarks/packing.py) needs Ray on the GPU machine and is not run here.
# A step that fails is reported and the next one still runs; the exit status is the first
# failure's.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
date=$(date +%F)
status=0

step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most ${limit}s)"
    timeout "$limit" "$@" 2>&1 | tee "$out/gpu_check-$name.log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        echo "== $name FAILED with exit status $rc"
        [ "$status" -ne 0 ] || status=$rc
    fi
}

if [ "$device" = cuda ]; then
    "$python" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
fi
step tests 120 "$python" -m pytest -q -p no:cacheprovider tests/training/test_training_compile.py \
    tests/training/test_training_cuda.py tests/datasets/test_datasets_noise.py
step train_step 300 "$python" benchmarks/train_step.py --device "$device" \
    --compile "${COMPILE:-reduce-overhead}" --out "$out"
# shellcheck disable=SC2086  # FUSE_ARGS is a list of options
step fuse_nodes 120 "$python" benchmarks/fuse_nodes.py --device "$device" ${FUSE_ARGS:-} \
    --out "$out/fuse_nodes-$device-$date.json"
exit "$status"
