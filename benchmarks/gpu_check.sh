#!/usr/bin/env bash
# The GPU checks of the performance work, sized for device-tool calls of at most 10 minutes
# (each step has a time limit; the machine's own python3 with torch; not yet run on a GPU):
#
#     bash benchmarks/gpu_check.sh                 # tests, train_step, fuse_nodes: 9 min at most
#     STEPS=packing bash benchmarks/gpu_check.sh   # packing: 7 min at most; needs Ray, see below
#     OUT=/some/dir bash benchmarks/gpu_check.sh   # results there instead of benchmarks/results/
#     DEVICE=cpu COMPILE=default FUSE_ARGS="--models tiny_cnn --nodes 2" \
#         PACKING_ARGS="--packings 1,2 --trials 2 --epochs 1 --images 1000" \
#         STEPS="tests train_step fuse_nodes packing" bash benchmarks/gpu_check.sh
#                                                  # every step on a CPU: a dry run of this script
#
# Steps:
# - tests: the CUDA tests (bf16 + channels_last vs fp32, fused SGD, CUDA graphs, no memory
#   growth) and the compile test;
# - train_step: benchmarks/train_step.py --compile reduce-overhead, the paper's 3-node graph:
#   ours vs reference vs ours compiled with CUDA graphs, side by side;
# - fuse_nodes: benchmarks/fuse_nodes.py (loop, vmap, grouped);
# - packing: benchmarks/packing.py, trial-epochs per hour with 1, 2, 4 and 8 trials per GPU. It
#   runs searches, so Ray and Optuna must be importable: where they are not installed, carry the
#   bundle that benchmarks/device_bundle.sh writes to .whl/; this step unpacks it.
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
steps=${STEPS:-tests train_step fuse_nodes}
for name in $steps; do
    case $name in
    tests)
        step tests 120 "$python" -m pytest -q -p no:cacheprovider \
            tests/training/test_training_compile.py tests/training/test_training_cuda.py \
            tests/datasets/test_datasets_noise.py
        ;;
    train_step)
        step train_step 300 "$python" benchmarks/train_step.py --device "$device" \
            --compile "${COMPILE:-reduce-overhead}" --out "$out"
        ;;
    fuse_nodes)
        # shellcheck disable=SC2086  # FUSE_ARGS is a list of options
        step fuse_nodes 120 "$python" benchmarks/fuse_nodes.py --device "$device" ${FUSE_ARGS:-} \
            --out "$out/fuse_nodes-$device-$date.json"
        ;;
    packing)
        if ! "$python" -c "import ray.tune, optuna" 2>/dev/null; then
            if [ ! -f .whl/ray-stripped.tar.xz ]; then
                echo "== packing needs Ray and Optuna: run benchmarks/device_bundle.sh and carry .whl"
                [ "$status" -ne 0 ] || status=2
                continue
            fi
            mkdir -p /tmp/site && tar -xJf .whl/ray-stripped.tar.xz -C /tmp/site &&
                "$python" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
                    .whl/*.whl
            export PYTHONPATH="/tmp/site:$PYTHONPATH"
        fi
        # shellcheck disable=SC2086  # PACKING_ARGS is a list of options
        step packing 420 "$python" benchmarks/packing.py --device "$device" ${PACKING_ARGS:-} \
            --out "$out/packing-$device-$date.json"
        ;;
    *)
        echo "unknown step $name; steps: tests train_step fuse_nodes packing"
        exit 2
        ;;
    esac
done
exit "$status"
