#!/usr/bin/env bash
# The GPU checks of README "Speed", in priority order, each under its own time limit so one slow or
# failing step leaves the others' numbers: the CUDA-only tests; eager training at batch 1 (against
# the reference) and 8, each with a profile of where the step's time goes; translation; compiled
# training at batch 8; eager at batch 32; the instance-norm kernel choice; and the paper profile as
# `dvc repro` runs it (compiled, batch 1, 200 steps).
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
check train_b1_eager 90 python3 bench/train_speed.py --batch-size 1 --no-compile --steps 50 --trace 5
check train_b8_eager 90 python3 bench/train_speed.py --batch-size 8 --no-compile --trace 3
check infer_b64 45 python3 bench/infer_speed.py --batch-size 64
check train_b8_compiled 150 python3 bench/train_speed.py --batch-size 8
check train_b32_eager 60 python3 bench/train_speed.py --batch-size 32 --no-compile
check norm 30 python3 bench/norm_speed.py
check paper_200_steps 180 python3 bench/train_speed.py --steps 200
