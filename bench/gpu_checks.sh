#!/usr/bin/env bash
# The GPU checks of docs/measurements/speed.md (which holds their results), in priority order,
# each under its own time limit so one slow or failing step leaves the others' numbers. Part 1
# (~9 min): compiled CycleGAN batch 8 as the train stage runs it, the same with inductor's layout
# optimisation left to its heuristic (the previous default), batch 32, then the CUDA-only tests
# (CUDA graph replays included). Part 2 (~6 min): CUDA graphs at batch 8 and in the paper profile
# as `dvc repro` runs it (batch 1, 200 steps). Part 3: compiled Recycle-GAN batch 8, compiled CycleGAN batch 8 in
# channels_last with a profile.
# Needs data/faces (the crop stage's output) and a Python that has torch, decord and the pipeline's
# other imports. Logs go to $LOG_DIR (default: ./gpu_logs).
#
#     bash bench/gpu_checks.sh [1|2|3]   (default: all three parts)
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
for part in ${1:-1 2 3}; do case $part in
1)
    check train_b8_compiled 150 python3 bench/train_speed.py --model cyclegan --batch-size 8 --steps 15
    check train_b8_no_layout_opt 150 python3 bench/train_speed.py --model cyclegan --batch-size 8 --steps 15 \
        --no-layout-opt
    check train_b32_compiled 150 python3 bench/train_speed.py --model cyclegan --batch-size 32 --steps 10 --warmup 3
    check cuda_tests 100 python3 -m pytest -q -p no:cacheprovider -k "cuda or gpu" tests/test_fast_path.py
    ;;
2)
    check train_b8_cuda_graphs 180 python3 bench/train_speed.py --model cyclegan --batch-size 8 --steps 15 --cuda-graphs
    check paper_200_steps_cuda_graphs 180 python3 bench/train_speed.py --model cyclegan --steps 200 --cuda-graphs
    ;;
3)
    check recyclegan_b8_compiled 200 python3 bench/train_speed.py --model recyclegan --batch-size 8 --steps 10 --warmup 3
    check train_b8_compiled_cl 190 python3 bench/train_speed.py --model cyclegan --batch-size 8 --channels-last --trace 3
    ;;
*) echo "no part $part: 1, 2 or 3" >&2; exit 2 ;;
esac; done
