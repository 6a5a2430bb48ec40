#!/usr/bin/env bash
# Train one model on a GPU machine that reaches nothing else, with the train stage's script and the
# repository's params.yaml (the `quick` profile; docs/quick.md), and write what the stage wrote
# (models/<model>, logs/<model>: <name>.tgz.NN parts) and <name>.log to $OUT; translation runs
# back on the CPU under `dvc repro`. Reads the inputs `python tools/gpu_sandbox/offload.py pack-inputs` wrote ($INPUTS,
# default .quick/inputs); installs nothing. Run from the repository root:
#
#     bash tools/gpu_sandbox/quick_run.sh cyclegan|recyclegan [TAG PROFILE.GROUP.KEY=VALUE...]
#
# With TAG, the params get the changes given, the results go to variants/TAG/ in the archive and
# the files are named TAG_<model> (the batch-size comparison of tools/gpu_sandbox/README.md). Stages run in
# $WORK/<name> (default /tmp/facecycle_quick), outside the repository: dvclive finds no DVC project
# there and writes its plain files. $PYTHON (default python3) runs them; training stops after
# $TRAIN_LIMIT seconds (default 540) so that the log still comes back within a call's 10 minutes.
set -euo pipefail
model=${1:?usage: bash tools/gpu_sandbox/quick_run.sh cyclegan|recyclegan [TAG PROFILE.GROUP.KEY=VALUE...]}
shift
tag=${1:-}
[ $# -gt 0 ] && shift
repo=$PWD
out=${OUT:?OUT: the folder whose files come back}
work=${WORK:-/tmp/facecycle_quick}
python=${PYTHON:-python3}
name=${tag:+${tag}_}$model
mkdir -p "$work" "$out"
exec > >(tee -a "$out/$name.log") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$repo:$work/site${PYTHONPATH:+:$PYTHONPATH}"

seconds_since() { "$python" -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$1"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
start=$(date +%s.%N)
[ -d "$work/faces" ] || "$python" "$repo/tools/gpu_sandbox/offload.py" unpack-inputs "${INPUTS:-.quick/inputs}" "$work"
echo "inputs unpacked in $(seconds_since "$start") s"

params=$repo/params.yaml
prefix=
if [ -n "$tag" ]; then
    params=$work/$name.params.yaml
    prefix=variants/$tag/
    "$python" "$repo/tools/gpu_sandbox/offload.py" variant "$repo/params.yaml" "$params" "$@"
fi
mkdir -p "$work/$name"
cd "$work/$name"

start=$(date +%s.%N)
timeout "${TRAIN_LIMIT:-540}" "$python" "$repo/stages/train.py" "$model" --faces "$work/faces" --out "models/$model" \
    --checkpoints "checkpoints/$model" --logs "logs/$model" --params "$params" 2>&1 | tee train.log
train_s=$(seconds_since "$start")
batch=$("$python" -c "from pipeline.common.params import load_group; print(load_group('$model', '$params').batch_size)")
"$python" "$repo/tools/gpu_sandbox/offload.py" speed "logs/$model" "$batch" "$train_s" train.log

"$python" "$repo/tools/gpu_sandbox/offload.py" pack-results . "$model" "$out" "$name" --prefix "$prefix"
