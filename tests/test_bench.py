"""The speed benches run end to end on real GRID crops at a tiny size and print positive figures."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.processes import ENV
from helpers.real_crops import write_faces
from helpers.repo import REPO

NUMBER = r"([0-9.]+)"
TRAIN_LINE = re.compile(rf"^(cyclegan|recyclegan) +demo batch 2 32 px compile off, NCHW, fp32: {NUMBER} ms/iter, "
                        rf"{NUMBER} img/s, {NUMBER} GFLOP/img, {NUMBER} TFLOP/s, peak {NUMBER} GiB \(host RSS\)$", re.M)
INFER_LINE = re.compile(rf"^cyclegan +demo (G \+ reconstruction|G only), ngf 16 3 blocks, batch 4 36 -> 32 px, "
                        rf"compile off, NCHW: {NUMBER} ms/batch, {NUMBER} frames/s, "
                        rf"{NUMBER} GFLOP/frame, {NUMBER} TFLOP/s, peak {NUMBER} GiB \(host RSS\)$", re.M)


@pytest.fixture(scope="module")
def faces(tmp_path_factory, samples):
    clips = {"A": [samples / "A/bbaf2n.mpg"], "B": [samples / "B/brbk7n.mpg"]}
    return write_faces(tmp_path_factory.mktemp("faces"), clips, size=40, frames=8)


def agrees(rate: float, work: float, ms: float, work_step: float = 0.0) -> bool:
    """A rate printed to 0.01 agrees with `work` / `ms`, where ms is printed to 0.1 and `work` to
    `work_step`: on a fast CPU a batch takes a few ms, and rounding ms alone moves the quotient by over 1%."""
    low, high = (work - work_step / 2) / (ms + 0.05), (work + work_step / 2) / (ms - 0.05)
    return low * 0.999 - 0.005 <= rate <= high * 1.001 + 0.005


def bench(script: str, faces: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), "--profile", "demo", "--size", "32",
                           "--faces", str(faces), *args], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_train_bench_times_both_models_and_counts_their_flops(faces):
    out = bench("train_speed.py", faces, "--batch-size", "2", "--steps", "2", "--warmup", "1", "--no-compile")
    found = {match[0]: [float(x) for x in match[1:]] for match in TRAIN_LINE.findall(out)}
    assert set(found) == {"cyclegan", "recyclegan"}, out
    for ms, images, gflop, tflops, peak in found.values():
        assert min(ms, images, gflop, tflops, peak) > 0
        assert agrees(images, 2000, ms) and agrees(tflops, gflop * 2, ms, work_step=0.02)
    assert found["recyclegan"][2] > found["cyclegan"][2]  # triplets, predictors: more work per sample


def test_infer_bench_times_translation_with_and_without_the_reconstruction(faces):
    gflop = {}
    for flag in ("--reconstruction", "--no-reconstruction"):
        out = bench("infer_speed.py", faces, "--batch-size", "4", "--batches", "2", "--warmup", "1", flag)
        ((passes, *figures),) = INFER_LINE.findall(out)
        ms, frames, gflop[passes], tflops, peak = map(float, figures)
        assert min(ms, frames, tflops, peak) > 0
        assert agrees(frames, 4000, ms)
        stabilise = dict(re.findall(rf"^stabilise +(64|256) px on the CPU, .*: {NUMBER} ms/frame", out, re.M))
        assert set(stabilise) == {"64", "256"} and float(stabilise["256"]) > float(stabilise["64"]) > 0, out
    assert gflop["G + reconstruction"] == pytest.approx(2 * gflop["G only"], rel=0.15)  # printed to 0.01


def test_train_bench_profiles_where_the_step_time_goes_in_the_layout_asked_for(faces):
    out = bench("train_speed.py", faces, "--model", "cyclegan", "--batch-size", "2", "--steps", "1", "--warmup", "1",
                "--no-compile", "--channels-last", "--trace", "2")
    assert re.search(r"^cyclegan +demo batch 2 32 px compile off, channels_last, fp32: [0-9.]+ ms/iter", out, re.M), out
    assert "aten::convolution_backward" in out  # the profile table names the ops
    (wall,) = re.findall(rf"^per step \(profiled, 2 steps\): wall {NUMBER} ms$", out, re.M)
    assert float(wall) > 0


def test_norm_bench_times_both_kernels_and_finds_them_equal():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "norm_speed.py"), "--size", "32", "--batch-size", "2",
                           "--steps", "1"], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = re.search(rf"group_norm {NUMBER} ms, instance_norm {NUMBER} ms, ratio instance/group {NUMBER}; "
                     rf"relative difference: output ([0-9.e+-]+), first-layer gradient ([0-9.e+-]+)$", done.stdout, re.M)
    assert line, done.stdout
    group, instance, ratio, output, gradient = map(float, line.groups())
    assert min(group, instance) > 0 and agrees(ratio, instance, group, work_step=0.1)  # ms printed to 0.1, ratio to 0.01
    assert output < 1e-4 and gradient < 1e-1  # fp32 on the CPU: the same maths, summed in another order


def test_data_bench_times_the_frame_stages_on_any_videos(tmp_path, samples):
    """Two videos of the same file name (from two folders) stay two videos."""
    (tmp_path / "again").mkdir()
    shutil.copyfile(samples / "B" / "brbk7n.mpg", tmp_path / "again" / "bbaf2n.mpg")
    done = subprocess.run([sys.executable, str(REPO / "bench" / "data_speed.py"), "--videos",
                           str(samples / "A" / "bbaf2n.mpg"), str(tmp_path / "again" / "bbaf2n.mpg")],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^2 videos, 150 frames of 360x288 ", done.stdout, re.M), done.stdout
    stored = re.search(rf"frame store \(jpeg_quality 95\): {NUMBER} MiB, raw frames {NUMBER} MiB \({NUMBER}x smaller\)$",
                       done.stdout, re.M)
    assert stored and float(stored[2]) == pytest.approx(150 * 288 * 360 * 3 / 2**20, abs=0.1), done.stdout
    assert float(stored[3]) > 5
    rates = dict(re.findall(rf"^(decode \(iter_frames\)|extract_frames|crop_faces|crop_faces, detector on every "
                            rf"frame) +{NUMBER} frames/s", done.stdout, re.M))
    assert len(rates) == 4 and all(float(fps) > 0 for fps in rates.values()), done.stdout


def test_scale_bench_runs_every_stage_of_dvc_yaml_on_long_videos_built_from_the_samples(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "scale.py"), "--sizes", "1", "--base-frames", "40",
                           "--train-steps", "2", "--workdir", str(tmp_path)],
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^40 frames at 1280x720 \(long_A_train 15, long_B_train 14, long_A_test 6, long_B_test 5\), "
                     r"training 2 steps, load average [0-9.]+ on [0-9]+ CPUs:$", done.stdout, re.M), done.stdout
    rows = {name: [float(x) for x in figures] for name, *figures in re.findall(
        rf"^  (\w+) +{NUMBER} s +{NUMBER} frames/s +{NUMBER} MiB +{NUMBER} MiB written +{NUMBER} MiB cached$",
        done.stdout, re.M)}
    assert list(rows) == list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]), done.stdout
    for wall, fps, rss, _written, _cached in rows.values():
        assert min(wall, rss) > 0  # frames/s is 40 frames over the wall time; both print to 0.1
        assert 40 / (wall + 0.05) - 0.05 <= fps <= 40 / (wall - 0.05) + 0.05
    assert rows["extract_frames"][3] > 0 and rows["extract_frames"][4] == rows["extract_frames"][3]  # a DVC output
    assert rows["metrics"][4] == 0  # metrics/ is not cached
    noop = re.search(rf"^  no-op dvc status {NUMBER} s, dvc repro {NUMBER} s; load average [0-9.]+$", done.stdout, re.M)
    assert noop and min(map(float, noop.groups())) > 0, done.stdout
    assert (tmp_path / "videos" / "720p_40" / "A_train.mp4").is_file()
