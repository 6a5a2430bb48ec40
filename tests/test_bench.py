"""The speed benches' measuring functions on real GRID crops at a tiny size: what they return is
consistent (work counted, times positive, the two norm kernels equal), and one script runs end to end."""
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from helpers.processes import ENV
from helpers.real_crops import write_faces
from helpers.repo import REPO

pytestmark = pytest.mark.slow
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def faces(tmp_path_factory, samples):
    clips = {"A": [samples / "A/bbaf2n.mpg"], "B": [samples / "B/brbk7n.mpg"]}
    return write_faces(tmp_path_factory.mktemp("faces"), clips, size=40, frames=8)


def test_train_bench_times_both_models_and_counts_their_flops(faces):
    from train_speed import recipe, step_options, time_model

    found = {}
    for model in ("cyclegan", "recyclegan"):
        params, load_size = recipe(model, "demo", 32, 2, False, None)
        assert (params.crop_size, params.batch_size, params.compile, load_size) == (32, 2, False, 36)
        seconds, flops, report = time_model(model, params, step_options(CPU, params, None), load_size, faces, CPU,
                                            steps=2, warmup=1, trace=0)
        assert seconds > 0 and flops > 0 and report == ""
        found[model] = flops
    assert found["recyclegan"] > found["cyclegan"]  # triplets, predictors: more work per sample


def test_train_bench_profiles_where_the_step_time_goes_in_the_layout_asked_for(faces):
    from train_speed import layout, recipe, step_options, time_model

    params, load_size = recipe("cyclegan", "demo", 32, 2, False, None)
    options = step_options(CPU, params, True)
    assert options.channels_last and layout(options) == "channels_last"
    _, _, report = time_model("cyclegan", params, options, load_size, faces, CPU, steps=1, warmup=1, trace=2)
    assert "aten::convolution_backward" in report  # the profile table names the ops
    assert "per step (profiled, 2 steps): wall " in report


def test_infer_bench_times_translation_with_and_without_the_reconstruction(faces):
    from infer_speed import stabilise_ms, time_translation
    from train_speed import recipe

    from pipeline.common.device import StepOptions

    params, load_size = recipe("cyclegan", "demo", 32, None, None)
    flops = {}
    for reconstruction in (True, False):
        seconds, flops[reconstruction] = time_translation(params, load_size, faces, 4, 2, 1, reconstruction, CPU,
                                                          StepOptions.for_device(CPU))
        assert seconds > 0
    assert flops[True] == pytest.approx(2 * flops[False], rel=0.01)  # the reconstruction is a second generator pass
    clip = np.load(faces / "A_train.npy")[:8]
    assert stabilise_ms(clip, 64) > 0


def test_norm_bench_times_both_kernels_and_finds_them_equal():
    from norm_speed import compare_norms

    from pipeline.common.device import StepOptions

    found = compare_norms(batch_size=2, size=32, steps=1, device=CPU, options=StepOptions.for_device(CPU))
    assert min(found["group_s"], found["instance_s"]) > 0
    assert found["output_error"] < 1e-4 and found["gradient_error"] < 1e-1  # fp32 on the CPU: other summation order


def test_data_bench_times_the_frame_stages_on_any_videos(tmp_path, samples):
    """Two videos of the same file name (from two folders) stay two videos."""
    from data_speed import measure

    from pipeline.common.params import load_group

    (tmp_path / "again").mkdir()
    shutil.copyfile(samples / "B" / "brbk7n.mpg", tmp_path / "again" / "bbaf2n.mpg")
    clips = [samples / "A" / "bbaf2n.mpg", tmp_path / "again" / "bbaf2n.mpg"]
    found = measure(clips, "AB", load_group("data", REPO / "params.yaml"), repeat=1)
    assert (found["frames"], found["sizes"]) == (150, "360x288")
    assert found["raw"] == 150 * 288 * 360 * 3 and found["raw"] / found["stored"] > 5
    assert set(found["rates"]) == {"decode (iter_frames)", "extract_frames", "crop_faces",
                                   "crop_faces, detector on every frame"}
    assert min(found["rates"].values()) > 0 and 0 < found["landmarks"] < found["crop_seconds"]
    assert found["faces"] > 0  # the test faces of both videos got landmarks


def test_scale_bench_runs_every_stage_of_dvc_yaml_on_long_videos_built_from_the_samples(tmp_path):
    """The script end to end (it drives `dvc repro` stage by stage in a repo of its own)."""
    done = subprocess.run([sys.executable, str(REPO / "bench" / "scale.py"), "--sizes", "1", "--base-frames", "40",
                           "--train-steps", "2", "--workdir", str(tmp_path)],
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    from scale import disk_bytes

    stages = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    printed = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ") and " frames/s " in line]
    assert printed == stages, done.stdout
    repo = tmp_path / "repo_720p_40"
    tree, cache = disk_bytes(repo)
    assert tree > 0 and cache > 0
    assert (tmp_path / "videos" / "720p_40" / "A_train.mp4").is_file()
    assert "Data and pipelines are up to date" in subprocess.run(["dvc", "repro"], cwd=repo, env=ENV, capture_output=True,
                                                                 text=True).stdout
