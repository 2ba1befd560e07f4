#!/usr/bin/env bash
# The GPU checks of the performance work, sized for one device-tool call of at most 10 minutes
# (each step has a time limit; the machine's own python3 with torch):
#
#     bash benchmarks/gpu_check.sh                 # tests, cuda_graph, fuse_nodes: 8 min
#     STEPS=packing bash benchmarks/gpu_check.sh   # packing: 7 min at most; needs Ray, see below
#     OUT=/some/dir bash benchmarks/gpu_check.sh   # results there instead of benchmarks/results/
#     BUDGET=540 LIMIT_packing=200 ...             # the whole script's seconds, one step's seconds
#     DEVICE=cpu FUSE_ARGS="--models tiny_cnn --nodes 2" \
#         PACKING_ARGS="--packings 1,2 --trials 2 --epochs 1 --images 1000" \
#         STEPS="tests train_step cuda_graph fuse_nodes packing packing_graphed compiled" \
#         COMPILE=default \
#         bash benchmarks/gpu_check.sh             # every step on a CPU: a dry run of this script
#
# Steps, in the order STEPS names them:
# - tests: the CUDA tests (bf16 + channels_last vs fp32, fused SGD, CUDA graphs, no memory
#   growth) and the compile test;
# - train_step: benchmarks/train_step.py on the paper's 3-node graph: ours vs reference vs ours
#   in fp32, side by side, with a profile of ours (TRAIN_STEP_ARGS adds options);
# - fuse_nodes: benchmarks/fuse_nodes.py (loop, vmap, grouped);
# - packing: benchmarks/packing.py, trial-epochs per hour with 1, 2, 4 and 8 trials per GPU. It
#   runs searches, so Ray and Optuna must be importable: where they are not installed, carry the
#   bundle that benchmarks/device_bundle.sh writes to .whl/; this step unpacks it;
# - cuda_graph: train_step.py with ours, the reference and ours with the recipe's cuda_graph: on
#   (one CUDA graph for the whole step), node_streams: on (a CUDA stream per node) and both,
#   side by side, 3 repetitions, with a profile of each of ours;
# - compiled: train_step.py again with ours compiled (COMPILE, default reduce-overhead: inductor
#   and CUDA graphs) beside ours and the reference (not a default step since the first GPU run:
#   compiling takes longest);
# - packing_compiled: packing.py with every trial compiled (COMPILE), in Ray's trial threads:
#   whether packing and CUDA graphs add up (not a default step; STEPS names it);
# - packing_graphed: packing.py with every trial's step one CUDA graph (cuda_graph: on; not a
#   default step).
# A step that fails is reported and the next one still runs; the exit status is the first
# failure's. A step gets at most its own limit (LIMIT_<step> seconds) and what is left of BUDGET
# (default 540 s); one with under 20 s left is skipped. Everything printed also goes to
# $OUT/gpu_check-<date>.log, so that a call's files hold the whole log.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
date=$(date +%F)
budget=${BUDGET:-540}
bundle=${BUNDLE:-.whl}  # where benchmarks/device_bundle.sh wrote Ray and Optuna
status=0
exec > >(tee -a "$out/gpu_check-$date.log") 2>&1

fail() {
    echo "== $1"
    [ "$status" -ne 0 ] || status=$2
}

step() {
    local name=$1 limit_var="LIMIT_$1"
    local limit=${!limit_var:-$2} left=$((budget - SECONDS))
    shift 2
    [ "$left" -ge "$limit" ] || limit=$left
    if [ "$limit" -lt 20 ]; then
        fail "$name SKIPPED: ${left}s left of BUDGET=${budget}" 124
        return
    fi
    echo "== $name (at most ${limit}s; ${SECONDS}s since the start)"
    timeout "$limit" "$@"
    local rc=$?
    [ "$rc" -eq 0 ] || fail "$name FAILED with exit status $rc" "$rc"
}

if [ "$device" = cuda ]; then
    "$python" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
fi
steps=${STEPS:-tests cuda_graph fuse_nodes}
for name in $steps; do
    case $name in
    tests)
        step tests 180 "$python" -m pytest -q -p no:cacheprovider \
            tests/training/test_training_compile.py tests/training/test_training_cuda.py \
            tests/datasets/test_datasets_noise.py
        ;;
    train_step)
        # shellcheck disable=SC2086  # TRAIN_STEP_ARGS is a list of options
        step train_step 180 "$python" benchmarks/train_step.py --device "$device" --also-fp32 \
            ${TRAIN_STEP_ARGS:-} --out "$out"
        ;;
    cuda_graph)
        # shellcheck disable=SC2086  # TRAIN_STEP_ARGS is a list of options
        step cuda_graph 240 "$python" benchmarks/train_step.py --device "$device" --cuda-graph \
            --node-streams --reps 3 ${TRAIN_STEP_ARGS:-} --out "$out"
        ;;
    compiled)
        # shellcheck disable=SC2086  # TRAIN_STEP_ARGS is a list of options
        step compiled 240 "$python" benchmarks/train_step.py --device "$device" \
            --compile "${COMPILE:-reduce-overhead}" ${TRAIN_STEP_ARGS:-} --out "$out"
        ;;
    fuse_nodes)
        # shellcheck disable=SC2086  # FUSE_ARGS is a list of options
        step fuse_nodes 120 "$python" benchmarks/fuse_nodes.py --device "$device" ${FUSE_ARGS:-} \
            --out "$out/fuse_nodes-$device-$date.json"
        ;;
    packing | packing_compiled | packing_graphed)
        if ! "$python" -c "import ray.tune, optuna" 2>/dev/null; then
            if [ ! -f "$bundle/ray-stripped.tar.xz" ]; then
                fail "$name needs Ray and Optuna: run benchmarks/device_bundle.sh and carry .whl" 2
                continue
            fi
            mkdir -p /tmp/site && tar -xJf "$bundle/ray-stripped.tar.xz" -C /tmp/site &&
                "$python" -m pip install -q --no-index --no-deps --no-compile --upgrade \
                    --target /tmp/site "$bundle"/*.whl
            export PYTHONPATH="/tmp/site:$PYTHONPATH"
        fi
        # packing.py names its file after these options, in the folder $out
        case $name in
        packing) how=() ;;
        packing_graphed) how=(--cuda-graph) ;;
        packing_compiled) how=(--compile "${COMPILE:-reduce-overhead}") ;;
        esac
        # shellcheck disable=SC2086  # PACKING_ARGS is a list of options
        step "$name" 420 "$python" benchmarks/packing.py --device "$device" "${how[@]}" \
            ${PACKING_ARGS:-} --out "$out"
        ;;
    *)
        echo "unknown step $name; steps: tests train_step cuda_graph fuse_nodes packing" \
            "compiled packing_compiled packing_graphed"
        exit 2
        ;;
    esac
done
exit "$status"
