#!/usr/bin/env bash
# The GPU checks of README "Speed" (docs/gpu_speed.md holds their results), in priority order,
# each under its own time limit so one slow or failing step leaves the others' numbers: the
# CUDA-only tests; eager batch 8 in NCHW against channels_last (the layout copies around group
# norm); compiled batch 8 (both models) and 32; translation; batch 1 against the reference with a
# profile; the paper profile as `dvc repro` runs it (compiled, batch 1, 200 steps); the norm kernel.
# Needs data/faces (the crop stage's output) and a Python that has torch, decord and the pipeline's
# other imports. Logs go to $LOG_DIR (default: ./gpu_logs).
#
#     bash bench/gpu_checks.sh
set -u
LOG_DIR=${LOG_DIR:-gpu_logs}
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

check() {  # check <name> <seconds> <command...>: run it, log it, never stop the later checks
    local name=$1 seconds=$2
    shift 2
    echo "=== $name ($(date +%T), limit ${seconds}s): $*"
    timeout "$seconds" "$@" 2>&1 | tee "$LOG_DIR/$name.log" | grep -v "^\s*$" | tail -n 25
    echo "=== $name exit ${PIPESTATUS[0]}"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
check cuda_tests 120 python3 -m pytest -q -p no:cacheprovider -k "cuda or gpu" tests/test_fast_path.py
check train_b8_eager_nchw 90 python3 bench/train_speed.py --batch-size 8 --no-compile --no-channels-last --trace 3
check train_b8_eager 90 python3 bench/train_speed.py --batch-size 8 --no-compile --trace 3
check train_b8_compiled 300 python3 bench/train_speed.py --batch-size 8
check train_b32_compiled 200 python3 bench/train_speed.py --batch-size 32 --model cyclegan
check infer_b64 45 python3 bench/infer_speed.py --batch-size 64
check train_b1_eager 90 python3 bench/train_speed.py --batch-size 1 --no-compile --steps 50 --trace 5
check paper_200_steps 300 python3 bench/train_speed.py --steps 200
check norm 30 python3 bench/norm_speed.py
