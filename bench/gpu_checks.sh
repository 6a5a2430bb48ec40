#!/usr/bin/env bash
# The GPU checks of README "Speed" (docs/gpu_speed.md holds their results), in priority order,
# each under its own time limit so one slow or failing step leaves the others' numbers. Part 1:
# the CUDA-only tests with the NCHW default; compiled CycleGAN batch 8 with inductor's layout
# optimisation forced (the layout copies, docs/gpu_speed.md "Next"); compiled Recycle-GAN batch 8
# and translation as the paper profile's infer stage runs it, both in the NCHW default. Part 2:
# compiled CycleGAN batch 32 and the paper profile as `dvc repro` runs it (compiled, batch 1,
# 200 steps), both in NCHW; compiled batch 8 in channels_last with a profile.
# Needs data/faces (the crop stage's output) and a Python that has torch, decord and the pipeline's
# other imports. Logs go to $LOG_DIR (default: ./gpu_logs).
#
#     bash bench/gpu_checks.sh [1|2]   (default: both parts)
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
if [ "${1:-1}" = 1 ]; then
    check cuda_tests 60 python3 -m pytest -q -p no:cacheprovider -k "cuda or gpu" tests/test_fast_path.py
    check train_b8_layout_opt 190 env TORCHINDUCTOR_FORCE_LAYOUT_OPT=1 \
        python3 bench/train_speed.py --model cyclegan --batch-size 8 --steps 15 --trace 3
    check recyclegan_b8_compiled 200 python3 bench/train_speed.py --model recyclegan --batch-size 8 --steps 10 --warmup 3
    check infer_compiled_rec 60 python3 bench/infer_speed.py --compile
fi
if [ "${1:-2}" = 2 ]; then
    check train_b32_compiled 150 python3 bench/train_speed.py --model cyclegan --batch-size 32 --steps 10 --warmup 3
    check paper_200_steps 200 python3 bench/train_speed.py --model cyclegan --steps 200
    check train_b8_compiled_cl 190 python3 bench/train_speed.py --model cyclegan --batch-size 8 --channels-last --trace 3
fi
